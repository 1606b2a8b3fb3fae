#include "mp/queue/internal/pid_lock.h"

#include "mp/core/liveness.h"

namespace mp::queue_internal {
namespace {

constexpr int kLockSpinIterations = 100;

}  // namespace

PidLock::Acquired PidLock::Lock(Deadline deadline) {
  const uint32_t me = liveness::CurrentTid();
  uint32_t expected = 0;
  if (word.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
    return Acquired::kYes;
  }
  for (int i = 0; i < kLockSpinIterations; ++i) {
    CpuRelax();
    expected = 0;
    if (word.load(std::memory_order_relaxed) == 0 &&
        word.compare_exchange_weak(expected, me, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
      return Acquired::kYes;
    }
  }
  // After a sleep we may have taken the wake meant for all sleepers (the
  // unlocker clears the flag): whoever leaves this loop raises it again.
  bool slept = false;
  auto leave = [&](Acquired a) {
    if (slept) waiters.store(1, std::memory_order_relaxed);
    return a;
  };
  for (;;) {
    uint32_t v = word.load(std::memory_order_relaxed);
    if ((v & kHolderMask) == 0) {
      // Free. (A bit 31 with no holder is a state no Unlock leaves, only a
      // writer of the shared bytes; it is a free lock all the same, not one
      // held by "task 0" that no liveness check could ever free.)
      if (word.compare_exchange_weak(v, me, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
        return leave(Acquired::kYes);
      }
      continue;
    }
    if (deadline.Expired()) {
      if (liveness::TaskIsDead(v & kHolderMask)) {
        if (word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return leave(Acquired::kFromDeadHolder);
        }
        continue;
      }
      if (slept) Wake();  // pass on a wake we may have taken
      return leave(Acquired::kNo);
    }
    // Sleep on the epoch, not the word: the holder may unlock and take the
    // lock again before we sleep, leaving the word as we saw it; each wake
    // bumps the epoch.
    const uint32_t e = epoch.load(std::memory_order_acquire);
    const bool covered = RaiseWaitersBeforeLoad(waiters);
    if (word.load(std::memory_order_relaxed) != v) continue;
    Deadline slice = Deadline::Earlier(deadline, Deadline::After(kLivenessSlice));
    if (!covered) slice = Deadline::Earlier(slice, Deadline::After(kUncoveredSlice));
    FutexResult r = FutexWait(&epoch, e, slice);
    slept = true;
    if (r == FutexResult::kTimedOut && liveness::TaskIsDead(v & kHolderMask) &&
        word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return leave(Acquired::kFromDeadHolder);
    }
  }
}

void PidLock::Unlock() {
  word.store(0, std::memory_order_release);
  if (LoadWaitersAfterStore(waiters) != 0 &&
      waiters.exchange(0, std::memory_order_acq_rel) != 0) {
    Wake();
  }
}

void PidLock::Wake() {
  epoch.fetch_add(1, std::memory_order_release);
  FutexWakeOne(&epoch);
}

}  // namespace mp::queue_internal
