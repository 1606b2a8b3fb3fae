// Hang tests for Event, Semaphore and Condition (issue 16, holes 1-3): a
// victim process is killed at a fault point between a primitive's "grant"
// step and its FUTEX_WAKE, while a survivor waits WITHOUT a deadline, as
// users do. The parent is the outside watchdog: a survivor still blocked
// after kWatchdog (far above any sleep slice) is reported as a hang, killed
// and reaped. Every forked process is reaped.
//
//   bazel test --config=fault //tests/fault:sync_hang_test
//
// The cases that need fault points run only under --config=fault; the
// others (a waiter killed asleep, a signal left over by a dead waiter) run
// in every build. MP_HANG_ROUNDS overrides the rounds per case (20).

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <new>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mp/core/fault.h"
#include "mp/sync/condition.h"
#include "mp/sync/event.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"
#include "tests/watchdog.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using mp_test::AwaitAsleep;
using mp_test::Describe;
using mp_test::KillAndReap;
using mp_test::WaitFor;
using mp_test::Watch;

// A survivor still blocked this long after the victim died is hung.
constexpr auto kWatchdog = mp_test::kHangAfter;

int Rounds() { return mp_test::CountFromEnv("MP_HANG_ROUNDS", 20); }

template <class F>
pid_t Fork(F&& body) {
  return mp_test::ForkChild(std::forward<F>(body));
}

// Fails the test (after killing and reaping `pid`) if it never sleeps.
#define ASSERT_ASLEEP(pid)                                          \
  do {                                                              \
    if (!AwaitAsleep(pid)) {                                        \
      KillAndReap(pid);                                             \
      FAIL() << #pid " never went to sleep in the kernel";          \
    }                                                               \
  } while (0)

// True if the victim was killed by SIGKILL (at its armed point).
[[maybe_unused]] bool DiedAtPoint(pid_t victim) {
  const int status = WaitFor(victim, seconds(5));
  if (status == -1) {
    KillAndReap(victim);
    return false;
  }
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

using mp_test::MapShared;
using mp_test::Unmap;

[[maybe_unused]] void ArmKill(std::string_view point) {
  if (!mp::fault::Arm(point, 1, mp::fault::Action::kKill).ok()) _exit(99);
}

struct Arena {
  mp::ResidentLock lock;
  mp::ResidentCondition cond;
  mp::ResidentEvent event;
  mp::ResidentSemaphore sem{0, mp::ResidentSemaphore::kMaxValue};
  int flag = 0;  // under `lock`
};

#if defined(MP_FAULT_POINTS)

// ---- 1. Event: the setter dies between its exchange and its wake ----------

TEST(SyncHangTest, EventWaiterSurvivesSetterKilledBeforeWake) {
  for (int round = 1; round <= Rounds(); ++round) {
    auto* s = MapShared<Arena>();
    pid_t survivor = Fork([s] { return s->event.Wait() ? 0 : 1; });
    ASSERT_ASLEEP(survivor);
    pid_t victim = Fork([s] {
      ArmKill("event.set.after_exchange");
      s->event.Set();
      return 0;
    });
    const bool hit = DiedAtPoint(victim);
    const std::string failure = Watch(survivor, "untimed Event::Wait()");
    ASSERT_TRUE(hit) << "round " << round << ": the setter did not die there";
    EXPECT_TRUE(s->event.IsSet());
    Unmap(s);
    ASSERT_EQ(failure, "") << "round " << round << ", the setter killed at "
                           << "event.set.after_exchange with IsSet() true";
  }
}

// ---- 2. Semaphore: the releaser dies between its add and its wake --------

TEST(SyncHangTest, SemaphoreAcquirerSurvivesReleaserKilledBeforeWake) {
  for (int round = 1; round <= Rounds(); ++round) {
    auto* s = MapShared<Arena>();
    pid_t survivor = Fork([s] { return s->sem.Acquire() ? 0 : 1; });
    ASSERT_ASLEEP(survivor);
    pid_t victim = Fork([s] {
      ArmKill("semaphore.release.after_add");
      (void)s->sem.Release(1);
      return 0;
    });
    const bool hit = DiedAtPoint(victim);
    const std::string failure = Watch(survivor, "untimed Semaphore::Acquire()");
    ASSERT_TRUE(hit) << "round " << round;
    EXPECT_EQ(s->sem.GetValue(), failure.empty() ? 0u : 1u);
    Unmap(s);
    ASSERT_EQ(failure, "") << "round " << round << ", the releaser killed at "
                           << "semaphore.release.after_add";
  }
}

// ---- 3. Condition: the notifier dies inside Notify ---------------------------

// A survivor in `while (!flag) Wait()` with no deadline; the victim sets the
// flag and dies inside Notify(1) at `point`, holding the lock. With
// `later_notify_all`, the parent then makes a healthy NotifyAll() (which must
// be enough, even though the dead notifier already granted the signal).
void ConditionRound(std::string_view point, bool later_notify_all, int round) {
  auto* s = MapShared<Arena>();
  pid_t survivor = Fork([s] {
    (void)s->lock.Acquire();
    while (s->flag == 0) s->cond.Wait(s->lock);
    (void)s->lock.Release();
    return 0;
  });
  ASSERT_ASLEEP(survivor);
  pid_t victim = Fork([s, point] {
    (void)s->lock.Acquire();
    s->flag = 1;
    ArmKill(point);
    s->cond.Notify(1);
    return 0;
  });
  const bool hit = DiedAtPoint(victim);
  if (later_notify_all) {
    // The victim died holding the lock: we take it with owner-died.
    mp::LockResult r = s->lock.Acquire(mp::Deadline::After(seconds(5)));
    ASSERT_TRUE(mp::Acquired(r));
    s->cond.NotifyAll();
    (void)s->lock.Release();
  }
  const std::string failure = Watch(survivor, "untimed Condition::Wait()");
  ASSERT_TRUE(hit) << "round " << round;
  // Nobody waits now; nothing is counted below zero.
  EXPECT_EQ(s->cond.waiting_for_testing(), 0u);
  EXPECT_EQ(s->cond.signals_for_testing(), 0u);
  Unmap(s);
  ASSERT_EQ(failure, "") << "round " << round << ", the notifier killed at "
                         << point << (later_notify_all
                                          ? ", then a healthy NotifyAll()"
                                          : "");
}

TEST(SyncHangTest, ConditionWaiterSurvivesNotifierKilledAfterSignal) {
  for (int round = 1; round <= Rounds(); ++round) {
    ConditionRound("condition.notify.after_signal", false, round);
    if (HasFatalFailure()) return;
  }
}

TEST(SyncHangTest, ConditionNotifyAllCompletesDeadNotifiersStep) {
  for (int round = 1; round <= Rounds(); ++round) {
    ConditionRound("condition.notify.after_signal", true, round);
    if (HasFatalFailure()) return;
  }
}

// Killed after the bump, before the grant: nothing was granted (as if it
// died before calling Notify), so the waiter needs a later Notify; it gets
// it and the counts stay whole.
TEST(SyncHangTest, ConditionNotifierKilledBeforeGrant) {
  for (int round = 1; round <= Rounds(); ++round) {
    ConditionRound("condition.notify.after_bump", true, round);
    if (HasFatalFailure()) return;
  }
}

// A timed waiter whose notifier died at either point leaves the counts
// whole: waiting never goes below zero (it was decremented once by the
// grant and once by a timed-out waiter when the grant was two stores).
TEST(SyncHangTest, ConditionCountsNeverUnderflowAfterNotifierDeath) {
  for (std::string_view point :
       {"condition.notify.after_bump", "condition.notify.after_signal"}) {
    for (int round = 1; round <= Rounds(); ++round) {
      auto* s = MapShared<Arena>();
      pid_t survivor = Fork([s] {
        (void)s->lock.Acquire();
        const bool notified =
            s->cond.Wait(s->lock, mp::Deadline::After(milliseconds(300)));
        (void)s->lock.Release();
        // Granted (after_signal): notified; not granted: timed out.
        return notified ? 10 : 11;
      });
      ASSERT_ASLEEP(survivor);
      pid_t victim = Fork([s, point] {
        (void)s->lock.Acquire();
        ArmKill(point);
        s->cond.Notify(1);
        return 0;
      });
      ASSERT_TRUE(DiedAtPoint(victim));
      const int status = WaitFor(survivor, kWatchdog);
      if (status == -1) KillAndReap(survivor);
      ASSERT_TRUE(status != -1 && WIFEXITED(status)) << Describe(status);
      const bool granted = point == "condition.notify.after_signal";
      EXPECT_EQ(WEXITSTATUS(status), granted ? 10 : 11) << point;
      EXPECT_EQ(s->cond.waiting_for_testing(), 0u) << point;
      EXPECT_EQ(s->cond.signals_for_testing(), 0u) << point;
      Unmap(s);
      if (HasFailure()) return;
    }
  }
}

#endif  // defined(MP_FAULT_POINTS)

// ---- cases that need no fault point --------------------------------------------

// A waiter killed asleep in Acquire leaves its registration behind; the next
// Release that wakes nobody drops it, so later Releases make no system call.
TEST(SyncHangTest, SemaphoreWaitersCountHealsAfterWaiterKilledAsleep) {
  for (int round = 1; round <= Rounds(); ++round) {
    auto* s = MapShared<Arena>();
    pid_t sleeper = Fork([s] { return s->sem.Acquire() ? 0 : 1; });
    ASSERT_ASLEEP(sleeper);
    EXPECT_EQ(s->sem.waiters_for_testing(), 1u);
    KillAndReap(sleeper);
    EXPECT_EQ(s->sem.waiters_for_testing(), 1u);  // leaked by the death
    ASSERT_TRUE(s->sem.Release(1).ok());          // wakes nobody: heals
    EXPECT_EQ(s->sem.waiters_for_testing(), 0u) << "round " << round;
    EXPECT_TRUE(s->sem.TryAcquire());
    // A live waiter still works after the reset.
    pid_t waiter = Fork([s] { return s->sem.Acquire() ? 0 : 1; });
    ASSERT_ASLEEP(waiter);
    ASSERT_TRUE(s->sem.Release(1).ok());
    EXPECT_EQ(Watch(waiter, "waiter after the reset"), "");
    EXPECT_EQ(s->sem.waiters_for_testing(), 0u);
    EXPECT_EQ(s->sem.GetValue(), 0u);
    Unmap(s);
    if (HasFailure()) return;
  }
}

// Resets while threads acquire and release with timeouts: the count never
// wraps below zero (it would read as about 4 M) and ends at zero.
TEST(SyncHangTest, SemaphoreWaitersCountNeverUnderflows) {
  auto* s = MapShared<Arena>();
  pid_t sleeper = Fork([s] { return s->sem.Acquire() ? 0 : 1; });
  ASSERT_ASLEEP(sleeper);
  KillAndReap(sleeper);  // one leaked registration to start with
  std::atomic<bool> stop{false};
  std::atomic<uint32_t> max_seen{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load()) {
        if (t % 2 == 0) {
          if (s->sem.Acquire(mp::Deadline::After(milliseconds(2)))) {
            (void)s->sem.Release(1);
          }
        } else {
          (void)s->sem.Release(1);
          (void)s->sem.Acquire(mp::Deadline::After(milliseconds(1)));
        }
        uint32_t w = s->sem.waiters_for_testing();
        uint32_t m = max_seen.load();
        while (w > m && !max_seen.compare_exchange_weak(m, w)) {
        }
      }
    });
  }
  std::this_thread::sleep_for(milliseconds(500));
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_LE(max_seen.load(), 8u);
  (void)s->sem.Release(1);  // heals whatever a racing reset left
  EXPECT_EQ(s->sem.waiters_for_testing(), 0u);
  Unmap(s);
}

// A waiter notified and then killed before it consumed its signal leaves
// that signal behind. A waiter that enters Wait afterwards must not take it:
// its timed-out Wait returns false, and an untimed one keeps waiting.
TEST(SyncHangTest, LeftoverSignalOfDeadWaiterIsNotConsumedByLaterWaiter) {
  for (int round = 1; round <= Rounds(); ++round) {
    auto* s = MapShared<Arena>();
    pid_t doomed = Fork([s] {
      (void)s->lock.Acquire();
      s->cond.Wait(s->lock);
      (void)s->lock.Release();
      return 0;
    });
    ASSERT_ASLEEP(doomed);
    // Notify it, and kill it while we hold the lock: it cannot consume.
    ASSERT_TRUE(mp::Acquired(s->lock.Acquire(mp::Deadline::After(seconds(5)))));
    s->cond.Notify(1);
    KillAndReap(doomed);
    (void)s->lock.Release();
    // A later timed-out wait: false, whatever the dead waiter left.
    pid_t later = Fork([s] {
      if (!mp::Acquired(s->lock.Acquire(mp::Deadline::After(seconds(5))))) {
        return 2;
      }
      const bool notified =
          s->cond.Wait(s->lock, mp::Deadline::After(milliseconds(30)));
      (void)s->lock.Release();
      return notified ? 1 : 0;
    });
    const int status = WaitFor(later, kWatchdog);
    if (status == -1) KillAndReap(later);
    Unmap(s);
    ASSERT_TRUE(status != -1 && WIFEXITED(status)) << Describe(status);
    ASSERT_EQ(WEXITSTATUS(status), 0)
        << "round " << round
        << ": a Wait that began after the last Notify returned true (it took "
           "the signal left by a waiter that died)";
  }
}

}  // namespace
