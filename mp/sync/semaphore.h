// mp/sync/semaphore.h
// -----------------------------------------------------------------------------
// Semaphore and BoundedSemaphore: multiprocessing's, on a futex counter.
//
//   mp::Semaphore s(3);
//   { std::lock_guard g(s); ... }      // Python's `with s:` (acquire/release)
//   s.Acquire(); MP_CHECK_OK(s.Release());
//   if (s.Acquire(true, 0.5)) ...      // Python's acquire(timeout=0.5)
//   if (s.Acquire(std::chrono::milliseconds(500))) ...
//
// `ResidentSemaphore` is the resident state (12 bytes). The count is the
// futex word; `waiters_` counts sleepers so Release makes a system call only
// when one may sleep (both sides use seq_cst: a releaser either sees the
// waiter or the waiter sees the new count). Acquire spins briefly first.
//
// Bad input: a negative initial value, or above kMaxValue (INT_MAX, Python's
// SEM_VALUE_MAX): Create() returns InvalidArgument, the constructor throws
// mp::Error with it (Python raises ValueError). No shared memory left:
// ResourceExhausted, the same two ways. Release(n) with n < 1: InvalidArgument;
// over-release of a BoundedSemaphore (count would exceed its initial value) or
// past kMaxValue: FailedPrecondition ("semaphore or lock released too many
// times"), and the count is unchanged. A holder that dies does not give its
// unit back (semaphores have no owner, as in Python); waiters with a timeout
// still return at their deadline.
//
// Crash safety: a process killed at any instruction strands no waiter.
// Acquire sleeps in slices of at most 100 ms (kRobustSlice) and tries again
// after each, so a releaser killed between raising the count and its
// FUTEX_WAKE delays a sleeper by one slice at most, even with no deadline.
// A waiter killed asleep leaves its registration in `waiters_`; the first
// Release that wakes nobody while waiters are registered drops every
// registration (a new epoch in the word's high bits), so the count heals
// and later Releases make no system call. A live waiter caught by such a
// reset between its registration and its sleep either finds the released
// unit (its FUTEX_WAIT returns at once) or, if another acquirer took it,
// sleeps unregistered until its slice ends; its own unregistration then
// does nothing (it checks the epoch), so the count never underflows.

#ifndef MP_SYNC_SEMAPHORE_H_
#define MP_SYNC_SEMAPHORE_H_

#include <atomic>
#include <chrono>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/lock.h"

namespace mp {

class ResidentSemaphore {
 public:
  static constexpr uint32_t kMaxValue = INT_MAX;

  // `value` <= `bound` <= kMaxValue: the largest count Release may reach
  // (kMaxValue for a plain Semaphore, the initial value for a bounded one).
  constexpr ResidentSemaphore(uint32_t value, uint32_t bound)
      : count_(value), waiters_(0), bound_(bound) {}
  ResidentSemaphore(const ResidentSemaphore&) = delete;
  ResidentSemaphore& operator=(const ResidentSemaphore&) = delete;

  // True if a unit was taken, false if `deadline` passed first.
  bool Acquire(Deadline deadline = Deadline::Infinite());
  bool TryAcquire();
  absl::Status Release(int n = 1);
  uint32_t GetValue() const { return count_.load(std::memory_order_relaxed); }

  // Tests only: the registered waiters (sleepers, or about to sleep).
  uint32_t waiters_for_testing() const {
    return waiters_.load(std::memory_order_relaxed) & kCountMask;
  }

 private:
  // waiters_: bits 0-21 the count of registered waiters, bits 22-31 an
  // epoch that Release bumps when it drops registrations nobody backs
  // (Release, semaphore.cc). 22 bits hold any number of threads
  // (PID_MAX_LIMIT is 2^22); a waiter unregisters only while the epoch is
  // the one it registered in, so a reset never lets the count underflow.
  static constexpr uint32_t kCountBits = 22;
  static constexpr uint32_t kCountMask = (uint32_t{1} << kCountBits) - 1;
  static constexpr uint32_t kEpochMask = ~kCountMask;
  static constexpr uint32_t kEpochOne = uint32_t{1} << kCountBits;
  static_assert((kEpochMask & kEpochOne) == kEpochOne);

  void Unregister(uint32_t tag);

  // Layout: 0 count_ (futex word: free units), 4 waiters_ (epoch | count of
  // waiters asleep or about to sleep), 8 bound_ (largest count; immutable
  // after construction).
  FutexWord count_;
  std::atomic<uint32_t> waiters_;
  uint32_t bound_;
};
static_assert(std::is_standard_layout_v<ResidentSemaphore>);
static_assert(std::is_trivially_destructible_v<ResidentSemaphore>);
static_assert(FutexWord::is_always_lock_free);
static_assert(sizeof(ResidentSemaphore) == 12);

class Semaphore {
 public:
  // Throws mp::Error (InvalidArgument if value < 0 or value > kMaxValue,
  // ResourceExhausted without shared memory); Create returns the status.
  explicit Semaphore(int value = 1) : Semaphore(value, false) {}
  static absl::StatusOr<Semaphore> Create(int value = 1);
  explicit Semaphore(Shared<ResidentSemaphore> state)
      : state_(std::move(state)) {}

  // Named: the /dev/shm segment `name`, for processes that are not parent
  // and child. Create: O_EXCL, `mode`, AlreadyExists when taken. Open:
  // SharedMemory::Open's owner and mode checks, then the common header:
  // InvalidArgument for another kind of segment, DataLoss for one that is
  // not mp's. Unlink removes the name; handles stay valid.
  // Create: InvalidArgument for a negative value. A named
  // BoundedSemaphore keeps its bound in the segment, so Open works for both.
  static absl::StatusOr<Semaphore> Create(std::string_view name, int value,
                                          mode_t mode = 0600);
  static absl::StatusOr<Semaphore> Open(std::string_view name,
                                        const SegmentAccess& access = {});
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }

  // True if a unit was taken, false if the deadline passed first. The
  // Deadline and duration forms, and Python's acquire(block=True,
  // timeout=None) (block = false: one try; nullopt: forever).
  bool Acquire(Deadline deadline) { return state().Acquire(deadline); }
  template <class Rep, class Period>
  bool Acquire(std::chrono::duration<Rep, Period> timeout) {
    return Acquire(Deadline::After(timeout));
  }
  bool Acquire(bool block = true,
               std::optional<double> timeout_seconds = std::nullopt) {
    return Acquire(Deadline::FromPython(block, timeout_seconds));
  }
  // Python's acquire(0.5) means block=0.5 (truthy), not a timeout: spell
  // Acquire(true, 0.5).
  bool Acquire(double) = delete;
  bool TryAcquire() { return state().TryAcquire(); }
  absl::Status Release(int n = 1);
  // A snapshot of the count (Python's get_value).
  int GetValue() const { return static_cast<int>(state().GetValue()); }

  // std::counting_semaphore names; release() aborts on misuse.
  void acquire() { Acquire(Deadline::Infinite()); }
  bool try_acquire() { return TryAcquire(); }
  template <class Rep, class Period>
  bool try_acquire_for(std::chrono::duration<Rep, Period> timeout) {
    return Acquire(Deadline::After(timeout));
  }
  template <class Clock, class Duration>
  bool try_acquire_until(std::chrono::time_point<Clock, Duration> t) {
    return try_acquire_for(t - Clock::now());
  }
  void release(std::ptrdiff_t n = 1);
  // BasicLockable, for std::lock_guard (Python's `with s:`).
  void lock() { acquire(); }
  void unlock() { release(); }

  ResidentSemaphore& state() const {
    return sync_internal::Checked(state_, "mp::Semaphore");
  }

 protected:
  Semaphore(int value, bool bounded);

 private:
  Shared<ResidentSemaphore> state_;
};

// A Semaphore whose count may never exceed its initial value.
class BoundedSemaphore : public Semaphore {
 public:
  // Throws mp::Error as Semaphore's constructor does.
  explicit BoundedSemaphore(int value = 1) : Semaphore(value, true) {}
  static absl::StatusOr<BoundedSemaphore> Create(int value = 1);
  // A named one (see Semaphore); Open with Semaphore::Open.
  static absl::StatusOr<BoundedSemaphore> Create(std::string_view name,
                                                 int value,
                                                 mode_t mode = 0600);

 private:
  explicit BoundedSemaphore(Shared<ResidentSemaphore> state)
      : Semaphore(std::move(state)) {}
};

}  // namespace mp

#endif  // MP_SYNC_SEMAPHORE_H_
