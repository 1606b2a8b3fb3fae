#include "mp/core/shared_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

#include "gtest/gtest.h"

namespace mp {
namespace {

std::string UniqueName(const char* tag) {
  return std::string("/mp_shm_test_") + tag + "_" + std::to_string(getpid());
}

int RunInChild(const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SharedMemoryTest, AnonymousIsSharedWithChildren) {
  auto mem = SharedMemory::Anonymous(1 << 20);
  ASSERT_TRUE(mem.ok()) << mem.status();
  auto* bytes = static_cast<unsigned char*>(mem->data());
  EXPECT_EQ(bytes[12345], 0);  // zero-filled
  EXPECT_EQ(RunInChild([&] {
              std::memset(bytes, 0xab, 4096);
              return 0;
            }),
            0);
  EXPECT_EQ(bytes[0], 0xab);
  EXPECT_EQ(bytes[4095], 0xab);
}

TEST(SharedMemoryTest, ZeroSizeIsInvalid) {
  EXPECT_EQ(SharedMemory::Anonymous(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemory::Create(UniqueName("zero"), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SharedMemoryTest, SizeThatCannotBeMappedIsAnError) {
  auto mem = SharedMemory::Anonymous(size_t{1} << 62);
  EXPECT_FALSE(mem.ok());
  auto named = SharedMemory::Create(UniqueName("huge"), ~size_t{0});
  EXPECT_EQ(named.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SharedMemory::Open(UniqueName("huge")).status().code(),
            absl::StatusCode::kNotFound);  // nothing left behind
}

TEST(SharedMemoryTest, NamedCreateOpenUnlink) {
  std::string name = UniqueName("named");
  auto a = SharedMemory::Create(name, 8192);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->name(), name);
  EXPECT_EQ(a->size(), 8192u);
  static_cast<char*>(a->data())[100] = 'x';

  // An unrelated process (here: a child that maps it anew) sees the bytes.
  EXPECT_EQ(RunInChild([&] {
              auto b = SharedMemory::Open(name);
              if (!b.ok() || b->size() != 8192) return 1;
              if (static_cast<char*>(b->data())[100] != 'x') return 2;
              static_cast<char*>(b->data())[101] = 'y';
              return 0;
            }),
            0);
  EXPECT_EQ(static_cast<char*>(a->data())[101], 'y');

  EXPECT_EQ(SharedMemory::Create(name, 4096).status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(SharedMemory::Unlink(name).ok());
  EXPECT_EQ(SharedMemory::Open(name).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SharedMemory::Unlink(name).code(), absl::StatusCode::kNotFound);
  // The mapping outlives the name.
  EXPECT_EQ(static_cast<char*>(a->data())[100], 'x');
}

TEST(SharedMemoryTest, CreateUsesMode0600ByDefault) {
  std::string name = UniqueName("mode");
  mode_t old = umask(0);
  auto a = SharedMemory::Create(name, 4096);
  umask(old);
  ASSERT_TRUE(a.ok()) << a.status();
  struct stat st;
  ASSERT_EQ(stat(("/dev/shm" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_TRUE(SharedMemory::Unlink(name).ok());

  auto b = SharedMemory::Create(name, 4096, 0640);
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_EQ(stat(("/dev/shm" + name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  ASSERT_TRUE(SharedMemory::Unlink(name).ok());
}

TEST(SharedMemoryTest, InvalidNames) {
  for (const char* bad : {"", "/", "a/b", "/a/b", ".", ".."}) {
    EXPECT_EQ(SharedMemory::Create(bad, 4096).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
    EXPECT_EQ(SharedMemory::Open(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
  }
  EXPECT_EQ(SharedMemory::Create(std::string(300, 'n'), 4096).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NormalizeSegmentName("abc").value(), "/abc");
  EXPECT_EQ(NormalizeSegmentName("/abc").value(), "/abc");
}

// A segment taken first by another user (a squatter): Open refuses it unless
// told to accept that owner.
TEST(SharedMemoryTest, OpenRefusesASegmentOwnedByAnotherUser) {
  ASSERT_EQ(geteuid(), 0u) << "the two-user case runs as root";
  const std::string name = UniqueName("squat");
  constexpr uid_t kNobody = 65534;
  // The squatter's segment: one that user `nobody` owns. (Made by root and
  // handed over, since /dev/shm need not let `nobody` create files.)
  {
    auto made = SharedMemory::Create(name, 4096);
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_EQ(chown(("/dev/shm" + name).c_str(), kNobody, kNobody), 0);
  }
  auto opened = SharedMemory::Open(name);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("owned by uid 65534"),
            std::string::npos)
      << opened.status();
  EXPECT_TRUE(SharedMemory::Open(name, {.owner = kNobody}).ok());
  EXPECT_TRUE(SharedMemory::Open(name, {.any_owner = true}).ok());
  ASSERT_TRUE(SharedMemory::Unlink(name).ok());
}

TEST(SharedMemoryTest, OpenRefusesAModeMoreOpenThanAskedFor) {
  const std::string name = UniqueName("open_mode");
  auto a = SharedMemory::Create(name, 4096, 0666);
  ASSERT_TRUE(a.ok()) << a.status();
  auto opened = SharedMemory::Open(name);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("mode 0666"), std::string::npos)
      << opened.status();
  EXPECT_TRUE(SharedMemory::Open(name, {.permissions = 0666}).ok());
  ASSERT_TRUE(SharedMemory::Unlink(name).ok());
  // Stricter than asked is fine.
  auto b = SharedMemory::Create(name, 4096, 0600);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(SharedMemory::Open(name, {.permissions = 0660}).ok());
  ASSERT_TRUE(SharedMemory::Unlink(name).ok());
}

TEST(SharedMemoryTest, OpenRefusesASymlinkInPlaceOfTheName) {
  const std::string target = UniqueName("link_target");
  const std::string name = UniqueName("link");
  auto a = SharedMemory::Create(target, 4096);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(symlink(("/dev/shm" + target).c_str(), ("/dev/shm" + name).c_str()),
            0);
  auto opened = SharedMemory::Open(name);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition)
      << opened.status();
  EXPECT_NE(opened.status().message().find("symbolic link"), std::string::npos)
      << opened.status();
  ASSERT_EQ(unlink(("/dev/shm" + name).c_str()), 0);
  ASSERT_TRUE(SharedMemory::Unlink(target).ok());
}

TEST(SharedMemoryTest, OpenMissingIsNotFound) {
  EXPECT_EQ(SharedMemory::Open(UniqueName("missing")).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(SharedMemoryTest, MoveTransfersTheMapping) {
  auto a = SharedMemory::Anonymous(4096);
  ASSERT_TRUE(a.ok());
  void* p = a->data();
  SharedMemory b = *std::move(a);
  EXPECT_EQ(b.data(), p);
  SharedMemory c;
  c = std::move(b);
  EXPECT_EQ(c.data(), p);
  EXPECT_FALSE(b.valid());
  c.Reset();
  EXPECT_FALSE(c.valid());
}

struct Counter {
  std::atomic<int64_t> value{0};
};

TEST(SharedTest, CopiesShareOneObjectAcrossFork) {
  auto counter = Shared<Counter>::Make();
  Shared<Counter> copy = counter;
  EXPECT_EQ(copy.get(), counter.get());
  EXPECT_EQ(counter.use_count(), 2);
  constexpr int kChildren = 4;
  constexpr int kAdds = 10000;
  pid_t pids[kChildren];
  for (pid_t& pid : pids) {
    pid = fork();
    if (pid == 0) {
      for (int i = 0; i < kAdds; ++i) copy->value.fetch_add(1);
      _exit(0);
    }
  }
  for (pid_t pid : pids) {
    int status;
    waitpid(pid, &status, 0);
  }
  EXPECT_EQ(counter->value.load(), kChildren * kAdds);
}

TEST(SharedTest, EmptyHandle) {
  Shared<Counter> none;
  EXPECT_FALSE(none);
  EXPECT_EQ(none.get(), nullptr);
}

}  // namespace
}  // namespace mp
