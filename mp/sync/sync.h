// mp/sync/sync.h
// -----------------------------------------------------------------------------
// mp's synchronisation primitives, the twins of multiprocessing's: Lock,
// RLock, Condition, Event, Semaphore, BoundedSemaphore, Barrier. Each comes
// as a resident type (the state, embeddable in any shared segment) and a
// handle (allocates the state in shared memory; copies share it; usable in
// children started with mp::Process). See each header for its contract.
//
// Timeouts, the same in every handle (README "Timeouts"): a Deadline, a
// std::chrono duration, or Python's arguments: Acquire(bool block = true,
// std::optional<double> timeout_seconds = std::nullopt) for Lock, RLock,
// Condition and Semaphore; Wait(std::optional<double> timeout_seconds =
// std::nullopt) for Event, Condition and Barrier. Constructors throw
// mp::Error; Create() returns the status instead (mp/core/error.h).

#ifndef MP_SYNC_SYNC_H_
#define MP_SYNC_SYNC_H_

#include "mp/sync/barrier.h"    // IWYU pragma: export
#include "mp/sync/condition.h"  // IWYU pragma: export
#include "mp/sync/event.h"      // IWYU pragma: export
#include "mp/sync/lock.h"       // IWYU pragma: export
#include "mp/sync/semaphore.h"  // IWYU pragma: export

#endif  // MP_SYNC_SYNC_H_
