// mp/core/fault.h
// -----------------------------------------------------------------------------
// Named crash points between the steps of the library's protocols, so that a
// test can kill a process at exactly "after the CAS, before the robust-list
// link" instead of hoping a random SIGKILL lands there.
//
//   MP_FAULT_POINT("lock.acquire.after_cas");
//
// Built with `--config=fault` (which defines MP_FAULT_POINTS), each point
// counts its hits and, when armed, kills the calling process on the n-th hit:
//
//   MP_CHECK_OK(mp::fault::Arm("ring.put.after_payload", 3,
//                              mp::fault::Action::kKill));
//   // or, before the process starts: MP_FAULT=ring.put.after_payload:3:kill
//
// In the default build a point compiles to a static_assert on its name and
// nothing else: no code, no data, no branch (bench/ shows the same figures
// with and without the points). Arm() then fails with FailedPrecondition.
//
// Every point is listed in kPoints; a name not in the list does not compile.
// The list is what tests/fault walks.

#ifndef MP_CORE_FAULT_H_
#define MP_CORE_FAULT_H_

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"

namespace mp::fault {

// Where each point sits. The step before the point has happened; the step
// after it has not.
inline constexpr std::string_view kPoints[] = {
    // mp/sync/lock.h, lock.cc: ResidentLock.
    "lock.acquire.after_pending",    // robust list_op_pending set; no CAS yet
    "lock.acquire.after_cas",        // word holds our tid; not linked yet
    "lock.acquire.after_link",       // linked; list_op_pending still set
    "lock.acquire.before_sleep",     // WAITERS set; about to FUTEX_WAIT
    "lock.acquire.after_takeover",   // slow-path CAS won; not linked yet
    "lock.release.after_unlink",     // unlinked, pending set; word still ours
    "lock.release.after_exchange",   // word 0; waiters not woken yet
    "lock.release.after_wake",       // woken; list_op_pending still set
    // mp/sync/condition.cc: ResidentCondition.
    "condition.wait.after_release",  // counted as waiting, lock released
    "condition.wait.after_wake",     // sequence moved; lock not re-taken
    "condition.notify.after_bump",   // sequence bumped; nothing granted yet
    "condition.notify.after_signal", // bumped and granted; waiters not woken
    // mp/sync/semaphore.cc: ResidentSemaphore.
    "semaphore.acquire.before_sleep",  // counted in waiters; not asleep
    "semaphore.release.after_add",     // count raised; waiters not woken
    // mp/sync/event.cc: ResidentEvent.
    "event.set.after_exchange",      // flag set; waiters not woken
    "event.wait.before_sleep",       // WAITERS set; about to FUTEX_WAIT
    // mp/sync/barrier.cc: ResidentBarrier.
    "barrier.wait.after_arrive",     // counted as arrived, holding its lock
    // mp/queue/internal/ring.cc: Ring (MPMC and SPSC).
    "ring.put.after_lock",           // producer lock held; nothing claimed
    "ring.put.after_tail",           // claim published (tail moved); not counted
    "ring.put.after_claim",          // claim published and counted; lock held
    "ring.put.after_payload",        // lock released, payload written; no commit
    "ring.put.after_publish",        // record committed; consumers not woken
    "ring.put.before_sleep",         // waiting-for-space flag raised
    "ring.get.after_lock",           // consumer lock held; nothing read
    "ring.get.after_copy",           // record copied out; head not moved
    "ring.get.after_head",           // head moved past a record; not counted
    "ring.get.after_publish",        // head moved, record counted; lock held
    "ring.get.before_sleep",         // waiting-for-data flag raised
    // mp/queue/queue.cc: the side channel (big messages).
    "queue.side.after_create",       // claimed; segment made, header written
    "queue.side.after_write",        // segment written; reference not committed
    "queue.side.after_unlink",       // consumer opened and unlinked it; not read
    // mp/queue/queue.h: JoinableQueue.
    "queue.joinable.after_get",      // record taken (slot counted); no TaskDone
};
inline constexpr size_t kNumPoints = std::size(kPoints);

// The index of `name` in kPoints; a name that is not there is a compile error
// (the throw is not a constant expression).
consteval size_t PointIndex(std::string_view name) {
  for (size_t i = 0; i < kNumPoints; ++i) {
    if (kPoints[i] == name) return i;
  }
  throw "unknown fault point: add it to mp::fault::kPoints";
}

#if defined(MP_FAULT_POINTS)
inline constexpr bool kEnabled = true;
#else
inline constexpr bool kEnabled = false;
#endif

enum class Action {
  kKill,  // raise(SIGKILL): the process dies as under kill -9
  kExit,  // _exit(kExitCode): no destructors, no atexit handlers
};
inline constexpr int kExitCode = 86;

// Arms `point` in this process: its `nth_hit`-th hit from now (1 = the next)
// performs `action`. Replaces any earlier arming. FailedPrecondition in a
// build without fault points; NotFound for an unknown point; InvalidArgument
// for nth_hit 0.
absl::Status Arm(std::string_view point, uint64_t nth_hit, Action action);
// Parses "point:nth[:kill|exit]" (the MP_FAULT environment variable's form,
// read once when the process starts) and arms it.
absl::Status ArmFromSpec(std::string_view spec);
void Disarm();
// Hits of `point` in this process since it started (0 in a build without
// fault points, or for an unknown name).
uint64_t Hits(std::string_view point);

namespace internal {
void Hit(size_t index);
}  // namespace internal

}  // namespace mp::fault

#if defined(MP_FAULT_POINTS)
#define MP_FAULT_POINT(name)                                           \
  ::mp::fault::internal::Hit(                                          \
      std::integral_constant<size_t, ::mp::fault::PointIndex(name)>::value)
#else
#define MP_FAULT_POINT(name) \
  static_assert(::mp::fault::PointIndex(name) < ::mp::fault::kNumPoints)
#endif

#endif  // MP_CORE_FAULT_H_
