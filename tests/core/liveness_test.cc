// mp/core/liveness.h: the thread identity cache and the dead-or-zombie check
// that the sync and queue packages share.

#include "mp/core/liveness.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <thread>

#include "gtest/gtest.h"

namespace {

using mp::liveness::CurrentThread;
using mp::liveness::CurrentTid;
using mp::liveness::TaskIsDead;
using mp::liveness::TaskStartTime;

// Waits until /proc shows `pid` as a zombie (killed, not yet reaped).
bool WaitUntilZombie(pid_t pid) {
  for (int i = 0; i < 5000; ++i) {
    siginfo_t info{};
    if (waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      return true;
    }
    usleep(1000);
  }
  return false;
}

TEST(LivenessTest, CurrentTidIsGettidAndCachedPerThread) {
  EXPECT_EQ(CurrentTid(), static_cast<uint32_t>(syscall(SYS_gettid)));
  EXPECT_EQ(&CurrentThread(), &CurrentThread());
  uint32_t other = 0;
  std::thread t([&] { other = CurrentTid(); });
  t.join();
  EXPECT_NE(other, 0u);
  EXPECT_NE(other, CurrentTid());
}

TEST(LivenessTest, ForkChildGetsItsOwnTid) {
  const uint32_t parent = CurrentTid();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const uint32_t tid = CurrentTid();
    const bool ok = tid == static_cast<uint32_t>(syscall(SYS_gettid)) &&
                    tid != parent;
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(LivenessTest, LiveTaskIsAliveWithItsStartTime) {
  EXPECT_FALSE(TaskIsDead(CurrentTid()));
  EXPECT_FALSE(TaskIsDead(0));  // nobody: never "dead"
  const uint64_t start = TaskStartTime(CurrentTid());
  EXPECT_NE(start, 0u);
  EXPECT_FALSE(TaskIsDead(CurrentTid(), start));
  EXPECT_FALSE(TaskIsDead(CurrentTid(), 0));  // start unknown: TID alone
}

TEST(LivenessTest, RecycledTidIsDead) {
  // Another start time under the same TID: the task named has gone, and the
  // TID now belongs to someone else.
  const uint64_t start = TaskStartTime(CurrentTid());
  ASSERT_NE(start, 0u);
  EXPECT_TRUE(TaskIsDead(CurrentTid(), start + 1));
  // A start time kept truncated to its low 32 bits compares on those alone.
  EXPECT_FALSE(TaskIsDead(CurrentTid(), start & 0xffffffffu, 0xffffffffu));
  EXPECT_TRUE(
      TaskIsDead(CurrentTid(), (start + 1) & 0xffffffffu, 0xffffffffu));
}

TEST(LivenessTest, ZombieIsDeadAndSoIsAReapedTask) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    pause();
    _exit(0);
  }
  const uint32_t tid = static_cast<uint32_t>(pid);
  const uint64_t start = TaskStartTime(tid);
  EXPECT_NE(start, 0u);
  EXPECT_FALSE(TaskIsDead(tid));
  EXPECT_FALSE(TaskIsDead(tid, start));
  kill(pid, SIGKILL);
  ASSERT_TRUE(WaitUntilZombie(pid));
  // kill(pid, 0) still succeeds on a zombie; it will never run again.
  EXPECT_EQ(kill(pid, 0), 0);
  EXPECT_TRUE(TaskIsDead(tid));
  EXPECT_TRUE(TaskIsDead(tid, start));
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(TaskIsDead(tid));
  EXPECT_EQ(TaskStartTime(tid), 0u);
}

TEST(LivenessTest, ExitedThreadOfLiveProcessIsDead) {
  uint32_t tid = 0;
  std::thread t([&] { tid = CurrentTid(); });
  t.join();
  ASSERT_NE(tid, 0u);
  // A joined thread's task leaves the kernel soon after join returns (glibc
  // is woken when the TID is cleared, a step before the task is released):
  // it must be found dead, if not at once then once the kernel is done.
  bool dead = TaskIsDead(tid);
  for (int i = 0; i < 5000 && !dead; ++i) {
    usleep(1000);
    dead = TaskIsDead(tid);
  }
  EXPECT_TRUE(dead);
}

}  // namespace
