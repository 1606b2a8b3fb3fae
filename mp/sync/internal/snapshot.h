// mp/sync/internal/snapshot.h
// -----------------------------------------------------------------------------
// A read-only description of a named sync segment's state (named.h: the
// resident object at kNamedStateOffset) from a private copy of its bytes, for
// tools (mpctl inspect) and fuzzing. Never touches a live mapping and never
// writes; nothing read is trusted.
//
//   SegmentHeader h = ...;                       // checked by ReadSegmentHeader
//   std::string state = ...;                     // the bytes after the header
//   absl::StatusOr<SyncSnapshot> s =
//       DescribeSyncState(h.kind, h.type_size, state.data(), state.size());
//
// `kind` and `state_size` come from the segment's header (kind, type_size):
// a kind that is not a sync kind, or a state size this reader does not know
// for the kind, is InvalidArgument; fewer bytes than the state is DataLoss.
// Otherwise every word is returned as read, and a value the object can never
// hold is named in `problems`. Liveness of an owner is the caller's to judge.
//
// Layout: the resident types' fields are private, so their offsets are
// restated from the layout comments in lock.h, event.h, semaphore.h and
// condition.h, and pinned by static_asserts on each type's size in
// snapshot.cc; tests/sync/snapshot_test.cc checks each figure against the
// objects' own accessors.

#ifndef MP_SYNC_INTERNAL_SNAPSHOT_H_
#define MP_SYNC_INTERNAL_SNAPSHOT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mp::sync_internal {

// A ResidentLock's word, decoded.
struct LockWordSnapshot {
  uint32_t owner_tid = 0;      // 0: free
  bool owner_died = false;     // kernel's OWNER_DIED bit: the owner died
                               // holding it and nobody has taken it since
  bool waiters = false;        // someone may sleep on it
  bool taken_over = false;     // the holder took it over from a dead owner
                               // (owner_died_ flag, cleared by Release)
};

struct SyncSnapshot {
  enum class Type { kLock, kRLock, kEvent, kSemaphore, kCondition };
  Type type = Type::kLock;

  LockWordSnapshot lock;       // kLock, kRLock, kCondition (its RLock)
  uint32_t rlock_count = 0;    // kRLock, kCondition: recursion depth

  bool event_set = false;      // kEvent
  bool event_waiters = false;

  uint32_t semaphore_value = 0;    // kSemaphore
  uint32_t semaphore_waiters = 0;
  uint32_t semaphore_bound = 0;    // kMaxValue: not bounded
  bool semaphore_bounded = false;

  uint32_t condition_seq = 0;      // kCondition
  uint32_t condition_sleepers = 0;
  uint32_t condition_waiting = 0;
  uint32_t condition_signals = 0;

  std::vector<std::string> problems;
};

// The layout version of named sync segments this reader knows (the
// SegmentHeader's `version`, named.h's kNamedSyncVersion).
uint32_t KnownSyncVersion();

// "lock", "rlock", "event", "semaphore", "condition".
const char* SyncTypeName(SyncSnapshot::Type type);

// Describes the state of a named sync segment of `kind` (SegmentKind's
// value) whose header says `state_size`, from the `n` bytes at `state`.
// Reads only [state, state + n), never writes.
absl::StatusOr<SyncSnapshot> DescribeSyncState(uint32_t kind,
                                               uint32_t state_size,
                                               const void* state, size_t n);

}  // namespace mp::sync_internal

#endif  // MP_SYNC_INTERNAL_SNAPSHOT_H_
