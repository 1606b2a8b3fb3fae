// mp/sync/condition.h
// -----------------------------------------------------------------------------
// Condition: multiprocessing.Condition on a futex sequence word.
//
//   mp::Condition cond;            // owns an RLock, as Condition(lock=None)
//   mp::Condition cond2(lock);     // over an existing Lock or RLock
//   { std::unique_lock l(cond); cond.Wait(); }         // `with cond: wait()`
//   { std::unique_lock l(cond); cond.NotifyAll(); }
//   cond.Wait(1.5); cond.Wait(std::chrono::seconds(2)); // timeouts, see README
//
// Wait/Notify must be called with the lock held by the calling thread;
// otherwise they abort with "cannot wait on un-acquired lock" / "cannot
// notify on un-acquired lock" (Python raises RuntimeError).
//
// `ResidentCondition` is the resident state (16 bytes, all-zero is valid).
// It keeps, under the user's lock, `waiting` (waiters not yet notified) and
// `signals` (notifications not yet consumed) in one 64-bit word, a futex
// word `seq` bumped by every notify that finds waiters, and `sleepers`
// (waiters inside FUTEX_WAIT, or about to be). Notify(n) bumps seq, moves
// k = min(n, waiting) from waiting to signals in one store, and wakes one
// sleeper per signal now pending (k, plus any not yet taken: no thundering
// herd), with no system call when every waiter is still spinning: a
// waiter announces itself in `sleepers` (RMW) before its FUTEX_WAIT
// re-checks `seq`, a notifier bumps `seq` (RMW) before it reads
// `sleepers`, so either the notifier sees the sleeper or the sleeper's
// FUTEX_WAIT sees the new `seq` and returns. A waiter returns notified only
// by consuming a signal under the lock, and only a signal granted after it
// entered Wait (seq has moved since), so Notify(n) wakes at most n waiters
// (plus those that time out at the same moment, and the case below) and
// never loses one. Sequence wrap-around is harmless: seq is compared for
// equality.
//
// Wait re-acquires the lock before returning, even after a timeout. If the
// lock's owner died meanwhile, Wait still returns (with the lock held) and
// the lock's owner_died() says so: it returns at once then, false unless
// it took a signal (a spurious wake-up), since waiting on would release the
// lock and clear the indication.
//
// Crash safety: a process killed at any instruction strands no waiter, with
// or without a deadline, and leaves the counts consistent (never below
// zero). Waiters sleep in slices of at most 100 ms (kRobustSlice) and look
// at `seq` after each. A notifier killed inside Notify (it holds the lock:
// the next holder sees owner_died()) either died before its grant (nothing
// granted; the waiters are still counted and a later Notify wakes them) or
// after it, before its wake: then `seq` has moved, its sleepers find that
// within one slice, and a later Notify wakes them at once (one wake per
// pending signal; when it finds nobody left to grant to but signals pending
// and sleepers announced, it wakes them all). A waiter killed while counted in
// `waiting` absorbs a share of a later Notify (the signal granted to it is
// never consumed); such a leftover signal is taken only by a waiter that
// entered Wait before some later Notify began: at most a spurious wake-up of a
// waiter that was already waiting then (which a condition allows: use a
// predicate loop). It never makes a Wait that entered after every Notify return
// true, timed out or not. A waiter killed asleep leaves `sleepers` high, which
// costs later notifies a needless FUTEX_WAKE, never a lost one. Both leftovers
// stay for the life of the condition. Checked by verify/condition.pml (kills at
// any step) and tests/fault/sync_hang_test.

#ifndef MP_SYNC_CONDITION_H_
#define MP_SYNC_CONDITION_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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
  // Tests only: the waiting and signals counts.
  uint32_t waiting_for_testing() const { return Waiting(counts_.load()); }
  uint32_t signals_for_testing() const { return Signals(counts_.load()); }

 private:
  // counts_: bits 0-31 waiting, bits 32-63 signals.
  static constexpr uint64_t Pack(uint32_t waiting, uint32_t signals) {
    return (static_cast<uint64_t>(signals) << 32) | waiting;
  }
  static constexpr uint32_t Waiting(uint64_t c) {
    return static_cast<uint32_t>(c);
  }
  static constexpr uint32_t Signals(uint64_t c) {
    return static_cast<uint32_t>(c >> 32);
  }

  // The wait loop once the lock is released: true if `seq_` moved.
  bool SleepWhile(uint32_t seq, Deadline deadline);
  template <class L, class Release, class Reacquire>
  bool WaitImpl(L& lock, Deadline deadline, Release release,
                Reacquire reacquire);

  // Layout: 0 seq_ (futex word, +1 per notify that found waiters),
  // 4 sleepers_ (waiters between announcing a FUTEX_WAIT and returning from
  // it; changed without the lock), 8 counts_ (waiting | signals << 32,
  // changed only under the user's lock, each change one store; atomic so
  // unlocked readers stay race-free).
  FutexWord seq_{0};
  std::atomic<uint32_t> sleepers_{0};
  std::atomic<uint64_t> counts_{0};
};
static_assert(std::is_standard_layout_v<ResidentCondition>);
static_assert(std::is_trivially_destructible_v<ResidentCondition>);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(sizeof(ResidentCondition) == 16);
static_assert(alignof(ResidentCondition) == 8);

// A handle: a ResidentCondition in shared memory plus the lock it uses.
// Lockable itself (lock/unlock/try_lock) so `std::unique_lock l(cond)` is
// Python's `with cond:`.
class Condition {
 public:
  // Each constructor throws mp::Error (ResourceExhausted) when no shared
  // mapping can be made; Create() returns it instead.
  Condition() : Condition(RLock()) {}
  // A condition over a fresh RLock (as Condition()), or the error.
  static absl::StatusOr<Condition> Create();
  explicit Condition(Lock lock)
      : state_(Shared<ResidentCondition>::Make()), lock_(std::move(lock)) {}
  explicit Condition(RLock lock)
      : state_(Shared<ResidentCondition>::Make()), lock_(std::move(lock)) {}

  // Named: one /dev/shm segment `name` holds the condition and its lock (an
  // RLock, Python's default), for processes that are not parent and child.
  // Create: O_EXCL, `mode`, AlreadyExists when taken. Open:
  // SharedMemory::Open's owner and mode checks, then the common header:
  // InvalidArgument for another kind of segment, DataLoss for one that is
  // not mp's. Unlink removes the name; handles stay valid.
  static absl::StatusOr<Condition> Create(std::string_view name,
                                          mode_t mode = 0600);
  static absl::StatusOr<Condition> Open(std::string_view name,
                                        const SegmentAccess& access = {});
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }

  // Python's wait(timeout): true if notified, false on timeout. The
  // Deadline and duration forms, and Python's seconds (nullopt: forever).
  bool Wait(Deadline deadline);
  template <class Rep, class Period>
  bool Wait(std::chrono::duration<Rep, Period> timeout) {
    return Wait(Deadline::After(timeout));
  }
  bool Wait(std::optional<double> timeout_seconds = std::nullopt) {
    return Wait(Deadline::FromPython(timeout_seconds));
  }
  // Python's wait_for(predicate, timeout): waits until pred() is true;
  // returns the last value of pred() (false: the deadline passed).
  template <class Pred>
  bool WaitFor(Pred pred, Deadline deadline) {
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
  template <class Pred>
  bool WaitFor(Pred pred,
               std::optional<double> timeout_seconds = std::nullopt) {
    return WaitFor(std::move(pred), Deadline::FromPython(timeout_seconds));
  }
  void Notify(int n = 1);
  void NotifyAll();

  // The underlying lock, with Lock's three forms (see lock.h): LockResult
  // for a Deadline or duration, bool for Python's (block, timeout_seconds).
  LockResult Acquire(Deadline deadline);
  template <class Rep, class Period>
  LockResult Acquire(std::chrono::duration<Rep, Period> timeout) {
    return Acquire(Deadline::After(timeout));
  }
  bool Acquire(bool block = true,
               std::optional<double> timeout_seconds = std::nullopt) {
    return Acquired(Acquire(Deadline::FromPython(block, timeout_seconds)));
  }
  bool Acquire(double) = delete;  // Python's block=0.5: write (true, 0.5)
  absl::Status Release();
  bool owner_died() const;
  void lock() { Acquire(Deadline::Infinite()); }
  bool try_lock() { return Acquired(Acquire(Deadline::Past())); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return Acquired(Acquire(Deadline::After(timeout)));
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> t) {
    return try_lock_for(t - Clock::now());
  }
  void unlock();

 private:
  ResidentCondition& state() const {
    return sync_internal::Checked(state_, "mp::Condition");
  }
  bool HeldByCurrentThread() const;
  Condition(Shared<ResidentCondition> state, RLock lock)
      : state_(std::move(state)), lock_(std::move(lock)) {}

  Shared<ResidentCondition> state_;
  std::variant<Lock, RLock> lock_;
};

}  // namespace mp

#endif  // MP_SYNC_CONDITION_H_
