// mp/queue/internal/ring_snapshot.h
// -----------------------------------------------------------------------------
// A read-only description of a ring (mp/queue/internal/ring.h) from a private
// copy of its bytes, for tools (mpctl inspect) and fuzzing. Nothing here
// touches a live mapping: the caller copies the segment out (pread) and hands
// the copy in, so a ring another process is rewriting can at worst describe
// itself inconsistently, never make the reader fault or loop.
//
//   std::string bytes = ...;  // RingFieldBytes() after the SegmentHeader
//   absl::StatusOr<RingSnapshot> s =
//       DescribeRing(bytes.data(), bytes.size(), file_size - 64);
//   if (s.ok()) for (const std::string& p : s->problems) ...;
//
// Nothing read is trusted. DescribeRing returns DataLoss only when the bytes
// cannot be a ring at all (too short for the Ring struct, bad magic, another
// layout version): there is nothing to describe. Otherwise it returns every
// field it read, each checked against what a ring can hold, and a field that
// fails its check is named in `problems` (and, where a derived figure depends
// on it, that figure is clamped or left at 0 with its `*_valid` flag false).
// Liveness (whether a lock holder or an owner still runs) is not judged here:
// it needs /proc, which is the caller's to read.
//
// Layout: Ring's fields are private, so the offsets below are restated from
// the layout comments in ring.h (lines 0..22 of the struct) and pinned to
// Ring::kVersion and sizeof(Ring) by static_asserts in ring_snapshot.cc: a
// layout change must bump Ring::kVersion, which fails the build here until
// the offsets are checked again. tests/queue/ring_snapshot_test.cc checks
// each figure against what RingView reports for the same ring.

#ifndef MP_QUEUE_INTERNAL_RING_SNAPSHOT_H_
#define MP_QUEUE_INTERNAL_RING_SNAPSHOT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace mp::queue_internal {

// A PidLock's words, as read.
struct PidLockSnapshot {
  uint32_t holder_tid = 0;  // 0: free
  bool waiters = false;     // someone may sleep on it
};

// A kSpsc side owner or a task slot owner: pid << 32 | start time (low 32
// bits of field 22 of /proc/<pid>/stat); pid 0: never taken.
struct OwnerSnapshot {
  uint32_t pid = 0;
  uint32_t start_low32 = 0;
};

struct TaskSlotSnapshot {
  uint32_t index = 0;
  OwnerSnapshot owner;
  uint64_t taken = 0;
  uint64_t done = 0;
  uint64_t abandoned_before = 0;
};

struct RingSnapshot {
  uint32_t version = 0;
  uint32_t mode = 0;         // RingMode's value as read (1 SPSC, 2 MPMC)
  bool mode_valid = false;
  uint64_t capacity = 0;     // as read
  uint64_t maxsize = 0;      // the item limit as read (0: unbounded)
  uint64_t queue_id = 0;     // names its side segments (queue.h)
  bool capacity_valid = false;  // a power of two in range, mask == capacity
                                // - 1, and the bytes hold the data area
  uint64_t head = 0;
  uint64_t tail = 0;
  uint64_t head_cache = 0;
  bool indices_valid = false;  // 8-aligned, head <= tail <= head + capacity,
                               // head_cache <= head
  uint64_t bytes_used = 0;     // tail - head, when indices_valid

  // Record counts, each with an interrupted move completed as Ring does
  // (see "Exact counts" in ring.h).
  uint64_t records_in = 0;
  uint64_t records_out = 0;
  uint64_t lost = 0;
  uint64_t corrupt = 0;
  bool counts_valid = false;   // out + lost + corrupt <= in
  uint64_t records_queued = 0; // in - out - lost - corrupt, 0 when not valid

  bool closed = false;
  uint32_t closed_word = 0;    // anything but 0 or 1 is a problem
  bool consumers_waiting = false;
  bool producers_waiting = false;
  bool joiners_waiting = false;

  PidLockSnapshot producer_lock;  // kMpmc
  PidLockSnapshot consumer_lock;  // kMpmc
  OwnerSnapshot spsc_producer;    // kSpsc
  OwnerSnapshot spsc_consumer;    // kSpsc

  // JoinableQueue: TaskDones with no slot, and the slots ever used.
  uint64_t tasks_done_unattributed = 0;
  std::vector<TaskSlotSnapshot> task_slots;

  // One line per field that failed its check.
  std::vector<std::string> problems;
};

// Describes a ring from a copy of its first `n` bytes at `bytes` (any
// alignment): a named queue's segment from kNamedRingOffset on. `ring_bytes`
// is the size of the whole ring region in the segment (the Ring struct and
// its data area; n <= ring_bytes), against which the capacity is checked:
// the data area itself is never read, so a caller copies only
// RingFieldBytes() of a large ring. DataLoss when n < RingFieldBytes() or
// n > ring_bytes. Reads only [bytes, bytes + RingFieldBytes()), never writes.
absl::StatusOr<RingSnapshot> DescribeRing(const void* bytes, size_t n,
                                          uint64_t ring_bytes);

// The bytes of the ring's own fields (sizeof(Ring)): what DescribeRing reads.
size_t RingFieldBytes();

// "SPSC", "MPMC" or "unknown".
const char* RingModeName(uint32_t mode);

}  // namespace mp::queue_internal

#endif  // MP_QUEUE_INTERNAL_RING_SNAPSHOT_H_
