// mp/sync/barrier.h
// -----------------------------------------------------------------------------
// Barrier: multiprocessing.Barrier (threading.Barrier's semantics) for
// processes and threads.
//
//   mp::Barrier b(3, [] { std::puts("all here"); });
//   absl::StatusOr<int> index = b.Wait();   // 0..parties-1, or Aborted
//
// Wait returns the arrival index (0 .. parties-1). The last party to arrive
// runs the action (in exactly one process), then releases the others. If the
// action throws, the barrier breaks and the exception propagates from that
// party's Wait. Errors (Python's BrokenBarrierError): Aborted "barrier is
// broken" when the barrier is or becomes broken while waiting: Abort(), a
// Reset() while parties wait, a waiter's timeout (which breaks it for all,
// as in Python), or a process that died holding the barrier's internal lock.
// A party killed while waiting leaves the others waiting until their
// timeout: give Wait a deadline (or the Barrier a default timeout) when a
// peer may die. Reset() returns it to the empty, unbroken state.
// DeadlineExceeded: Wait could not even take the barrier's internal lock by
// its deadline (a peer stopped while holding it, or bytes naming a live
// thread as its holder); the barrier is unchanged. Abort() and Reset() wait
// for that lock without a deadline, as Python's do. A barrier whose bytes
// hold no valid state (an unknown state, parties outside 1..INT_MAX, more
// parties inside than it has) is broken: Wait returns Aborted.
//
// `ResidentBarrier` (72 bytes) is Python's algorithm over a ResidentLock and
// a ResidentCondition: a state (filling, draining, resetting, broken) and
// the number of parties inside Wait. The action lives in the handle, since
// code cannot live in shared memory. Bad input: parties < 1 (Create returns
// InvalidArgument; the constructor throws mp::Error with it).

#ifndef MP_SYNC_BARRIER_H_
#define MP_SYNC_BARRIER_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/condition.h"
#include "mp/sync/lock.h"

namespace mp {

class ResidentBarrier {
 public:
  explicit constexpr ResidentBarrier(uint32_t parties) : parties_(parties) {}
  ResidentBarrier(const ResidentBarrier&) = delete;
  ResidentBarrier& operator=(const ResidentBarrier&) = delete;

  // `action` may be null or empty.
  absl::StatusOr<int> Wait(Deadline deadline,
                           const std::function<void()>* action);
  void Abort();
  void Reset();
  bool Broken() const {
    return state_.load(std::memory_order_relaxed) == kBroken;
  }
  int NWaiting() const {
    return state_.load(std::memory_order_relaxed) == kFilling
               ? static_cast<int>(count_.load(std::memory_order_relaxed))
               : 0;
  }
  int Parties() const { return static_cast<int>(parties_); }

 private:
  static constexpr int32_t kFilling = 0;
  static constexpr int32_t kDraining = 1;
  static constexpr int32_t kResetting = -1;
  static constexpr int32_t kBroken = -2;

  // Acquires lock_ by `deadline` (false if not); breaks the barrier on
  // owner death.
  bool Lock(Deadline deadline);
  void Unlock();
  // Whether state, count and parties are values a barrier can hold.
  bool Consistent() const;
  void Break();

  // Layout: 0 lock_ (40 bytes), 40 cond_ (16), 56 state_, 60 count_,
  // 64 parties_ (immutable), 68 padding to 72. state_/count_ change under
  // lock_.
  ResidentLock lock_;
  ResidentCondition cond_;
  std::atomic<int32_t> state_{kFilling};
  std::atomic<uint32_t> count_{0};
  uint32_t parties_;
};
static_assert(std::is_standard_layout_v<ResidentBarrier>);
static_assert(std::is_trivially_destructible_v<ResidentBarrier>);
static_assert(std::atomic<int32_t>::is_always_lock_free);
static_assert(sizeof(ResidentBarrier) == 72);

class Barrier {
 public:
  using Action = std::function<void()>;
  // Python's Barrier(parties, action=None, timeout=None). `timeout`: the
  // default for Wait() (seconds, or any std::chrono duration). Throws
  // mp::Error: InvalidArgument if parties < 1, ResourceExhausted when no
  // shared mapping can be made; Create returns those instead.
  explicit Barrier(int parties, Action action = {},
                   std::optional<double> timeout_seconds = std::nullopt);
  template <class Rep, class Period>
  Barrier(int parties, Action action,
          std::chrono::duration<Rep, Period> timeout)
      : Barrier(parties, std::move(action), ToSeconds(timeout)) {}
  static absl::StatusOr<Barrier> Create(
      int parties, Action action = {},
      std::optional<double> timeout_seconds = std::nullopt);
  template <class Rep, class Period>
  static absl::StatusOr<Barrier> Create(
      int parties, Action action, std::chrono::duration<Rep, Period> timeout) {
    return Create(parties, std::move(action), ToSeconds(timeout));
  }

  // The arrival index, or Aborted "barrier is broken" (see the banner for
  // every code). The Deadline and duration forms, and Python's
  // wait(timeout=None): nullopt uses the barrier's default timeout.
  absl::StatusOr<int> Wait(Deadline deadline) {
    return state().Wait(deadline, &action_);
  }
  template <class Rep, class Period>
  absl::StatusOr<int> Wait(std::chrono::duration<Rep, Period> timeout) {
    return Wait(Deadline::After(timeout));
  }
  absl::StatusOr<int> Wait(
      std::optional<double> timeout_seconds = std::nullopt) {
    return Wait(Deadline::FromPython(timeout_seconds ? timeout_seconds
                                                     : timeout_seconds_));
  }
  void Abort() { state().Abort(); }
  void Reset() { state().Reset(); }
  bool Broken() const { return state().Broken(); }
  int NWaiting() const { return state().NWaiting(); }
  int Parties() const { return state().Parties(); }

  ResidentBarrier& state() const {
    return sync_internal::Checked(state_, "mp::Barrier");
  }

 private:
  template <class Rep, class Period>
  static double ToSeconds(std::chrono::duration<Rep, Period> d) {
    return std::chrono::duration<double>(d).count();
  }
  Barrier(Shared<ResidentBarrier> state, Action action,
          std::optional<double> timeout_seconds)
      : state_(std::move(state)),
        action_(std::move(action)),
        timeout_seconds_(timeout_seconds) {}

  Shared<ResidentBarrier> state_;
  Action action_;
  std::optional<double> timeout_seconds_;  // Python's default timeout
};

}  // namespace mp

#endif  // MP_SYNC_BARRIER_H_
