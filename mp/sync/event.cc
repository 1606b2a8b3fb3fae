#include "mp/sync/event.h"

#include "mp/sync/internal/fault_points.h"
#include "mp/sync/internal/named.h"
#include "mp/sync/internal/robust_list.h"

namespace mp {

void ResidentEvent::Set() {
  // Clearing WAITERS here is safe: every woken waiter re-sets it before it
  // sleeps again.
  const uint32_t old = word_.exchange(kSet, std::memory_order_release);
  MP_FAULT_POINT("event.set.after_exchange");
  if ((old & kWaiters) != 0) FutexWakeAll(&word_);
}

bool ResidentEvent::Wait(Deadline deadline) {
  for (int i = 0; i < sync_internal::kSpinIterations; ++i) {
    if (IsSet()) return true;
    if (i > 0 && deadline.Expired()) return false;
    CpuRelax();
  }
  for (;;) {
    uint32_t v = word_.load(std::memory_order_acquire);
    if ((v & kSet) != 0) return true;
    if (deadline.Expired()) return false;
    if ((v & kWaiters) == 0 &&
        !word_.compare_exchange_weak(v, v | kWaiters,
                                     std::memory_order_relaxed)) {
      continue;
    }
    MP_FAULT_POINT("event.wait.before_sleep");
    // Sleep in slices, then look at the flag again: a setter killed between
    // its exchange and its FUTEX_WAKE owes us a wake-up it will never make
    // (the flag is set, WAITERS already cleared). As ResidentLock does.
    FutexWait(&word_, v | kWaiters, sync_internal::SliceOf(deadline));
  }
}

absl::StatusOr<Event> Event::Create(std::string_view name, mode_t mode) {
  auto mem = sync_internal::CreateNamed<ResidentEvent>(
      name, SegmentKind::kEvent, mode,
      [](void* at) { new (at) ResidentEvent(); });
  if (!mem.ok()) return mem.status();
  return Event(Shared<ResidentEvent>::At(*std::move(mem),
                                         sync_internal::kNamedStateOffset));
}

absl::StatusOr<Event> Event::Open(std::string_view name,
                                  const SegmentAccess& access) {
  auto mem = sync_internal::OpenNamed<ResidentEvent>(name, SegmentKind::kEvent,
                                                     access);
  if (!mem.ok()) return mem.status();
  return Event(Shared<ResidentEvent>::At(*std::move(mem),
                                         sync_internal::kNamedStateOffset));
}

}  // namespace mp
