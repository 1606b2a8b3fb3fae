// mp/manager/internal/fault_points.h
// -----------------------------------------------------------------------------
// The manager package's fault points (mp/core/fault.h): where each sits in a
// container update (internal/store.cc, Txn) and in recovery. The step before
// a point has happened; the step after it has not. Group: manager.

#ifndef MP_MANAGER_INTERNAL_FAULT_POINTS_H_
#define MP_MANAGER_INTERNAL_FAULT_POINTS_H_

#include <string_view>

#include "mp/core/fault.h"

namespace mp::manager_internal {

inline constexpr std::string_view kFaultPointNames[] = {
    "manager.txn.after_begin",    // intent open (phase 1), nothing changed
    "manager.txn.after_alloc",    // a block allocated and recorded for undo
    "manager.txn.after_log",      // a word's old value recorded; not written
    "manager.txn.after_write",    // a logged word written
    "manager.txn.after_commit",   // phase 2 (committed); nothing freed yet
    "manager.txn.after_free",     // one block of the commit's frees released
    "manager.recover.after_undo", // recovery: words restored, allocs not freed
};

inline MP_FAULT_CONSTINIT mp::fault::Table fault_points("mp/manager",
                                                        kFaultPointNames);

}  // namespace mp::manager_internal

MP_FAULT_GROUP("manager", mp::manager_internal::kFaultPointNames,
               mp::manager_internal::fault_points);

#endif  // MP_MANAGER_INTERNAL_FAULT_POINTS_H_
