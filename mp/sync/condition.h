// mp/sync/condition.h
// -----------------------------------------------------------------------------
// Condition: multiprocessing.Condition on a futex sequence word.
//
//   mp::Condition cond;            // owns an RLock, as Condition(lock=None)
//   mp::Condition cond2(lock);     // over an existing Lock or RLock
//   { std::unique_lock l(cond); cond.Wait(); }         // `with cond: wait()`
//   { std::unique_lock l(cond); cond.NotifyAll(); }
//
// Wait/Notify must be called with the lock held by the calling thread;
// otherwise they abort with "cannot wait on un-acquired lock" / "cannot
// notify on un-acquired lock" (Python raises RuntimeError).
//
// `ResidentCondition` is the resident state (16 bytes, all-zero is valid).
// It keeps, under the user's lock, `waiting` (waiters not yet notified) and
// `signals` (notifications not yet consumed), a futex word `seq` bumped
// by every notify, and `sleepers` (waiters inside FUTEX_WAIT, or about to
// be). Notify(n) moves min(n, waiting) from waiting to signals and wakes
// that many sleepers (no thundering herd), with no system call when every
// waiter is still spinning: a waiter announces itself in `sleepers` (RMW)
// before its FUTEX_WAIT re-checks `seq`, a notifier bumps `seq` (RMW) before
// it reads `sleepers`, so either the notifier sees the sleeper or the
// sleeper's FUTEX_WAIT sees the new `seq` and returns. A waiter returns
// notified only by consuming a signal under the lock, so Notify(n) wakes at
// most n waiters (plus those that time out at the same moment) and never
// loses one. Sequence wrap-around is harmless: seq is compared for equality.
//
// Wait re-acquires the lock before returning, even after a timeout. If the
// lock's owner died meanwhile, Wait still returns (with the lock held) and
// the lock's owner_died() says so. A waiter killed while waiting leaves a
// stale count: one later Notify may be spent on it, and a waiter killed
// asleep leaves `sleepers` high, which costs later notifies a needless
// FUTEX_WAKE, never a lost one.

#ifndef MP_SYNC_CONDITION_H_
#define MP_SYNC_CONDITION_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>
#include <variant>

#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/lock.h"

namespace mp {

class ResidentCondition {
 public:
  constexpr ResidentCondition() = default;
  // Tests only: start the sequence word at `seq` (wrap-around tests).
  explicit constexpr ResidentCondition(uint32_t seq) : seq_(seq) {}
  ResidentCondition(const ResidentCondition&) = delete;
  ResidentCondition& operator=(const ResidentCondition&) = delete;

  // Releases `lock` (every level of an RLock), sleeps until notified or
  // `deadline`, re-acquires. True if notified, false on timeout.
  bool Wait(ResidentLock& lock, Deadline deadline = Deadline::Infinite());
  bool Wait(ResidentRLock& lock, Deadline deadline = Deadline::Infinite());
  // Wakes up to `n` waiters (n <= 0: none). The caller holds the lock.
  void Notify(int n = 1);
  void NotifyAll() { Notify(0x7fffffff); }

  uint32_t seq_for_testing() const { return seq_.load(); }

 private:
  // The wait loop once the lock is released: true if `seq_` moved.
  bool SleepWhile(uint32_t seq, Deadline deadline);
  template <class L, class Release, class Reacquire>
  bool WaitImpl(L& lock, Deadline deadline, Release release,
                Reacquire reacquire);

  // Layout: 0 seq_ (futex word, +1 per notify that found waiters),
  // 4 waiting_, 8 signals_ (both changed only under the user's lock;
  // atomics so unlocked readers stay race-free), 12 sleepers_ (waiters
  // between announcing a FUTEX_WAIT and returning from it; changed without
  // the lock).
  FutexWord seq_{0};
  std::atomic<uint32_t> waiting_{0};
  std::atomic<uint32_t> signals_{0};
  std::atomic<uint32_t> sleepers_{0};
};
static_assert(std::is_standard_layout_v<ResidentCondition>);
static_assert(std::is_trivially_destructible_v<ResidentCondition>);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(ResidentCondition) == 16);

// A handle: a ResidentCondition in shared memory plus the lock it uses.
// Lockable itself (lock/unlock/try_lock) so `std::unique_lock l(cond)` is
// Python's `with cond:`.
class Condition {
 public:
  Condition() : Condition(RLock()) {}
  explicit Condition(Lock lock)
      : state_(Shared<ResidentCondition>::Make()), lock_(std::move(lock)) {}
  explicit Condition(RLock lock)
      : state_(Shared<ResidentCondition>::Make()), lock_(std::move(lock)) {}

  // Python's wait(timeout): true if notified, false on timeout.
  bool Wait(Deadline deadline = Deadline::Infinite());
  template <class Rep, class Period>
  bool Wait(std::chrono::duration<Rep, Period> timeout) {
    return Wait(Deadline::After(timeout));
  }
  // Python's wait_for(predicate, timeout): waits until pred() is true;
  // returns the last value of pred() (false: the deadline passed).
  template <class Pred>
  bool WaitFor(Pred pred, Deadline deadline = Deadline::Infinite()) {
    bool result = pred();
    while (!result) {
      if (deadline.Expired()) break;
      Wait(deadline);
      result = pred();
    }
    return result;
  }
  template <class Pred, class Rep, class Period>
  bool WaitFor(Pred pred, std::chrono::duration<Rep, Period> timeout) {
    return WaitFor(std::move(pred), Deadline::After(timeout));
  }
  void Notify(int n = 1);
  void NotifyAll();

  // The underlying lock.
  LockResult Acquire(Deadline deadline = Deadline::Infinite());
  absl::Status Release();
  bool owner_died() const;
  void lock() { Acquire(); }
  bool try_lock() { return Acquired(Acquire(Deadline::Past())); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return Acquired(Acquire(Deadline::After(timeout)));
  }
  void unlock();

 private:
  ResidentCondition& state() const {
    return sync_internal::Checked(state_, "mp::Condition");
  }
  bool HeldByCurrentThread() const;

  Shared<ResidentCondition> state_;
  std::variant<Lock, RLock> lock_;
};

}  // namespace mp

#endif  // MP_SYNC_CONDITION_H_
