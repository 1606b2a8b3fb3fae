// PidLock, the lock of the ring's kMpmc sides and of PipeQueue: mutual
// exclusion, hand-over to sleeping waiters (the plain-store unlock and its
// waiters flag), deadlines, and take-over of a lock whose holder is dead.
// Threads here; tagged "tsan". The process variant is pid_lock_process_test.

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/futex.h"
#include "mp/queue/internal/ring.h"

namespace {

using mp::Deadline;
using mp::queue_internal::CurrentTid;
using mp::queue_internal::PidLock;

TEST(PidLockTest, UncontendedLeavesTheLockAsItFoundIt) {
  PidLock l;
  ASSERT_EQ(l.Lock(Deadline::Past()), PidLock::Acquired::kYes);
  EXPECT_EQ(l.word.load(), CurrentTid());
  l.Unlock();
  EXPECT_EQ(l.word.load(), 0u);
  EXPECT_EQ(l.waiters.load(), 0u);
  EXPECT_EQ(l.epoch.load(), 0u);  // no wake: nobody raised the flag
}

TEST(PidLockTest, MutualExclusionAndHandOverToSleepers) {
  // Each thread holds the lock across a yield now and then, so the others
  // spin out and sleep: every release to a sleeper goes through the flag.
  PidLock l;
  uint64_t counter = 0;  // guarded by l; a lost exclusion shows as a race
  constexpr int kThreads = 4, kRounds = 20000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < kRounds; ++i) {
        ASSERT_NE(l.Lock(Deadline::Infinite()), PidLock::Acquired::kNo);
        ++counter;
        if (i % 64 == 0) std::this_thread::yield();
        l.Unlock();
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(counter, uint64_t{kThreads} * kRounds);
  EXPECT_EQ(l.word.load(), 0u);
  // Whoever got the lock after sleeping raised the flag again, and its own
  // unlock took it down: no flag is left up once everyone is gone.
  EXPECT_EQ(l.waiters.load(), 0u);
}

TEST(PidLockTest, WaiterBlockedOnALiveHolderGetsTheLockAtRelease) {
  PidLock l;
  ASSERT_EQ(l.Lock(Deadline::Infinite()), PidLock::Acquired::kYes);
  std::atomic<int> state{0};
  std::thread waiter([&] {
    state = 1;
    EXPECT_EQ(l.Lock(Deadline::Infinite()), PidLock::Acquired::kYes);
    state = 2;
    l.Unlock();
  });
  while (state.load() == 0) std::this_thread::yield();
  // Wait until the waiter has raised the flag (it is about to sleep).
  while (l.waiters.load() == 0) std::this_thread::yield();
  EXPECT_EQ(state.load(), 1);  // still blocked: we hold the lock
  l.Unlock();
  waiter.join();
  EXPECT_EQ(state.load(), 2);
  EXPECT_GE(l.epoch.load(), 1u);  // our unlock woke it through the epoch
  EXPECT_EQ(l.word.load(), 0u);
}

TEST(PidLockTest, DeadlineOnALiveHolderFailsAndChangesNothing) {
  PidLock l;
  ASSERT_EQ(l.Lock(Deadline::Infinite()), PidLock::Acquired::kYes);
  const uint32_t me = CurrentTid();
  std::thread other([&] {
    EXPECT_EQ(l.Lock(Deadline::Past()), PidLock::Acquired::kNo);
    EXPECT_EQ(l.Lock(Deadline::After(std::chrono::milliseconds(30))),
              PidLock::Acquired::kNo);
  });
  other.join();
  EXPECT_EQ(l.word.load(), me);
  l.Unlock();
  EXPECT_EQ(l.word.load(), 0u);
}

// A tid that names no task: a child that has exited and been reaped.
uint32_t DeadTid() {
  pid_t pid = fork();
  if (pid == 0) _exit(0);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  return static_cast<uint32_t>(pid);
}

TEST(PidLockTest, ExpiredDeadlineStillTakesOverADeadHolder) {
  PidLock l;
  l.word.store(DeadTid());
  EXPECT_EQ(l.Lock(Deadline::Past()), PidLock::Acquired::kFromDeadHolder);
  EXPECT_EQ(l.word.load(), CurrentTid());
  l.Unlock();
  EXPECT_EQ(l.word.load(), 0u);
}

TEST(PidLockTest, SleepingWaiterTakesOverADeadHolder) {
  PidLock l;
  l.word.store(DeadTid());
  l.waiters.store(1);  // as a holder killed with a sleeper queued leaves it
  EXPECT_EQ(l.Lock(Deadline::Infinite()), PidLock::Acquired::kFromDeadHolder);
  EXPECT_EQ(l.word.load(), CurrentTid());
  l.Unlock();
  EXPECT_EQ(l.word.load(), 0u);
}

TEST(PidLockTest, HighBitWithNoHolderIsAFreeLock) {
  PidLock l;
  l.word.store(0x80000000u);
  EXPECT_EQ(l.Lock(Deadline::Past()), PidLock::Acquired::kYes);
  EXPECT_EQ(l.word.load(), CurrentTid());
  l.Unlock();
}

}  // namespace
