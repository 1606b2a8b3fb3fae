// Named queues against a careless or hostile writer of their /dev/shm file
// (issue: named segments). Each case is what another user, or a process with
// write access, can do to a name; the queue answers with a clear error and
// never uses a segment it should not trust.

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"

namespace {

std::string UniqueName(const char* what) {
  return "/mp_hostile_test_" + std::string(what) + "_" +
         std::to_string(getpid());
}

int RunInChild(const std::function<int()>& body) {
  const pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

class HostileSegmentTest : public ::testing::Test {
 protected:
  void TearDown() override { mp::SharedMemory::Unlink(name_).IgnoreError(); }
  std::string name_ = UniqueName("q");
};

// Case 2: a name taken first by user `nobody` is not opened by root as if it
// were its own; naming the owner accepts it.
TEST_F(HostileSegmentTest, QueueSquattedByAnotherUserIsRefused) {
  ASSERT_EQ(geteuid(), 0u) << "the two-user case runs as root";
  constexpr uid_t kNobody = 65534;
  const std::string name = name_;
  ASSERT_EQ(RunInChild([&] {
              if (setgid(kNobody) != 0 || setuid(kNobody) != 0) return 1;
              return mp::Queue<int>::Create(name).ok() ? 0 : 2;
            }),
            0);
  auto q = mp::Queue<int>::Open(name_);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kPermissionDenied)
      << q.status();
  EXPECT_NE(q.status().message().find("owned by uid 65534"), std::string::npos)
      << q.status();
  auto accepted = mp::Queue<int>::Open(name_, {.owner = kNobody});
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  ASSERT_TRUE(accepted->Put(5).ok());
  EXPECT_EQ(*accepted->Get(), 5);
}

// A queue its creator made world-writable is refused unless the opener says
// it accepts that mode.
TEST_F(HostileSegmentTest, QueueOpenToOthersIsRefusedUnlessAccepted) {
  auto q = mp::Queue<int>::Create(name_, {.permissions = 0666});
  ASSERT_TRUE(q.ok()) << q.status();
  auto opened = mp::Queue<int>::Open(name_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("mode 0666"), std::string::npos)
      << opened.status();
  EXPECT_TRUE(mp::Queue<int>::Open(name_, {.permissions = 0666}).ok());
}

// Case 7 (part): a symlink in place of the name is a clear error, not
// Internal.
TEST_F(HostileSegmentTest, SymlinkInPlaceOfTheQueueIsRefused) {
  const std::string target = UniqueName("target");
  auto q = mp::Queue<int>::Create(target);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(symlink(("/dev/shm" + target).c_str(),
                    ("/dev/shm" + name_).c_str()),
            0);
  auto opened = mp::Queue<int>::Open(name_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition)
      << opened.status();
  EXPECT_NE(opened.status().message().find("symbolic link"), std::string::npos)
      << opened.status();
  ASSERT_EQ(unlink(("/dev/shm" + name_).c_str()), 0);
  ASSERT_TRUE(mp::SharedMemory::Unlink(target).ok());
}

}  // namespace
