// mp/queue/internal/ring.h
// -----------------------------------------------------------------------------
// The shared-memory byte ring behind mp::Queue, and the pid lock that makes it
// multi-producer / multi-consumer. Resident types: standard layout, atomics
// and plain data only, valid at any address in any process mapping them.
//
// Records
//   The ring moves byte records of 0 .. max_message() bytes. Each record is an
//   8-byte header followed by its payload, padded to 8 bytes. A record never
//   straddles the end of the data area: when it does not fit before the end,
//   the producer first publishes a padding record that fills the rest of the
//   lap, and consumers skip it. A record longer than half the capacity can
//   then find no room behind a pad even in a ring holding no data: in kMpmc
//   the producer skips the pads at head itself (under the consumer lock), so
//   any record up to max_message() fits a ring with no data records in it;
//   in kSpsc only the consumer moves head, and such a record waits for it.
//
// Visibility
//   A record becomes visible only when its producer stores the new `tail`
//   (release), after the header and payload are written; a consumer frees it
//   by storing the new `head` (release) after copying it out. So a reader
//   never sees a half-written record, whoever dies when.
//
// Modes
//   kSpsc: one producer and one consumer at a time; no lock, no RMW on the
//     fast path: the producer reads its cached copy of `head` and refreshes it
//     only when the ring looks full (and the consumer likewise for `tail`).
//   kMpmc: producers serialise on `producer_lock`, consumers on
//     `consumer_lock` (a PidLock: one uncontended CAS + one exchange per
//     operation, no system call), each side otherwise as in kSpsc.
//
// Wake-up protocol (no lost wake-ups, no system call unless someone sleeps)
//   A consumer that finds the ring empty spins briefly, then:
//       e = data_epoch (acquire); consumers_waiting = 1; HeavyFence();
//       re-read tail; if still empty: FutexWait(data_epoch, e)
//   A producer, after storing tail:  LightFence();
//       if consumers_waiting != 0 and exchange(consumers_waiting, 0) != 0:
//           data_epoch += 1; FutexWake(data_epoch, all)
//   Both sides store, fence, then load (Dekker): either the producer sees the
//   flag or the consumer sees the new tail; a bump of the epoch between the
//   consumer's read of `e` and its sleep makes FutexWait return at once. The
//   fence pair is asymmetric (mp/core/fence.h): the producer's half is a
//   compiler barrier, the sleeper's a membarrier(2) that makes every running
//   registered thread execute a full barrier, so the per-message path has no
//   fence instruction; where membarrier is unavailable the sleeper sleeps in
//   1 ms slices and re-checks.
//   The flag, not a count, is what keeps the fast path fast: the waker clears
//   it, so the messages published while the sleeper is still waking up make
//   no system call (one wake per sleep episode; a sleeper that must sleep
//   again raises the flag again). A waiter that timed out may leave the flag
//   up: it costs the next publisher one needless wake, never a lost one.
//   Producers waiting for space mirror this on `space_epoch` /
//   `producers_waiting`. Close() bumps both epochs and wakes everyone.
//
// Crash safety (kMpmc; see PidLock)
//   A producer killed mid-write dies holding `producer_lock` with `tail` not
//   yet moved: its partial record is invisible. The next producer or a waiter
//   finds the lock held by a dead task (after a short sleep, kill(tid, 0) ==
//   ESRCH or /proc/<tid>/stat in state Z/X), takes the lock over, and, if the
//   dead producer had a record in flight that it never published
//   (`pending_end` set and `tail` short of it), counts it in `lost_records`.
//   A consumer killed mid-read dies holding `consumer_lock` with `head` not
//   yet moved: the next consumer takes over and delivers the same record, so
//   it is delivered exactly once.
//   Limits: a pid recycled before the check makes a dead holder look alive
//   (the waiter then waits for that unrelated task); a consumer killed between
//   moving `head` and returning takes its record with it, as a process killed
//   just after any Get returns would (the record was delivered to it);
//   processes in different pid namespaces cannot judge each other.
//   In kSpsc a killed producer never exposes its partial record either, but
//   nothing counts it.

#ifndef MP_QUEUE_INTERNAL_RING_H_
#define MP_QUEUE_INTERNAL_RING_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/futex.h"

namespace mp::queue_internal {

inline constexpr size_t kCacheLine = 64;

// The calling thread's kernel tid, cached (and refreshed after fork).
uint32_t CurrentTid();
// True when `tid` no longer runs (gone, or a zombie).
bool TaskIsDead(uint32_t tid);

// A futex lock whose word names its holder, so a holder's death is seen.
//
//   word: bit 31      bits 30..0
//         waiters     holder tid (0: free)
//
// Lock: CAS 0 -> tid; after a short spin, set the waiters bit and sleep on the
// word in slices of 20 ms; after each slice, if the holder is dead, take the
// word over by CAS and report it. A word with no holder is free, waiters bit
// or not. Unlock: exchange 0; FutexWake if the waiters bit was set. Memory
// ordering: Lock is acquire, Unlock release.
struct PidLock {
  static constexpr uint32_t kWaiters = 0x80000000u;
  enum class Acquired { kNo, kYes, kFromDeadHolder };

  Acquired Lock(Deadline deadline);
  void Unlock();

  FutexWord word{0};
};
static_assert(std::is_standard_layout_v<PidLock>);
static_assert(sizeof(PidLock) == 4);

enum class RingMode : uint32_t { kSpsc = 1, kMpmc = 2 };

// The header in front of every record: plain memory, published by the tail
// store that makes the record visible.
//
//   bytes 0..3  length of the payload (bytes; a pad's payload is the rest of
//               the lap)
//   bytes 4..7  kind: kData or kPad
struct RecordHeader {
  static constexpr uint32_t kData = 0x44415441u;  // "DATA"
  static constexpr uint32_t kPad = 0x50414421u;   // "PAD!"
  uint32_t length;
  uint32_t kind;
};
static_assert(sizeof(RecordHeader) == 8);

class Ring {
 public:
  static constexpr uint64_t kMagic = 0x6d705f72696e6731ull;  // "mp_ring1"
  static constexpr uint32_t kVersion = 2;  // 2: tail and head alone
  static constexpr size_t kMinCapacity = 64;
  static constexpr size_t kMaxCapacity = size_t{1} << 31;

  // Bytes a segment needs for a ring of `capacity` data bytes (a power of
  // two in [kMinCapacity, kMaxCapacity]).
  static size_t BytesFor(size_t capacity) { return sizeof(Ring) + capacity; }
  // Capacity rounded up to a valid one.
  static size_t RoundCapacity(size_t capacity);

  // Lays a fresh ring over `base` (64-byte aligned, BytesFor(capacity) bytes,
  // zero-filled).
  static Ring* Format(void* base, size_t capacity, RingMode mode);
  // Validates a ring someone else formatted in `size` bytes at `base`:
  // InvalidArgument / DataLoss for a bad magic, version, capacity, mode or
  // indices out of range (head after tail, more than a capacity apart, not
  // 8-aligned, or a cached index ahead of its index). Never reads outside
  // [base, base + size). Afterwards the fields Format wrote once (capacity,
  // mask, mode) are trusted; what processes keep writing (indices, caches,
  // record headers) is checked where it is read: whatever its values, Push
  // and Pop never touch memory outside the data area, and indices out of
  // range are DataLoss.
  static absl::StatusOr<Ring*> Attach(void* base, size_t size);

  // Appends one record of `n` bytes. OK; InvalidArgument when n >
  // max_message() (nothing changes); FailedPrecondition when closed;
  // ResourceExhausted when still full at `deadline` (a past deadline polls);
  // DataLoss when the indices are corrupt.
  // Release: everything the caller wrote before happens-before the Pop that
  // returns this record.
  absl::Status Push(const void* data, size_t n, Deadline deadline);

  // Removes the oldest record by handing it to `sink(ctx, bytes, n)`, which
  // copies it out; if the sink returns an error, the record stays and the
  // error is returned. DeadlineExceeded when empty at `deadline`;
  // OutOfRange when empty and closed; DataLoss on a corrupt record or
  // indices.
  using Sink = absl::Status (*)(void* ctx, const char* bytes, size_t n);
  absl::Status Pop(Sink sink, void* ctx, Deadline deadline);

  // Marks the ring closed and wakes every sleeper.
  void Close();
  bool closed() const { return closed_.load(std::memory_order_acquire) != 0; }

  size_t capacity() const { return capacity_; }
  size_t max_message() const { return capacity_ - sizeof(RecordHeader); }
  RingMode mode() const { return static_cast<RingMode>(mode_); }
  // Bytes in use (records + headers + pads): a racy snapshot.
  size_t BytesUsedApprox() const;
  // Data records in the ring: a racy snapshot, never negative.
  uint64_t RecordsApprox() const;
  uint64_t lost_records() const {
    return lost_.load(std::memory_order_relaxed);
  }

  // JoinableQueue's count of puts not yet matched by task_done.
  FutexWord& unfinished() { return unfinished_; }

 private:
  Ring() = default;
  char* data() { return reinterpret_cast<char*>(this) + sizeof(Ring); }
  void WakeConsumers();
  void WakeProducers();
  bool WaitForData(uint64_t head, Deadline deadline);
  bool WaitForSpace(uint64_t tail, size_t need, Deadline deadline);
  absl::Status PushLocked(const void* src, size_t n, Deadline deadline,
                          bool mpmc);
  absl::Status PopLocked(Sink sink, void* ctx, Deadline deadline, bool mpmc);
  // kMpmc, producer lock held, `tail` the tail: takes the consumer lock (by
  // `deadline`) and skips the pad records at head, as a consumer would
  // before reaching the next record. True if head moved.
  bool SkipPadsForProducer(uint64_t tail, Deadline deadline);

  // Line 0, written once at Format:
  //   magic u64 | version u32 | mode u32 | capacity u64 | mask u64
  uint64_t magic_;
  uint32_t version_;
  uint32_t mode_;
  uint64_t capacity_;
  uint64_t mask_;

  // Line 1: tail (next byte to write, a monotonic position), written by the
  // producer once per record and polled by consumers; nothing else lives
  // here, so a consumer's poll never steals a line the producer is about to
  // write again.
  alignas(kCacheLine) std::atomic<uint64_t> tail_{0};

  // Line 2, producers only: their cached head, the producer lock, the
  // in-flight marker and the record count.
  // The caches (head_cache_ here, tail_cache_ on line 4) are values their
  // index once had, so never ahead of it: written (release) right after
  // loading the index (acquire), which lets Attach, reading cache then
  // index, check that in a live ring. A head cache ahead of head would let a
  // producer overwrite unread records; a tail cache ahead of tail would let
  // a consumer read unpublished bytes.
  alignas(kCacheLine) std::atomic<uint64_t> head_cache_{0};  // lock holder
  PidLock producer_lock_;
  // Where `tail` will be once the record being written is published; 0 when
  // none is in flight. A producer taking the lock over from a dead one counts
  // a loss iff tail never reached it (a death after publishing is no loss).
  std::atomic<uint64_t> pending_end_{0};
  std::atomic<uint64_t> records_in_{0};  // written by the lock holder only

  // Line 3: head (next byte to read), written by the consumer once per
  // record, polled by producers only when their cached head says full.
  alignas(kCacheLine) std::atomic<uint64_t> head_{0};

  // Line 4, consumers only: cached tail, consumer lock, record count.
  alignas(kCacheLine) std::atomic<uint64_t> tail_cache_{0};  // lock holder
  PidLock consumer_lock_;
  std::atomic<uint64_t> records_out_{0};  // written by the lock holder only

  // Line 5: consumers sleeping for data.  Line 6: producers for space.
  // *_waiting_ is a flag (0/1): "someone may be asleep on the epoch".
  alignas(kCacheLine) FutexWord data_epoch_{0};
  std::atomic<uint32_t> consumers_waiting_{0};
  alignas(kCacheLine) FutexWord space_epoch_{0};
  std::atomic<uint32_t> producers_waiting_{0};

  // Line 7: queue state: closed flag, unfinished tasks, lost records.
  alignas(kCacheLine) FutexWord closed_{0};
  FutexWord unfinished_{0};
  std::atomic<uint64_t> lost_{0};
};

static_assert(std::is_standard_layout_v<Ring>);
static_assert(std::is_trivially_destructible_v<Ring>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(Ring) == 8 * kCacheLine);
static_assert(alignof(Ring) == kCacheLine);

}  // namespace mp::queue_internal

#endif  // MP_QUEUE_INTERNAL_RING_H_
