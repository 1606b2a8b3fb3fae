// Two crash holes of the Lock, each seen by an outside watchdog while the
// survivor waits without a deadline (tests/watchdog.h):
//  * a holder that died as the waiter's own unreaped child (a zombie) is dead
//    on the liveness-check fallback too: the waiter gets kOwnerDied;
//  * dropping the last handle in a process to a lock that process holds
//    never leaves its robust list pointing into unmapped memory: the lock is
//    given up as owner-died, later lock operations of the thread work, and
//    at the thread's death the kernel still marks every older held lock
//    (glibc's robust mutexes included). Dropping it while another thread of
//    the process holds it aborts with a message.
// Run over the kernel robust list and over the fallback.

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/internal/robust_list.h"
#include "mp/sync/lock.h"
#include "tests/watchdog.h"

namespace {

using mp::LockResult;
using mp_test::ForkChild;
using mp_test::Watch;

int Rounds() {
  const char* s = std::getenv("MP_SYNC_STRESS");
  return 5 * (s != nullptr && std::atoi(s) > 0 ? std::atoi(s) : 1);
}

struct Flags {
  std::atomic<int> ready{0};
};

class LockLifetimeTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    mp::sync_internal::SetRobustListDisabledForTesting(GetParam());
  }
  void TearDown() override {
    mp::sync_internal::SetRobustListDisabledForTesting(false);
  }
};

// The waiter's own child dies holding the lock and stays unreaped: kill(2)
// still finds a zombie, but it will never release.
TEST_P(LockLifetimeTest, DeadHolderThatIsAnUnreapedChildIsDead) {
  for (int round = 0; round < Rounds(); ++round) {
    mp::Lock lock;
    auto flags = mp::Shared<Flags>::Make();
    const pid_t waiter = ForkChild([&] {
      const pid_t holder = ForkChild([&] {
        lock.lock();
        flags->ready.store(1);
        for (;;) pause();
        return 0;
      });
      while (flags->ready.load() == 0) std::this_thread::yield();
      kill(holder, SIGKILL);  // not reaped: a zombie until we return
      const LockResult r =
          lock.Acquire(mp::Deadline::Infinite());  // as users wait
      int status = 0;
      waitpid(holder, &status, 0);
      if (r != LockResult::kOwnerDied) return 3;
      return lock.Release().ok() ? 0 : 4;
    });
    ASSERT_EQ(Watch(waiter), "") << "round " << round;
  }
}

// A robust pthread mutex in shared memory, as a user's glibc lock.
pthread_mutex_t* MakeRobustMutex() {
  void* p = mmap(nullptr, sizeof(pthread_mutex_t), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  auto* m = static_cast<pthread_mutex_t*>(p);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return m;
}

TEST_P(LockLifetimeTest, DroppingTheLastHandleWhileHeldGivesTheLockUp) {
  for (int round = 0; round < Rounds(); ++round) {
    mp::Lock older;  // shared with the test: held when the victim dies
    pthread_mutex_t* glibc = MakeRobustMutex();
    auto flags = mp::Shared<Flags>::Make();
    const pid_t victim = ForkChild([&] {
      if (pthread_mutex_lock(glibc) != 0) return 10;
      older.lock();
      std::optional<mp::Lock> dropped;
      dropped.emplace();
      dropped->lock();
      // A process that shares `dropped` waits for it without a deadline.
      const pid_t peer = ForkChild([&] {
        flags->ready.store(1);
        const LockResult r = dropped->Acquire(mp::Deadline::Infinite());
        return r == LockResult::kOwnerDied ? 0 : 3;
      });
      while (flags->ready.load() == 0) std::this_thread::yield();
      dropped.reset();  // the last handle here, held by this thread
      // Later lock operations of this thread, on other locks, still work.
      mp::Lock later;
      for (int i = 0; i < 3; ++i) {
        later.lock();
        later.unlock();
      }
      const std::string peer_result = Watch(peer);
      if (!peer_result.empty()) return 5;
      flags->ready.store(2);
      for (;;) pause();  // killed holding `older` and the glibc mutex
      return 0;
    });
    while (flags->ready.load() != 2) {
      const int status = mp_test::WaitFor(victim, std::chrono::milliseconds(0));
      ASSERT_EQ(status, -1) << "victim ended early: status " << status;
      std::this_thread::yield();
    }
    mp_test::KillAndReap(victim);
    // The kernel walked the victim's whole list at its death.
    EXPECT_EQ(older.Acquire(std::chrono::seconds(10)), LockResult::kOwnerDied)
        << "round " << round;
    older.unlock();
    // Bounded: a list cut at an unmapped node leaves glibc's mutex held for
    // ever.
    timespec until{};
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    const int rc = pthread_mutex_timedlock(glibc, &until);
    EXPECT_EQ(rc, EOWNERDEAD) << "round " << round;
    if (rc == EOWNERDEAD) pthread_mutex_consistent(glibc);
    if (rc == 0 || rc == EOWNERDEAD) pthread_mutex_unlock(glibc);
    pthread_mutex_destroy(glibc);
    munmap(glibc, sizeof(pthread_mutex_t));
  }
}

TEST_P(LockLifetimeTest, RLockDroppedWhileHeldIsGivenUp) {
  mp::RLock shared;
  auto flags = mp::Shared<Flags>::Make();
  const pid_t victim = ForkChild([&] {
    std::optional<mp::RLock> dropped;
    dropped.emplace();
    dropped->lock();
    dropped->lock();
    const pid_t peer = ForkChild([&] {
      flags->ready.store(1);
      const LockResult r = dropped->Acquire(mp::Deadline::Infinite());
      return r == LockResult::kOwnerDied && dropped->state().count() == 1 ? 0
                                                                          : 3;
    });
    while (flags->ready.load() == 0) std::this_thread::yield();
    dropped.reset();
    shared.lock();
    shared.unlock();
    return Watch(peer).empty() ? 0 : 5;
  });
  EXPECT_EQ(Watch(victim), "");
}

TEST_P(LockLifetimeTest, DroppingTheLastHandleWhileAnotherThreadHoldsAborts) {
  const pid_t victim = ForkChild([&] {
    std::optional<mp::Lock> lock;
    lock.emplace();
    std::atomic<int> held{0};
    std::thread holder([&] {
      lock->lock();
      held.store(1);
      for (;;) pause();
    });
    while (held.load() == 0) std::this_thread::yield();
    lock.reset();  // must abort: the holder's robust list is not ours
    holder.detach();
    return 0;
  });
  const int status = mp_test::WaitFor(victim, mp_test::kHangAfter);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT)
      << "status " << status;
}

INSTANTIATE_TEST_SUITE_P(RobustListAndFallback, LockLifetimeTest,
                         ::testing::Values(false, true),
                         [](const auto& info) {
                           return info.param ? "Fallback" : "RobustList";
                         });

}  // namespace
