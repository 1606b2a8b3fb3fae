// mp/sync/internal/fault_points.h
// -----------------------------------------------------------------------------
// The sync package's fault points (mp/core/fault.h): where each sits in the
// protocols of ResidentLock, ResidentCondition, ResidentSemaphore,
// ResidentEvent and ResidentBarrier. The step before a point has happened;
// the step after it has not. Groups: lock, condition, semaphore, event,
// barrier.

#ifndef MP_SYNC_INTERNAL_FAULT_POINTS_H_
#define MP_SYNC_INTERNAL_FAULT_POINTS_H_

#include <string_view>

#include "mp/core/fault.h"

namespace mp::sync_internal {

inline constexpr std::string_view kFaultPointNames[] = {
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
};

inline MP_FAULT_CONSTINIT mp::fault::Table fault_points("mp/sync",
                                                  kFaultPointNames);

}  // namespace mp::sync_internal

MP_FAULT_GROUP("lock", mp::sync_internal::kFaultPointNames,
               mp::sync_internal::fault_points);
MP_FAULT_GROUP("condition", mp::sync_internal::kFaultPointNames,
               mp::sync_internal::fault_points);
MP_FAULT_GROUP("semaphore", mp::sync_internal::kFaultPointNames,
               mp::sync_internal::fault_points);
MP_FAULT_GROUP("event", mp::sync_internal::kFaultPointNames,
               mp::sync_internal::fault_points);
MP_FAULT_GROUP("barrier", mp::sync_internal::kFaultPointNames,
               mp::sync_internal::fault_points);

#endif  // MP_SYNC_INTERNAL_FAULT_POINTS_H_
