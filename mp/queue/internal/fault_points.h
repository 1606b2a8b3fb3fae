// mp/queue/internal/fault_points.h
// -----------------------------------------------------------------------------
// The queue package's fault points (mp/core/fault.h): where each sits in the
// ring's put and get (MPMC and SPSC), the side channel and JoinableQueue. The step before a
// point has happened; the step after it has not. Groups: ring, queue.

#ifndef MP_QUEUE_INTERNAL_FAULT_POINTS_H_
#define MP_QUEUE_INTERNAL_FAULT_POINTS_H_

#include <string_view>

#include "mp/core/fault.h"

namespace mp::queue_internal {

inline constexpr std::string_view kFaultPointNames[] = {
    // mp/queue/internal/ring.cc, ring_counts.cc: Ring (MPMC and SPSC).
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

inline MP_FAULT_CONSTINIT mp::fault::Table fault_points("mp/queue",
                                                  kFaultPointNames);

}  // namespace mp::queue_internal

MP_FAULT_GROUP("ring", mp::queue_internal::kFaultPointNames,
               mp::queue_internal::fault_points);
MP_FAULT_GROUP("queue", mp::queue_internal::kFaultPointNames,
               mp::queue_internal::fault_points);

#endif  // MP_QUEUE_INTERNAL_FAULT_POINTS_H_
