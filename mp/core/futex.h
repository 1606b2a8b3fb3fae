// mp/core/futex.h
// -----------------------------------------------------------------------------
// Thin, typed wrappers over the Linux futex system call, for futex words that
// live in memory shared between processes.
//
// Every word passed here may be mapped by another process, so these wrappers
// never use FUTEX_PRIVATE_FLAG: the choice is explicit in `FutexScope`, and
// the default is `kShared`. `kPrivate` exists only for memory that provably
// never leaves one process (it saves the kernel a page-table walk).
//
// Deadlines are absolute points on CLOCK_MONOTONIC (`mp::Deadline`, built from
// std::chrono::steady_clock, which libstdc++ implements on CLOCK_MONOTONIC).
// A wait interrupted by a signal re-waits with the time that is left, so a
// caller never sees EINTR. A wake-up may still be spurious: callers re-check
// the condition they wait for, as with any futex.

#ifndef MP_CORE_FUTEX_H_
#define MP_CORE_FUTEX_H_

#include <time.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <type_traits>

namespace mp {

// An absolute point in time on CLOCK_MONOTONIC, or "never".
class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  // A deadline that never expires.
  static constexpr Deadline Infinite() { return Deadline(); }
  // A deadline `d` from now. Negative or zero durations give a deadline that
  // has already passed (a poll), never an infinite one.
  template <class Rep, class Period>
  static Deadline After(std::chrono::duration<Rep, Period> d) {
    if (d <= d.zero()) return Past();
    if (d >= std::chrono::duration<Rep, Period>::max() / 2) return Infinite();
    return At(Clock::now() + std::chrono::ceil<Clock::duration>(d));
  }
  // Seconds as Python writes timeouts (`join(1.5)`). NaN or negative: a poll.
  static Deadline AfterSeconds(double seconds);
  // Python's timeout argument: nullopt (None) waits forever, a number as
  // AfterSeconds. What every `(std::optional<double> timeout_seconds)` form
  // in mp means.
  static Deadline FromPython(std::optional<double> timeout_seconds) {
    return timeout_seconds ? AfterSeconds(*timeout_seconds) : Infinite();
  }
  // Python's (block, timeout) pair, as queue.get and lock.acquire read it:
  // block = false is one try whatever the timeout.
  static Deadline FromPython(bool block,
                             std::optional<double> timeout_seconds) {
    return block ? FromPython(timeout_seconds) : Past();
  }
  static Deadline At(Clock::time_point t) {
    Deadline d;
    d.infinite_ = false;
    d.at_ = t;
    return d;
  }
  // A deadline that has already passed: wait calls become polls.
  static Deadline Past() { return At(Clock::time_point{}); }
  // Whichever of `a` and `b` comes first (a sliced sleep's end:
  // Earlier(deadline, Deadline::After(slice))).
  static Deadline Earlier(Deadline a, Deadline b) {
    if (a.infinite()) return b;
    if (b.infinite()) return a;
    return a.time_point() < b.time_point() ? a : b;
  }

  bool infinite() const { return infinite_; }
  bool Expired() const { return !infinite_ && Clock::now() >= at_; }
  Clock::time_point time_point() const { return at_; }
  // Time left, zero when expired, max() when infinite.
  Clock::duration Remaining() const;
  // The deadline as a CLOCK_MONOTONIC timespec (undefined when infinite).
  timespec ToTimespec() const;
  // Milliseconds left, rounded up, for poll(2); -1 when infinite.
  int PollMillis() const;

 private:
  constexpr Deadline() = default;
  bool infinite_ = true;
  Clock::time_point at_{};
};

enum class FutexScope { kShared, kPrivate };

enum class FutexResult {
  kWoken,          // woken by a FUTEX_WAKE, or spuriously: re-check the word
  kValueMismatch,  // the word did not hold `expected` when the call was made
  kTimedOut,       // the deadline passed
};

using FutexWord = std::atomic<uint32_t>;
static_assert(std::is_standard_layout_v<FutexWord>);
static_assert(sizeof(FutexWord) == sizeof(uint32_t));
static_assert(FutexWord::is_always_lock_free);

// Sleeps while `*word == expected`, until woken or until `deadline`.
FutexResult FutexWait(const FutexWord* word, uint32_t expected,
                      Deadline deadline = Deadline::Infinite(),
                      FutexScope scope = FutexScope::kShared);

// Wakes at most `count` sleepers on `word`; returns how many were woken.
int FutexWake(const FutexWord* word, int count,
              FutexScope scope = FutexScope::kShared);
inline int FutexWakeOne(const FutexWord* word,
                        FutexScope scope = FutexScope::kShared) {
  return FutexWake(word, 1, scope);
}
inline int FutexWakeAll(const FutexWord* word,
                        FutexScope scope = FutexScope::kShared) {
  return FutexWake(word, std::numeric_limits<int>::max(), scope);
}

// A CPU hint for busy-wait loops (PAUSE on x86).
inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

}  // namespace mp

#endif  // MP_CORE_FUTEX_H_
