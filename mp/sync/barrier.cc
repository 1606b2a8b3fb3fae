// mp/sync/barrier.cc — Python's threading.Barrier algorithm, resident.

#include "mp/sync/barrier.h"

#include <climits>
#include <string>

#include "absl/strings/str_cat.h"
#include "mp/sync/internal/fault_points.h"

namespace mp {

namespace {
absl::Status BrokenError() { return absl::AbortedError("barrier is broken"); }
}  // namespace

bool ResidentBarrier::Lock(Deadline deadline) {
  const LockResult r = lock_.Acquire(deadline);
  if (r == LockResult::kTimedOut) return false;
  if (r == LockResult::kOwnerDied) Break();
  return true;
}

bool ResidentBarrier::Consistent() const {
  const int32_t s = state_.load(std::memory_order_relaxed);
  const uint32_t count = count_.load(std::memory_order_relaxed);
  if (s != kFilling && s != kDraining && s != kResetting && s != kBroken) {
    return false;
  }
  if (parties_ < 1 || parties_ > static_cast<uint32_t>(INT_MAX)) return false;
  // Filling, the last arrival turns the state to draining: count < parties.
  return s == kFilling ? count < parties_ : count <= parties_;
}

void ResidentBarrier::Unlock() { (void)lock_.Release(); }

void ResidentBarrier::Break() {
  state_.store(kBroken, std::memory_order_relaxed);
  cond_.NotifyAll();
}

absl::StatusOr<int> ResidentBarrier::Wait(Deadline deadline,
                                          const std::function<void()>* action) {
  if (!Lock(deadline)) {
    return absl::DeadlineExceededError(
        "barrier: its lock is held past the deadline");
  }
  // Bytes no barrier holds (another process wrote them): a broken barrier.
  if (!Consistent()) Break();
  // Enter: block while the previous round drains or resets. The deadline
  // is checked on every round, notified or not: a condition whose counts a
  // writer inflated would otherwise "notify" this loop for ever.
  for (;;) {
    const int32_t s = state_.load(std::memory_order_relaxed);
    if (s != kDraining && s != kResetting) break;
    if (deadline.Expired()) {
      Break();
      break;
    }
    cond_.Wait(lock_, deadline);
    if (lock_.owner_died()) Break();
  }
  if (state_.load(std::memory_order_relaxed) < 0) {
    Unlock();
    return BrokenError();
  }
  const uint32_t index = count_.load(std::memory_order_relaxed);
  count_.store(index + 1, std::memory_order_relaxed);
  MP_FAULT_POINT("barrier.wait.after_arrive");
  absl::Status status;
  if (index + 1 == parties_) {
    // Release: run the action, then let everyone go.
    if (action != nullptr && *action) {
      try {
        (*action)();
      } catch (...) {
        Break();
        count_.fetch_sub(1, std::memory_order_relaxed);
        Unlock();
        throw;
      }
    }
    state_.store(kDraining, std::memory_order_relaxed);
    cond_.NotifyAll();
  } else {
    // A timeout breaks the barrier for everyone, as in Python.
    while (state_.load(std::memory_order_relaxed) == kFilling) {
      if (deadline.Expired()) {
        Break();
        break;
      }
      cond_.Wait(lock_, deadline);
      if (lock_.owner_died()) Break();
    }
    if (state_.load(std::memory_order_relaxed) < 0) status = BrokenError();
  }
  // Exit: the last one out ends draining / resetting.
  const uint32_t left = count_.load(std::memory_order_relaxed) - 1;
  count_.store(left, std::memory_order_relaxed);
  if (left == 0) {
    const int32_t s = state_.load(std::memory_order_relaxed);
    if (s == kDraining || s == kResetting) {
      state_.store(kFilling, std::memory_order_relaxed);
      cond_.NotifyAll();
    }
  }
  Unlock();
  if (!status.ok()) return status;
  return static_cast<int>(index);
}

void ResidentBarrier::Abort() {
  Lock(Deadline::Infinite());
  Break();
  Unlock();
}

void ResidentBarrier::Reset() {
  Lock(Deadline::Infinite());
  if (count_.load(std::memory_order_relaxed) > 0) {
    const int32_t s = state_.load(std::memory_order_relaxed);
    if (s == kFilling || s == kBroken) {
      state_.store(kResetting, std::memory_order_relaxed);
    }
  } else {
    state_.store(kFilling, std::memory_order_relaxed);
  }
  cond_.NotifyAll();
  Unlock();
}

absl::StatusOr<Barrier> Barrier::Create(int parties, Action action,
                                        std::optional<double> timeout_seconds) {
  if (parties < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("barrier parties must be >= 1, got ", parties));
  }
  absl::StatusOr<Shared<ResidentBarrier>> state =
      Shared<ResidentBarrier>::Create(static_cast<uint32_t>(parties));
  if (!state.ok()) return state.status();
  return Barrier(*std::move(state), std::move(action), timeout_seconds);
}

Barrier::Barrier(int parties, Action action,
                 std::optional<double> timeout_seconds)
    : Barrier(
          ValueOrThrow(Create(parties, std::move(action), timeout_seconds))) {}

}  // namespace mp
