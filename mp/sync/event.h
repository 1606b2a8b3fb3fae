// mp/sync/event.h
// -----------------------------------------------------------------------------
// Event: multiprocessing.Event on one futex word.
//
//   mp::Event e;
//   mp::Process p([&] { e.Wait(); ... });
//   e.Set();
//   e.Wait(0.5);  e.Wait(std::chrono::milliseconds(500));  // timeouts
//
// `ResidentEvent` is the resident state (4 bytes, all-zero: clear).
// Set() wakes every waiter, and makes a system call only if one may sleep.
// Wait() spins briefly before sleeping, so a peer that sets the event soon
// is seen without a futex round trip. Memory ordering: Set() releases,
// a Wait()/IsSet() that sees the event set acquires.
//
// Crash safety: a process killed at any instruction strands no waiter. A
// setter killed between setting the flag and its FUTEX_WAKE owes waiters a
// wake-up it never makes; Wait() therefore sleeps in slices of at most
// 100 ms (kRobustSlice) and looks at the flag after each, so it returns at
// most one slice after the flag was set, with or without a deadline. A
// waiter killed asleep leaves WAITERS set: the next Set() makes one
// needless FUTEX_WAKE (Set clears the bit).

#ifndef MP_SYNC_EVENT_H_
#define MP_SYNC_EVENT_H_

#include <atomic>
#include <chrono>
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

class ResidentEvent {
 public:
  constexpr ResidentEvent() = default;
  ResidentEvent(const ResidentEvent&) = delete;
  ResidentEvent& operator=(const ResidentEvent&) = delete;

  void Set();
  void Clear() { word_.fetch_and(~kSet, std::memory_order_relaxed); }
  bool IsSet() const {
    return (word_.load(std::memory_order_acquire) & kSet) != 0;
  }
  // Blocks until set or `deadline`; returns IsSet() (false: timed out).
  bool Wait(Deadline deadline = Deadline::Infinite());

 private:
  // Layout: 0 word_: bit 0 SET, bit 1 WAITERS (someone may sleep).
  static constexpr uint32_t kSet = 1;
  static constexpr uint32_t kWaiters = 2;
  FutexWord word_{0};
};
static_assert(std::is_standard_layout_v<ResidentEvent>);
static_assert(std::is_trivially_destructible_v<ResidentEvent>);
static_assert(FutexWord::is_always_lock_free);
static_assert(sizeof(ResidentEvent) == 4);

class Event {
 public:
  // Throws mp::Error (ResourceExhausted) when no shared mapping can be
  // made; Create() returns that status instead.
  Event() : state_(Shared<ResidentEvent>::Make()) {}
  explicit Event(Shared<ResidentEvent> state) : state_(std::move(state)) {}
  static absl::StatusOr<Event> Create() {
    absl::StatusOr<Shared<ResidentEvent>> state =
        Shared<ResidentEvent>::Create();
    if (!state.ok()) return state.status();
    return Event(*std::move(state));
  }

  // Named: the /dev/shm segment `name`, for processes that are not parent
  // and child. Create: O_EXCL, `mode`, AlreadyExists when taken. Open:
  // SharedMemory::Open's owner and mode checks, then the common header:
  // InvalidArgument for another kind of segment, DataLoss for one that is
  // not mp's. Unlink removes the name; handles stay valid.
  static absl::StatusOr<Event> Create(std::string_view name,
                                      mode_t mode = 0600);
  static absl::StatusOr<Event> Open(std::string_view name,
                                    const SegmentAccess& access = {});
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }

  void Set() { state().Set(); }
  void Clear() { state().Clear(); }
  bool IsSet() const { return state().IsSet(); }
  // Python's wait(timeout): true if the event is set, false on timeout.
  // The Deadline and duration forms, and Python's seconds (nullopt:
  // forever).
  bool Wait(Deadline deadline) { return state().Wait(deadline); }
  template <class Rep, class Period>
  bool Wait(std::chrono::duration<Rep, Period> timeout) {
    return Wait(Deadline::After(timeout));
  }
  bool Wait(std::optional<double> timeout_seconds = std::nullopt) {
    return Wait(Deadline::FromPython(timeout_seconds));
  }

  ResidentEvent& state() const {
    return sync_internal::Checked(state_, "mp::Event");
  }

 private:
  Shared<ResidentEvent> state_;
};

}  // namespace mp

#endif  // MP_SYNC_EVENT_H_
