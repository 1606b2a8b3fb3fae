#include "mp/core/futex.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace mp {

Deadline Deadline::AfterSeconds(double seconds) {
  if (!(seconds > 0)) return Past();  // NaN and negatives: a poll
  if (seconds > 1e9) return Infinite();
  return After(std::chrono::duration<double>(seconds));
}

Deadline::Clock::duration Deadline::Remaining() const {
  if (infinite_) return Clock::duration::max();
  auto left = at_ - Clock::now();
  return left > Clock::duration::zero() ? left : Clock::duration::zero();
}

timespec Deadline::ToTimespec() const {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                at_.time_since_epoch())
                .count();
  if (ns < 0) return timespec{0, 0};
  return timespec{static_cast<time_t>(ns / 1000000000),
                  static_cast<long>(ns % 1000000000)};
}

int Deadline::PollMillis() const {
  if (infinite_) return -1;
  auto left = std::chrono::ceil<std::chrono::milliseconds>(Remaining());
  if (left.count() > std::numeric_limits<int>::max() / 2) {
    return std::numeric_limits<int>::max() / 2;
  }
  return static_cast<int>(left.count());
}

namespace {

int Op(int op, FutexScope scope) {
  return scope == FutexScope::kPrivate ? (op | FUTEX_PRIVATE_FLAG) : op;
}

}  // namespace

FutexResult FutexWait(const FutexWord* word, uint32_t expected,
                      Deadline deadline, FutexScope scope) {
  // FUTEX_WAIT_BITSET takes an absolute timeout on CLOCK_MONOTONIC (no
  // FUTEX_CLOCK_REALTIME), so re-waiting after EINTR needs no arithmetic.
  timespec ts;
  const timespec* tsp = nullptr;
  if (!deadline.infinite()) {
    if (deadline.Expired()) {
      return word->load(std::memory_order_relaxed) == expected
                 ? FutexResult::kTimedOut
                 : FutexResult::kValueMismatch;
    }
    ts = deadline.ToTimespec();
    tsp = &ts;
  }
  for (;;) {
    long rc = syscall(SYS_futex, const_cast<FutexWord*>(word),
                      Op(FUTEX_WAIT_BITSET, scope), expected, tsp, nullptr,
                      FUTEX_BITSET_MATCH_ANY);
    if (rc == 0) return FutexResult::kWoken;
    switch (errno) {
      case EINTR:
        continue;
      case EAGAIN:
        return FutexResult::kValueMismatch;
      case ETIMEDOUT:
        return FutexResult::kTimedOut;
      default:
        std::fprintf(stderr, "mp: futex wait failed: errno %d\n", errno);
        std::abort();
    }
  }
}

int FutexWake(const FutexWord* word, int count, FutexScope scope) {
  long rc = syscall(SYS_futex, const_cast<FutexWord*>(word),
                    Op(FUTEX_WAKE, scope), count, nullptr, nullptr, 0);
  if (rc < 0) {
    std::fprintf(stderr, "mp: futex wake failed: errno %d\n", errno);
    std::abort();
  }
  return static_cast<int>(rc);
}

}  // namespace mp
