#include "mp/sync/semaphore.h"

#include <algorithm>
#include <string>

#include "absl/strings/str_cat.h"
#include "mp/sync/internal/fault_points.h"
#include "mp/sync/internal/named.h"
#include "mp/sync/internal/robust_list.h"

namespace mp {

namespace {
absl::Status CheckValue(int value) {
  if (value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("semaphore initial value must be >= 0, got ", value));
  }
  return absl::OkStatus();
}
}  // namespace

bool ResidentSemaphore::TryAcquire() {
  uint32_t v = count_.load(std::memory_order_relaxed);
  while (v > 0) {
    if (count_.compare_exchange_weak(v, v - 1, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return true;
    }
  }
  return false;
}

bool ResidentSemaphore::Acquire(Deadline deadline) {
  for (int i = 0; i < sync_internal::kSpinIterations; ++i) {
    if (TryAcquire()) return true;
    if (i > 0 && deadline.Expired()) return false;
    CpuRelax();
  }
  for (;;) {
    // Register (seq_cst: the Dekker pair with Release's CAS-then-load),
    // remembering the epoch we registered in.
    const uint32_t tag =
        waiters_.fetch_add(1, std::memory_order_seq_cst) & kEpochMask;
    if (count_.load(std::memory_order_seq_cst) == 0) {
      MP_FAULT_POINT("semaphore.acquire.before_sleep");
      // A slice: a releaser killed between its add and its wake leaves us
      // asleep with a unit free; we find it at the end of the slice.
      FutexWait(&count_, 0, sync_internal::SliceOf(deadline));
    }
    Unregister(tag);
    if (TryAcquire()) return true;
    if (deadline.Expired()) return false;
  }
}

void ResidentSemaphore::Unregister(uint32_t tag) {
  // Take our registration back only if it is still counted: a Release that
  // reset the count (new epoch) has dropped it already. Never below zero.
  uint32_t w = waiters_.load(std::memory_order_relaxed);
  while ((w & kEpochMask) == tag && (w & kCountMask) != 0) {
    if (waiters_.compare_exchange_weak(w, w - 1, std::memory_order_relaxed)) {
      return;
    }
  }
}

absl::Status ResidentSemaphore::Release(int n) {
  if (n < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("release count must be >= 1, got ", n));
  }
  // The bound is bytes in shared memory: never above kMaxValue, whatever a
  // writer left there.
  const uint32_t limit = std::min(bound_, kMaxValue);
  uint32_t v = count_.load(std::memory_order_relaxed);
  do {
    if (static_cast<uint64_t>(v) + static_cast<uint64_t>(n) > limit) {
      return absl::FailedPreconditionError(
          "semaphore or lock released too many times");
    }
  } while (!count_.compare_exchange_weak(v, v + static_cast<uint32_t>(n),
                                         std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  MP_FAULT_POINT("semaphore.release.after_add");
  uint32_t w = waiters_.load(std::memory_order_seq_cst);
  if ((w & kCountMask) != 0 && FutexWake(&count_, n) == 0) {
    // Registered waiters, yet nobody was asleep in the kernel: each counted
    // one is dead (killed asleep), or between its registration and its
    // FUTEX_WAIT (which now sees the unit we added and returns), or awake
    // and about to unregister. Drop them all by opening a new epoch, so that
    // a dead waiter's count does not cost every later Release a system
    // call. A live one that sleeps after this, unregistered (another
    // acquirer took our unit first), is woken by its slice at the latest.
    // If the CAS fails the count moved: the next Release looks again.
    waiters_.compare_exchange_strong(w, (w + kEpochOne) & kEpochMask,
                                     std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

namespace {

absl::StatusOr<Shared<ResidentSemaphore>> NewState(int value, bool bounded) {
  if (absl::Status s = CheckValue(value); !s.ok()) return s;
  const uint32_t v = static_cast<uint32_t>(value);
  return Shared<ResidentSemaphore>::Create(
      v, bounded ? v : ResidentSemaphore::kMaxValue);
}

}  // namespace

Semaphore::Semaphore(int value, bool bounded)
    : state_(ValueOrThrow(NewState(value, bounded))) {}

absl::StatusOr<Semaphore> Semaphore::Create(int value) {
  absl::StatusOr<Shared<ResidentSemaphore>> state = NewState(value, false);
  if (!state.ok()) return state.status();
  return Semaphore(*std::move(state));
}

absl::StatusOr<BoundedSemaphore> BoundedSemaphore::Create(int value) {
  absl::StatusOr<Shared<ResidentSemaphore>> state = NewState(value, true);
  if (!state.ok()) return state.status();
  return BoundedSemaphore(*std::move(state));
}

absl::Status Semaphore::Release(int n) {
  if (!state_) return absl::FailedPreconditionError("moved-from mp::Semaphore");
  return state_->Release(n);
}

void Semaphore::release(std::ptrdiff_t n) {
  if (n < 1 || n > INT_MAX) sync_internal::Die("mp::Semaphore::release: bad count");
  absl::Status s = Release(static_cast<int>(n));
  if (!s.ok()) {
    sync_internal::Die(
        ("mp::Semaphore::release: " + std::string(s.message())).c_str());
  }
}

namespace {

absl::StatusOr<Shared<ResidentSemaphore>> CreateNamedSemaphore(
    std::string_view name, int value, bool bounded, mode_t mode) {
  if (absl::Status s = CheckValue(value); !s.ok()) return s;
  const uint32_t v = static_cast<uint32_t>(value);
  const uint32_t bound = bounded ? v : ResidentSemaphore::kMaxValue;
  auto mem = sync_internal::CreateNamed<ResidentSemaphore>(
      name, SegmentKind::kSemaphore, mode,
      [v, bound](void* at) { new (at) ResidentSemaphore(v, bound); });
  if (!mem.ok()) return mem.status();
  return Shared<ResidentSemaphore>::At(*std::move(mem),
                                       sync_internal::kNamedStateOffset);
}

}  // namespace

absl::StatusOr<Semaphore> Semaphore::Create(std::string_view name, int value,
                                            mode_t mode) {
  auto state = CreateNamedSemaphore(name, value, /*bounded=*/false, mode);
  if (!state.ok()) return state.status();
  return Semaphore(*std::move(state));
}

absl::StatusOr<BoundedSemaphore> BoundedSemaphore::Create(
    std::string_view name, int value, mode_t mode) {
  auto state = CreateNamedSemaphore(name, value, /*bounded=*/true, mode);
  if (!state.ok()) return state.status();
  return BoundedSemaphore(*std::move(state));
}

absl::StatusOr<Semaphore> Semaphore::Open(std::string_view name,
                                          const SegmentAccess& access) {
  auto mem = sync_internal::OpenNamed<ResidentSemaphore>(
      name, SegmentKind::kSemaphore, access);
  if (!mem.ok()) return mem.status();
  return Semaphore(Shared<ResidentSemaphore>::At(
      *std::move(mem), sync_internal::kNamedStateOffset));
}

}  // namespace mp
