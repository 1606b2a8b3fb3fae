// Crash safety: a holder killed with SIGKILL never leaves the lock stuck;
// the next acquirer sees owner-died exactly once per death, and a waiter
// blocked at the time of the death is released. Run over the kernel robust
// list and over the liveness-check fallback.
//
// MP_SYNC_STRESS=N multiplies the iteration counts.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "gtest/gtest.h"
#include "mp/core/process.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/internal/robust_list.h"
#include "mp/sync/sync.h"
#include "tests/watchdog.h"

namespace {

using mp::LockResult;
using std::chrono::seconds;

int Stress() {
  const char* s = std::getenv("MP_SYNC_STRESS");
  return s != nullptr && std::atoi(s) > 0 ? std::atoi(s) : 1;
}

struct Flags {
  std::atomic<int> holding;
  std::atomic<int> ready;
  std::atomic<int64_t> progress;
};

class LockCrashTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    mp::sync_internal::SetRobustListDisabledForTesting(GetParam());
  }
  void TearDown() override {
    mp::sync_internal::SetRobustListDisabledForTesting(false);
  }
};

// Forks a child that runs `fn` and never returns; returns its pid.
template <class F>
pid_t Spawn(F fn) {
  pid_t pid = fork();
  if (pid == 0) {
    fn();
    _exit(0);
  }
  return pid;
}

void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

TEST_P(LockCrashTest, KilledAtRandomPointsOwnerDiedExactlyOnce) {
  mp::Lock lock;
  auto flags = mp::Shared<Flags>::Make();
  std::mt19937 rng(12345);
  const int iterations = 40 * Stress();
  int deaths_seen = 0;
  for (int it = 0; it < iterations; ++it) {
    flags->holding = 0;
    flags->progress = 0;
    pid_t pid = Spawn([&] {
      for (;;) {
        lock.lock();
        flags->holding.store(1);
        flags->progress.fetch_add(1);
        flags->holding.store(0);
        lock.unlock();
      }
    });
    while (flags->progress.load() < 10) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500));
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    const bool was_holding = flags->holding.load() == 1;
    LockResult r = lock.Acquire(seconds(20));
    ASSERT_NE(r, LockResult::kTimedOut) << "iteration " << it;
    if (was_holding) {
      EXPECT_EQ(r, LockResult::kOwnerDied);
    }
    EXPECT_EQ(lock.owner_died(), r == LockResult::kOwnerDied);
    if (r == LockResult::kOwnerDied) ++deaths_seen;
    ASSERT_TRUE(lock.Release().ok());
    EXPECT_FALSE(lock.owner_died());
    // Reported once: the next acquire is ordinary.
    EXPECT_EQ(lock.Acquire(seconds(20)), LockResult::kAcquired);
    ASSERT_TRUE(lock.Release().ok());
  }
  RecordProperty("deaths_seen", deaths_seen);
}

TEST_P(LockCrashTest, BlockedWaiterReleasedWhenHolderDies) {
  mp::Lock lock;
  auto flags = mp::Shared<Flags>::Make();
  pid_t holder = Spawn([&] {
    lock.lock();
    flags->ready.store(1);
    for (;;) pause();
  });
  while (flags->ready.load() == 0) std::this_thread::yield();
  mp::Process waiter([&] {
    flags->ready.store(2);
    LockResult r = lock.Acquire(seconds(20));
    if (r != LockResult::kOwnerDied || !lock.owner_died()) mp::Exit(3);
    lock.unlock();
  });
  ASSERT_TRUE(waiter.Start().ok());
  while (flags->ready.load() != 2) std::this_thread::yield();
  EXPECT_TRUE(mp_test::AwaitAsleep(waiter.pid()));  // asleep in Acquire
  KillAndReap(holder);
  ASSERT_TRUE(waiter.Join(seconds(30)).ok());
  EXPECT_EQ(waiter.exitcode(), 0);
  EXPECT_EQ(lock.Acquire(seconds(5)), LockResult::kAcquired);
  lock.unlock();
}

TEST_P(LockCrashTest, RLockOwnerDied) {
  mp::RLock lock;
  auto flags = mp::Shared<Flags>::Make();
  pid_t holder = Spawn([&] {
    lock.lock();
    lock.lock();
    flags->ready.store(1);
    for (;;) pause();
  });
  while (flags->ready.load() == 0) std::this_thread::yield();
  KillAndReap(holder);
  EXPECT_EQ(lock.Acquire(seconds(20)), LockResult::kOwnerDied);
  EXPECT_EQ(lock.state().count(), 1u);
  EXPECT_TRUE(lock.owner_died());
  lock.unlock();
  EXPECT_FALSE(lock.locked());
}

TEST_P(LockCrashTest, ThreadExitHoldingLock) {
  mp::Lock lock;
  std::thread([&] { lock.lock(); }).join();
  EXPECT_EQ(lock.Acquire(seconds(20)), LockResult::kOwnerDied);
  lock.unlock();
}

TEST_P(LockCrashTest, ConditionWaiterGetsLockFromDeadOwner) {
  mp::Lock lock;
  mp::Condition cond(lock);
  auto flags = mp::Shared<Flags>::Make();
  mp::Process waiter([&] {
    std::unique_lock l(cond);
    flags->ready.store(1);
    cond.Wait(seconds(20));
    if (!cond.owner_died()) mp::Exit(3);
  });
  ASSERT_TRUE(waiter.Start().ok());
  while (flags->ready.load() == 0) std::this_thread::yield();
  pid_t killer = Spawn([&] {
    cond.lock();  // succeeds once the waiter sleeps
    cond.NotifyAll();
    flags->holding.store(1);
    for (;;) pause();  // dies holding the lock
  });
  while (flags->holding.load() == 0) std::this_thread::yield();
  KillAndReap(killer);
  ASSERT_TRUE(waiter.Join(seconds(30)).ok());
  EXPECT_EQ(waiter.exitcode(), 0);
}

INSTANTIATE_TEST_SUITE_P(RobustListAndFallback, LockCrashTest,
                         ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "Fallback" : "RobustList";
                         });

TEST(SemaphoreCrashTest, WaiterOnDeadPeerReturnsAtTimeout) {
  mp::Semaphore s(1);
  auto flags = mp::Shared<Flags>::Make();
  pid_t holder = Spawn([&] {
    s.acquire();
    flags->ready.store(1);
    for (;;) pause();
  });
  while (flags->ready.load() == 0) std::this_thread::yield();
  KillAndReap(holder);
  EXPECT_FALSE(s.Acquire(std::chrono::milliseconds(20)));
}

TEST(BarrierCrashTest, PeerKilledWaitersBreakAtTimeout) {
  mp::Barrier b(3);
  pid_t peer = Spawn([&] { (void)b.Wait(); });
  while (b.NWaiting() < 1) std::this_thread::yield();
  KillAndReap(peer);
  // The dead party still counts; the live one times out and breaks it.
  EXPECT_TRUE(absl::IsAborted(b.Wait(std::chrono::milliseconds(30)).status()));
  EXPECT_TRUE(b.Broken());
}

}  // namespace
