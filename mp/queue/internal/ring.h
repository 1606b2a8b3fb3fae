// mp/queue/internal/ring.h
// -----------------------------------------------------------------------------
// The shared-memory byte ring behind mp::Queue (its kMpmc locks are PidLocks,
// pid_lock.h). Resident types: standard layout, atomics
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
//   A data record may instead carry a reference to a message kept in a
//   segment of its own (the queue's side channel, queue.h): its length word
//   has kSideRef set, in the claim and in the commit, and Pop hands it to a
//   separate sink. A producer killed between such a claim and its commit
//   leaves a segment named by the queue id and the claim's position: the
//   consumer that skips the claim (below) calls the queue's hook to remove it.
//
// Item limit (maxsize_ != 0, a bounded queue)
//   A claim of a data record is made only while fewer than maxsize_ records
//   are in the ring, "in ring" as in "Exact counts" below. Claims are
//   serialised (producer_lock in kMpmc, the one producer in kSpsc) and the
//   claimer has completed records_in_ (RepairProducerCounts), so the check
//   is exact: two producers cannot both see room for one. Consumer counts
//   only grow, so the producers cache their sum (gone_cache_, line 1) and
//   read the consumers' line only when the cached sum says full, as they
//   cache head. A producer at the limit sleeps as one waiting for space
//   (space_epoch_ / producers_waiting_: every consumer wakes producers after
//   moving head, counts stored) and re-checks in slices (a consumer killed
//   before its wake wakes nobody). A consumer killed mid-Get cannot make the
//   limit wrong: the check counts an interrupted move's completed value
//   (Counted), as every reader does, until the next consumer completes it.
//   An unbounded ring tests a local copy of maxsize_ and nothing else.
//
// Claim, write, commit (both modes)
//   A producer claims the bytes [tail, tail + rec): it writes the header as
//   "claimed by <its tid>", zeroes the 8 bytes after the record when they
//   are free space (the next record's header, see below) and stores the new
//   `tail` (release). In kMpmc only the claim runs under `producer_lock`, so
//   producers copy their payloads side by side. It then writes the payload
//   and commits: one release store turns the header into "data, at position
//   tail". A consumer polls the header at `head` (acquire) and takes the
//   record once it is committed at that position. While the header is zero
//   (nothing claimed there) it waits on the header alone; it reads `tail`
//   only to judge a claim, a stale header or a close. So a reader never
//   sees a half-written record, whoever dies when, and the hot path shares
//   no index line: each side writes its own index, the only line both
//   touch per record is the record.
//   A header carries its position (the commit tag), so a header left from
//   the previous lap never passes for a new one; the zeroed word after each
//   record means stale payload bytes never do either: the next header
//   position holds zero, a claim, a commit, or (when the record filled the
//   ring exactly and that word was not free) the previous lap's header.
//
// Modes
//   kSpsc: one producer and one consumer at a time; no lock, no RMW on the
//     fast path: the producer reads its cached copy of `head` and refreshes it
//     only when the ring looks full.
//   kMpmc: producers serialise their claims on `producer_lock`, consumers
//     their reads on `consumer_lock` (a PidLock: one uncontended CAS and one
//     plain store per operation, no system call), each side otherwise as
//     kSpsc. A consumer that finds the ring empty waits at head for the next
//     commit keeping `consumer_lock`: the other consumers sleep on the lock
//     rather than poll the ring (on few cores their time goes to the
//     producers). So a producer never waits for `consumer_lock`: when it
//     skips pads for room it only tries it.
//
// Wake-up protocol (no lost wake-ups, no system call unless someone sleeps)
//   A consumer that finds no committed record at head spins briefly, then:
//       e = data_epoch (acquire); consumers_waiting = 1; HeavyFence();
//       re-read the header at head; if not committed: FutexWait(data_epoch, e)
//   A producer, after its commit:  LightFence();
//       if consumers_waiting != 0 and exchange(consumers_waiting, 0) != 0:
//           data_epoch += 1; FutexWake(data_epoch, all)
//   Both sides store, fence, then load (Dekker): either the producer sees the
//   flag or the consumer sees the commit; a bump of the epoch between the
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
//   `producers_waiting` (the consumer's half follows its `head` store).
//   Close() bumps both epochs and wakes everyone.
//
// Crash safety (both modes; see PidLock)
//   A producer killed before its claim leaves nothing: `tail` never moved.
//   In kMpmc it may die holding `producer_lock`; the next producer or a
//   waiter finds the lock held by a dead task (after a short sleep,
//   kill(tid, 0) == ESRCH or /proc/<tid>/stat in state Z/X) and takes it
//   over. A producer killed after its claim and before its commit leaves a
//   header naming it: a consumer that has waited kLivenessSlice at that
//   record (or whose deadline has passed) checks the tid, and if the task is
//   dead it CASes the claim into a committed "lost" record (a pad, for a
//   claimed pad), skips it and counts it in `lost_records`: a claimed record
//   is delivered or counted, never torn, never a hang.
//   A consumer killed mid-read dies holding `consumer_lock` with `head` not
//   yet moved: the next consumer takes over and delivers the same record, so
//   it is delivered exactly once. One killed after moving `head` took the
//   record with it; the next lock holder completes its count (see "Exact
//   counts").
//   A consumer whose sink throws (a decode that cannot allocate, a user
//   codec) leaves the record at head and the lock free: PopLocked and
//   PushLocked hold their locks in scoped guards, released on every exit.
//   A record the sink refuses (returns an error: the wrong size, a message
//   that does not decode) is dropped and counted in `corrupt_`: a poison
//   record reaches one consumer once, never blocks the head.
//
// Exact counts (records_in_, records_out_, lost_, corrupt_)
//   Each count moves with an index, in two stores a kill can separate. So
//   the mover first writes an intent naming the index it is about to store
//   and the count's new value, then stores the index, then the count:
//       producer (lock held):  pend_tail_ = next; pend_in_ = in + 1;
//                              [claim header]; tail_ = next; records_in_ = in + 1
//       consumer (lock held):  pend_head_ = next; pend_what_ = which count;
//                              pend_count_ = n + 1; head_ = next; count = n + 1
//   The index goes to the intent's position only through the intent's own
//   move: a move past a record writes its intent first (pend_head_ first,
//   so a half-written intent names a position head has not reached), a pad
//   claim writes one that counts nothing, and a pad skip (no count) leaves
//   head short of or past any intent. So "index == intent's position and
//   count + 1 == intent's value" holds exactly when a mover died between its
//   index store and its count store. The next holder of the side's lock
//   (the kSpsc side at its next call) completes the count before it moves
//   the index (Repair*Counts), and readers (qsize, lost_records, Join)
//   count the completed value meanwhile. A kill before the index store
//   leaves the index where it was and the intent ignored; after the count
//   store, nothing to do. So records_in_ counts every claim once, and
//   records_out_ + lost_ + corrupt_ every record head passed once:
//       in ring = records_in_ - records_out_ - lost_ - corrupt_
//   exact whoever dies where (verify/ring.pml checks it).
//
// Hostile writers (any process that can write the segment's file)
//   What another process writes is never trusted with this process's memory:
//   geometry and mode live in the RingView, copied at Create/Open; indices
//   are masked with the local mask and must be 8-aligned; a record's extent
//   is checked against the local lap. So the worst a writer can do is make
//   operations fail (DataLoss), deliver bytes it wrote, or hold a lock as a
//   live task (timeouts then say so). Every sleep is sliced (20 ms for the
//   locks and kMpmc consumers, 100 ms otherwise) and the state slept on is
//   checked again after each slice: an inconsistent ring (tail past an
//   unclaimed head, head past tail) is DataLoss for every waiter within a
//   slice, never an endless sleep, and never counted as a lost record.
//   A committed record whose length does not fit before the end of its lap
//   (or a pad that does not end there) has no knowable extent: its length
//   was its only boundary. The consumer that meets it looks for the next
//   record: every header carries its own position (the commit tag), so the
//   first 8-aligned word after it that is a header committed at that very
//   position, or the claim of a live task, starts the next record; failing
//   that, tail or the end of the lap does. It skips to there, counts the
//   record in corrupt_records() and returns DataLoss (once: the records
//   behind it go to the next Pops). A payload word forged to look like a
//   header committed at its own position can shorten the skip (the writer
//   of such bytes can as well write records); a claim in the skipped span
//   that no scan recognised (its producer judged dead, or its header
//   overwritten) is lost uncounted. A record that fits but that the sink
//   refuses (wrong size for T, does not decode) is dropped and counted in
//   corrupt_records(), and the records behind it are delivered.
//   Shared counters are clamped to what is possible when reported.
//   Truncating the segment's file (ftruncate by anyone who may write it)
//   removes the pages past the new end under every process; the next access
//   to them would raise SIGBUS and kill the process. mp's SIGBUS handler
//   (mp/core/truncation_guard.h) maps private zero pages there instead and
//   marks the mapping truncated: the access reads zeros, a Pop asleep on the
//   zeroed ring sees the mark after its slice, and the queue handle turns
//   the operation in progress into DataLoss (see WatchTruncation). Open
//   checks the size once, so only a truncation after Open can do this; keep
//   segments mode 0600 and owned by you (SegmentAccess) so that only your
//   own processes can.
//
//   Limits: a pid recycled before the check makes a dead task look alive
//   (the waiter then waits for that unrelated task); a task judged dead that
//   is not (another pid namespace) would write into bytes already skipped;
//   a consumer killed between moving `head` and returning takes its record
//   with it, as a process killed just after any Get returns would (the
//   record was delivered to it); processes in different pid namespaces
//   cannot judge each other.

#ifndef MP_QUEUE_INTERNAL_RING_H_
#define MP_QUEUE_INTERNAL_RING_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/futex.h"
#include "mp/core/liveness.h"
#include "mp/queue/internal/pid_lock.h"

namespace mp::queue_internal {

inline constexpr size_t kCacheLine = 64;
// The largest tid Linux hands out (PID_MAX_LIMIT on 64-bit).
inline constexpr uint32_t kMaxTid = 1u << 22;

// The calling thread's kernel tid (cached, refreshed after fork) and whether
// a task no longer runs (gone, or a zombie): mp/core/liveness.h.
using liveness::CurrentTid;
using liveness::TaskIsDead;

enum class RingMode : uint32_t { kSpsc = 1, kMpmc = 2 };

// One process's JoinableQueue tasks (see "Tasks" in Ring). Every count is
// cumulative over the slot's owners, never reset.
//
//   owner             pid << 32 | start time (field 22 of /proc/<pid>/stat,
//                     low 32 bits): a recycled pid is another owner; 0: never
//                     used
//   taken             records taken by the slot's owners: stored by the
//                     consumer-lock holder, through the take intent
//   done              their TaskDones (fetch_add)
//   abandoned_before  taken - done when the present owner claimed the slot:
//                     the earlier (dead) owners' abandoned tasks
struct TaskSlot {
  std::atomic<uint64_t> owner{0};
  std::atomic<uint64_t> taken{0};
  std::atomic<uint64_t> done{0};
  std::atomic<uint64_t> abandoned_before{0};
};
static_assert(std::is_standard_layout_v<TaskSlot>);
static_assert(sizeof(TaskSlot) == 32);

// The header in front of every record, read and written as one 64-bit
// atomic word (little-endian: `length` is the low half).
//
//   length  payload bytes (a pad's payload is the rest of the lap); in a
//           claim, bit 31 says the claim is for a pad
//           bit 30 (kSideRef, claims and data records) says the payload is a
//           reference to a message kept in its own segment (the queue's
//           side channel, queue.cc): the length is length & ~kSideRef
//   state   bits 1..0 the kind, bits 31..2:
//             kClaimed: the claimer's tid (0 with a zero word: nothing yet)
//             kData / kPad / kLost: the commit tag, Tag(position)
struct RecordHeader {
  static constexpr uint32_t kClaimed = 0;
  static constexpr uint32_t kData = 1;
  static constexpr uint32_t kPad = 2;
  static constexpr uint32_t kLost = 3;  // a dead producer's claim, skipped
  static constexpr uint32_t kPadClaim = 0x80000000u;
  // A data record (or its claim) whose payload refers to a side segment.
  // Free in every length: a record is shorter than kMaxCapacity = 2^30.
  static constexpr uint32_t kSideRef = 0x40000000u;

  static constexpr uint32_t Tag(uint64_t pos) {
    return static_cast<uint32_t>(pos >> 3) & 0x3fffffffu;
  }
  static constexpr uint64_t Word(uint32_t length, uint32_t state) {
    return uint64_t{length} | (uint64_t{state} << 32);
  }
  static constexpr uint64_t Committed(uint64_t pos, uint32_t length,
                                      uint32_t kind) {
    return Word(length, (Tag(pos) << 2) | kind);
  }
  static constexpr uint64_t Claim(uint32_t tid, uint32_t length) {
    return Word(length, tid << 2);
  }
  static constexpr uint32_t LengthOf(uint64_t w) {
    return static_cast<uint32_t>(w);
  }
  static constexpr uint32_t StateOf(uint64_t w) {
    return static_cast<uint32_t>(w >> 32);
  }
  static constexpr uint32_t KindOf(uint64_t w) { return StateOf(w) & 3u; }
  // A claim's claimer (its tid) and payload bytes (its length without the
  // kPadClaim and kSideRef flags).
  static constexpr uint32_t ClaimerOf(uint64_t w) { return StateOf(w) >> 2; }
  static constexpr uint32_t ClaimedPayloadOf(uint64_t w) {
    return LengthOf(w) & ~(kPadClaim | kSideRef);
  }
  // True when `w` is a committed header of the record at `pos`.
  static constexpr bool IsCommittedAt(uint64_t w, uint64_t pos) {
    return KindOf(w) != kClaimed && (StateOf(w) >> 2) == Tag(pos);
  }

  uint32_t length;
  uint32_t state;
};
static_assert(sizeof(RecordHeader) == 8);

class Ring {
 public:
  static constexpr uint64_t kMagic = 0x6d705f72696e6731ull;  // "mp_ring1"
  // 3: committed record headers; 4: PidLock waiters flag, plain-store unlock;
  // 5: count intents, corrupt and task counts (lines 1, 3, 6), task slots;
  // 6: kSpsc side owners (line 0); 7: item limit and queue id (line 0),
  // gone_cache_ (line 1), kSideRef records, capacity at most 2^30
  static constexpr uint32_t kVersion = 7;
  static constexpr uint32_t kTaskSlots = 32;
  static constexpr uint32_t kNoSlot = ~0u;
  static constexpr size_t kMinCapacity = 64;
  // 2^30: a record's length then never reaches RecordHeader::kSideRef.
  static constexpr size_t kMaxCapacity = size_t{1} << 30;

  // Bytes a segment needs for a ring of `capacity` data bytes (a power of
  // two in [kMinCapacity, kMaxCapacity]).
  static size_t BytesFor(size_t capacity) { return sizeof(Ring) + capacity; }
  // Capacity rounded up to a valid one.
  static size_t RoundCapacity(size_t capacity);

  // Lays a fresh ring over `base` (64-byte aligned, BytesFor(capacity) bytes,
  // zero-filled). `maxsize`: the most data records the ring holds at once
  // (0: as many as fit); `queue_id`: a random id naming the queue's side
  // segments (queue.cc).
  static Ring* Format(void* base, size_t capacity, RingMode mode,
                      uint64_t maxsize = 0, uint64_t queue_id = 0);
  // Validates a ring someone else formatted in `size` bytes at `base`:
  // InvalidArgument / DataLoss for a bad magic, version, capacity, mode or
  // indices out of range (head after tail, more than a capacity apart, not
  // 8-aligned, or a cached index ahead of its index). Never reads outside
  // [base, base + size). Operations go through a RingView (below), which
  // copies capacity, mask and mode once and never trusts the shared copies
  // again (another process can rewrite them at any time).
  static absl::StatusOr<Ring*> Attach(void* base, size_t size);

  // Marks the ring closed and wakes every sleeper.
  void Close();
  bool closed() const { return closed_.load(std::memory_order_acquire) != 0; }

  // Bytes in use (records + headers + pads): a racy snapshot.
  size_t BytesUsedApprox() const;
  // Data records in the ring (claimed and not yet taken, skipped or
  // dropped): a racy snapshot, never negative; exact when nobody is in the
  // middle of a Push or Pop, whoever died where.
  uint64_t RecordsApprox() const;
  // Dead producers' claims skipped, and records the sink refused (dropped),
  // as the consumers have counted them (exact; see "Exact counts").
  uint64_t lost_records() const { return Counted(Count::kLost); }
  uint64_t corrupt_records() const { return Counted(Count::kCorrupt); }

  // Tasks (JoinableQueue). Every data record claimed is a task. It is
  // finished once lost or dropped as corrupt, once a TaskDone matches it, or
  // once the process that took it is dead (abandoned). Takes and TaskDones
  // are counted in per-process slots (TaskSlot): a slot whose owner is dead
  // (gone, a zombie, or its pid now names a process of another start time)
  // counts max(taken, done) as finished, of which taken - done abandoned; a
  // live one done + abandoned_before. So
  //   unfinished = claimed - lost - corrupt - sum over slots of finished
  //                - TaskDones with no slot
  // is the records in the ring plus those live processes took and have not
  // done. A blocked Push counts nothing. A dead slot is reused by a new
  // process with one store (abandoned_before = taken - done), which a kill
  // cannot split: an owner that dies before it leaves a dead slot, counted
  // the same way.
  // Limits: a TaskDone must come from the process that took the item (one
  // that passes items on to another process makes the counts of a dead
  // taker inexact); a take through a plain Queue handle (kNoSlot) is never
  // abandoned; with every slot owned by a live process a process gets no
  // slot, and its takes and TaskDones are counted without attribution.
  uint64_t UnfinishedTasks() const;
  // Tasks abandoned by dead processes (see above): a racy snapshot.
  uint64_t AbandonedTasks() const;
  // The calling process's slot: its own, a never used one, or a dead
  // process's (taken over). kNoSlot when every slot has a live owner.
  uint32_t ClaimTaskSlot();
  // Counts one TaskDone for `slot` (kNoSlot: unattributed). InvalidArgument
  // when the TaskDones, lost and corrupt records already match every claim
  // (the check ignores abandoned tasks, and races with other TaskDones).
  absl::Status TaskDone(uint32_t slot);
  // Sleeps in slices of kJoinSlice until UnfinishedTasks() is 0.
  // DeadlineExceeded at `deadline`.
  absl::Status JoinTasks(Deadline deadline);

 private:
  friend class RingView;
  Ring() = default;
  void WakeConsumers();
  void WakeProducers();

  // The counts that move with head; kNone: a pad skipped, nothing counted.
  enum class Count : uint32_t { kNone = 0, kOut = 1, kLost = 2, kCorrupt = 3 };
  std::atomic<uint64_t>* CounterOf(Count c);
  // The count as it will be once an interrupted head move is completed.
  uint64_t Counted(Count c) const;
  // Counted(c), at most the records claimed less the other two counts (a
  // shared counter someone overwrote reads as no more than is possible).
  uint64_t Clamped(Count c) const;
  uint64_t ClaimedRecords() const;
  // Consumer lock held (or the kSpsc consumer): moves head from `head` to
  // `next` and counts the record in `c`, through the intent (see "Exact
  // counts").
  void AdvanceHead(uint64_t next, Count c, uint32_t taker = kNoSlot);
  // slot `i`'s taken, with an interrupted take completed.
  uint64_t SlotTaken(uint32_t i) const;
  // Completes the count of a head move / claim that its mover did not live
  // to finish. Called with the side's lock held (or as the kSpsc side)
  // before the side moves its index.
  void RepairConsumerCounts();
  void RepairProducerCounts();
  void WakeJoiners();

  // Line 0, written once at Format:
  //   magic u64 | version u32 | mode u32 | capacity u64 | mask u64
  // then the kSpsc side owners (see RingView::ClaimSpscSide), written once
  // per process that takes a side: pid << 32 | start time (low 32 bits), as
  // a TaskSlot's owner; 0: never taken.
  //   producer_owner 32 | consumer_owner 40
  // then, written once at Format: the item limit (0: none) and the queue's
  // id (side segment names). Read once per process, at Format or Attach.
  //   maxsize 48 | queue_id 56
  uint64_t magic_;
  uint32_t version_;
  uint32_t mode_;
  uint64_t capacity_;
  uint64_t mask_;
  std::atomic<uint64_t> producer_owner_{0};
  std::atomic<uint64_t> consumer_owner_{0};
  uint64_t maxsize_;
  uint64_t queue_id_;

  // Line 1, producers: tail (the end of the claimed bytes, a monotonic
  // position), their cached head, the record count and the claim intent.
  // The claimer writes tail once per claim; consumers read it only when the
  // header at head is not committed (and poll it while the ring is empty).
  // head_cache_ is a value head once had, so never ahead of it: written
  // (release) right after loading head (acquire), which lets Attach, reading
  // cache then index, check that in a live ring. A head cache ahead of head
  // would let a producer overwrite unread records.
  // records_in_ moves with tail through the intent {pend_tail_, pend_in_}
  // (see "Exact counts" above): written by the claimer only.
  alignas(kCacheLine) std::atomic<uint64_t> tail_{0};
  std::atomic<uint64_t> head_cache_{0};
  std::atomic<uint64_t> records_in_{0};
  std::atomic<uint64_t> pend_tail_{0};
  std::atomic<uint64_t> pend_in_{0};
  // Bounded rings (maxsize_ != 0): records_out_ + lost_ + corrupt_ as a
  // producer last read them (never ahead of them: the counts only grow), so
  // the item limit is checked against the consumers' line only when this
  // cached value says full. Written by the claimer only.
  std::atomic<uint64_t> gone_cache_{0};

  // Line 2: head (next byte to read), written by the consumer once per
  // record, polled by producers only when their cached head says full.
  alignas(kCacheLine) std::atomic<uint64_t> head_{0};

  // Line 3, consumers only (written by the consumer lock holder, or the
  // kSpsc consumer): the consumer lock, the counts that move with head and
  // the intent {pend_head_, pend_what_, pend_count_} that makes them exact.
  //   lock 0..11 | out 16 | lost 24 | corrupt 32 | pend_head 40 |
  //   pend_count 48 | pend_what 56
  // pend_what_: bits 7..0 the Count, bits 31..8 the taker slot + 1 (0: none)
  alignas(kCacheLine) PidLock consumer_lock_;
  std::atomic<uint64_t> records_out_{0};  // records handed to a sink
  std::atomic<uint64_t> lost_{0};         // dead producers' claims skipped
  std::atomic<uint64_t> corrupt_{0};      // records the sink refused, dropped
  std::atomic<uint64_t> pend_head_{0};
  std::atomic<uint64_t> pend_count_{0};
  std::atomic<uint32_t> pend_what_{0};

  // Line 4, producers: the consumers' sleep flag, which every commit reads,
  // and the producer lock (kMpmc). Consumers write here only when they go
  // to sleep, so the lock's uncontended CAS and its unlock's read of the
  // lock's own waiters flag hit a line the producers own. (On line 1, which
  // consumers poll while the ring is empty, each unlock waited for that line
  // to come back.)
  // Line 5: producers sleeping for space (consumers read the flag after
  // each record).
  // *_waiting_ is a flag (0/1): "someone may be asleep on the epoch".
  alignas(kCacheLine) FutexWord data_epoch_{0};
  std::atomic<uint32_t> consumers_waiting_{0};
  PidLock producer_lock_;
  alignas(kCacheLine) FutexWord space_epoch_{0};
  std::atomic<uint32_t> producers_waiting_{0};

  // Line 6: queue state: closed flag; JoinableQueue's task_done count and
  // the joiners' sleep (epoch, flag).
  alignas(kCacheLine) FutexWord closed_{0};
  FutexWord task_epoch_{0};
  std::atomic<uint32_t> joiners_waiting_{0};
  std::atomic<uint64_t> tasks_done_{0};  // TaskDones with no slot
  std::atomic<uint64_t> pend_taken_{0};  // the take intent's slot `taken`

  // Lines 7..22: task slots.
  alignas(kCacheLine) TaskSlot slots_[kTaskSlots];
};

static_assert(std::is_standard_layout_v<Ring>);
static_assert(std::is_trivially_destructible_v<Ring>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(Ring) == 7 * kCacheLine + Ring::kTaskSlots * 32);
static_assert(alignof(Ring) == kCacheLine);

// One process's handle on a ring: the ring's geometry and mode, copied from
// the segment once, at Format or Attach, and never read from shared memory
// again. Every offset this process computes comes from this copy: the data
// pointer, `pos & mask_` (a position is bounds-checked by construction) and
// a record's extent checked against `capacity_`. So no value another process
// writes into the segment afterwards (capacity, mask, mode, indices, record
// headers) can make this process read or write outside the ring's data
// area: at worst an operation returns DataLoss. Indices read from shared
// memory are also checked for 8-byte alignment before use, so every header
// access is an aligned 8-byte atomic inside the data area.
// Cheap to copy; the mapping must outlive every copy.
class RingView {
 public:
  RingView() = default;
  // Formats a fresh ring at `base` (see Ring::Format) and returns its view.
  static RingView Format(void* base, size_t capacity, RingMode mode,
                         uint64_t maxsize = 0, uint64_t queue_id = 0);
  // Validates the ring in `size` bytes at `base` (Ring::Attach) and copies
  // its geometry and mode.
  static absl::StatusOr<RingView> Attach(void* base, size_t size);

  // Appends one record of `n` bytes. OK; InvalidArgument when n >
  // max_message() (nothing changes); FailedPrecondition when closed;
  // ResourceExhausted when still full at `deadline` (a past deadline polls);
  // DataLoss when the indices are corrupt.
  // Release: everything the caller wrote before happens-before the Pop that
  // returns this record.
  absl::Status Push(const void* data, size_t n, Deadline deadline);

  // Bounded rings (maxsize() != 0): a Push claims only while fewer than
  // maxsize() data records are in the ring (claimed and not yet taken,
  // skipped or dropped: exact, see "Exact counts"), and otherwise waits as
  // for space (ResourceExhausted at `deadline`).

  // Side-channel records (queue.cc): as Push, but the payload of `n` bytes
  // is written by `fill(ctx, dst, n, pos)` between claim and commit, `pos`
  // the record's position, and the record is flagged kSideRef. If `fill`
  // fails, the claim is committed as a lost record (counted in
  // lost_records(), skipped by consumers) and its status returned.
  using Fill = absl::Status (*)(void* ctx, char* dst, size_t n, uint64_t pos);
  absl::Status PushSide(size_t n, Fill fill, void* ctx, Deadline deadline);
  // Called (consumer lock held) with the queue id and position of a
  // kSideRef claim whose producer died before committing it, as it is
  // skipped: the queue removes the side segment the producer may have made.
  using DeadSideClaim = void (*)(uint64_t queue_id, uint64_t pos);
  void set_dead_side_claim(DeadSideClaim f) { dead_side_claim_ = f; }

  // Removes the oldest record by handing it to `sink(ctx, bytes, n)`, which
  // copies it out. If the sink returns an error (a record it cannot decode),
  // the record is dropped all the same (head moves past it, counted in
  // corrupt_records()) and the error is returned: a poison record is handed
  // out once, never left at head. If the sink throws, the record stays at
  // head for the next Pop, the consumer lock is released (a scoped guard)
  // and the exception propagates. DeadlineExceeded when empty at
  // `deadline`; OutOfRange when empty and closed; DataLoss on a corrupt
  // record or indices.
  using Sink = absl::Status (*)(void* ctx, const char* bytes, size_t n);
  // `taker`: the task slot (ClaimTaskSlot) the record is taken for, counted
  // in its `taken` exactly once, whoever dies when; Ring::kNoSlot for none.
  // `side_sink(ctx, bytes, n, pos)` receives the kSideRef records (`pos`
  // their position) instead; with none, such a record is refused as
  // corrupt (DataLoss, dropped and counted).
  using SideSink = absl::Status (*)(void* ctx, const char* bytes, size_t n,
                                    uint64_t pos);
  absl::Status Pop(Sink sink, void* ctx, Deadline deadline,
                   uint32_t taker = Ring::kNoSlot,
                   SideSink side_sink = nullptr);

  // Marks the ring closed and wakes every sleeper.
  void Close() { r_->Close(); }
  bool closed() const { return r_->closed(); }

  size_t capacity() const { return capacity_; }
  size_t max_message() const { return capacity_ - sizeof(RecordHeader); }
  RingMode mode() const { return mode_; }
  // The item limit (0: none) and the queue id, as copied at Format/Attach.
  uint64_t maxsize() const { return maxsize_; }
  uint64_t queue_id() const { return queue_id_; }
  // See Ring.
  size_t BytesUsedApprox() const;
  uint64_t RecordsApprox() const { return r_->RecordsApprox(); }
  // Never more than the records claimed: the counts are shared words any
  // writer of the segment can set, so what is reported is clamped to what
  // is possible (ClaimedRecords minus the other counts).
  uint64_t lost_records() const { return r_->Clamped(Ring::Count::kLost); }
  uint64_t corrupt_records() const {
    return r_->Clamped(Ring::Count::kCorrupt);
  }
  uint64_t UnfinishedTasks() const { return r_->UnfinishedTasks(); }
  uint64_t AbandonedTasks() const { return r_->AbandonedTasks(); }
  uint32_t ClaimTaskSlot() { return r_->ClaimTaskSlot(); }
  absl::Status TaskDone(uint32_t slot) { return r_->TaskDone(slot); }
  absl::Status JoinTasks(Deadline deadline) { return r_->JoinTasks(deadline); }
  Ring* shared() const { return r_; }

  // Named segments: `flag` is the mapping's truncation mark
  // (SharedMemory::truncation_flag). Once it is set, a Pop waiting on the
  // (now private, zeroed) ring returns DataLoss within a slice instead of
  // waiting for ever; Push and Pop themselves do not look at it (the fast
  // path stays free of it): the queue handle checks after each operation.
  void WatchTruncation(const std::atomic<uint32_t>* flag) { truncated_ = flag; }
  bool Truncated() const {
    return truncated_ != nullptr &&
           truncated_->load(std::memory_order_acquire) != 0;
  }
  // The DataLoss a truncated segment's operations return.
  static absl::Status TruncatedError();

  // kSpsc, for handles that enforce it (named queues): makes the calling
  // process the ring's producer (or consumer), unless a live other process
  // is: FailedPrecondition naming it. A dead owner (gone, a zombie, or its
  // pid now another process) is taken over. A system call or two and a
  // /proc read: callers cache the answer per process (QueueState).
  absl::Status ClaimSpscSide(bool producer);

 private:
  RingView(Ring* r, size_t capacity, RingMode mode, uint64_t maxsize,
           uint64_t queue_id)
      : r_(r),
        data_(reinterpret_cast<char*>(r) + sizeof(Ring)),
        capacity_(capacity),
        mask_(capacity - 1),
        mode_(mode),
        maxsize_(maxsize),
        queue_id_(queue_id) {}
  // The header word of the record at position `pos`.
  std::atomic_ref<uint64_t> HeaderAt(uint64_t pos) {
    return std::atomic_ref<uint64_t>(
        *reinterpret_cast<uint64_t*>(data_ + (pos & mask_)));
  }
  // Consumer side: sleeps until a claim past `head` (or a moved head, or
  // close) may be there; and, with the consumer lock held (kMpmc), until
  // the record at `head` is committed. False at the deadline.
  bool WaitForClaim(uint64_t head, Deadline deadline,
                    std::chrono::milliseconds slice = {});
  // `or_closed`: a close ends the wait too (a consumer at an empty head
  // must see it); never while a claim is at head, which only its commit or
  // its claimer's death ends (else, closed, the wait would return at once,
  // again and again).
  bool WaitForCommit(uint64_t head, Deadline deadline, bool or_closed,
                     std::chrono::milliseconds slice = {});
  // Consumer lock held (kMpmc), `w` the header at `head`, uncommitted, with
  // `tail` past head: the claim of a producer that has not committed. If
  // that producer is dead, turns the claim into a committed lost record (or
  // pad) and returns true. DataLoss when the claim is malformed.
  absl::StatusOr<bool> SkipDeadClaim(uint64_t head, uint64_t w, uint64_t tail);
  // The record at `head` is committed but has no knowable extent (its
  // length runs past the end of its lap, or a pad ends short of it): the
  // position where the next record starts, as far as it can be found. The
  // first 8-aligned position after head, before tail and the end of the
  // lap, that holds a header committed at that position, or the claim of a
  // live task; else tail or the end of the lap, whichever comes first.
  // DataLoss when the indices are inconsistent.
  absl::StatusOr<uint64_t> NextRecordAfterCorrupt(uint64_t head);
  bool WaitForBatchOfRoom(size_t need, Deadline deadline);
  bool WaitForSpace(uint64_t tail, size_t need, Deadline deadline,
                    std::chrono::milliseconds slice = {});
  // `fill` non-null: a side-channel record (PushSide), written by it.
  struct Filler {
    Fill fn;
    void* ctx;
  };
  absl::Status PushLocked(const void* src, size_t n, Deadline deadline,
                          bool mpmc, const Filler* fill = nullptr);
  // Producer lock held (or the kSpsc producer), maxsize_ != 0: true when
  // maxsize_ data records are in the ring. Reads the consumers' counts only
  // when the cached ones (gone_cache_) say full.
  bool AtItemLimit();
  // Sleeps (as WaitForSpace) until fewer than maxsize_ records are in the
  // ring, or closed. False at the deadline (or the slice's end).
  bool WaitForItemRoom(Deadline deadline, std::chrono::milliseconds slice);
  // Pop's steps. PopLocked takes the side's lock (kMpmc), then loops: the
  // header at head is committed -> TakeRecord, else AwaitRecord.
  absl::Status PopLocked(Sink sink, void* ctx, Deadline deadline, bool mpmc,
                         uint32_t taker, SideSink side_sink = nullptr);
  // A claim at head that has stayed uncommitted: where, since when, and
  // whether its claimer was found alive at our deadline.
  struct StuckClaim {
    uint64_t at = ~uint64_t{0};
    std::chrono::steady_clock::time_point since;
    bool judged_late = false;
  };
  // The header `w` at `head` is not a committed record: waits for one as the
  // deadline allows (or skips a dead producer's claim, via AwaitClaim). OK:
  // look at head again; otherwise the status Pop returns (empty at the
  // deadline, closed and drained, inconsistent indices, truncated segment).
  absl::Status AwaitRecord(uint64_t head, uint64_t w, Deadline deadline,
                           bool mpmc, StuckClaim& stuck);
  // `tail` past head, `w` an uncommitted header at head: judges a claimer
  // stuck for kLivenessSlice (or at our deadline), then waits for the
  // commit in liveness slices. OK: look again.
  absl::Status AwaitClaim(uint64_t head, uint64_t w, uint64_t tail,
                          Deadline deadline, StuckClaim& stuck);
  // The committed record `w` at `head`: skips a pad or lost record (false),
  // hands a data record to the sink and moves head past it (true), or
  // skips a record with no knowable extent (DataLoss, counted corrupt). A
  // sink's error drops the record (counted corrupt) and is returned. A
  // kSideRef record goes to `side_sink` (none: refused as corrupt).
  absl::StatusOr<bool> TakeRecord(uint64_t head, uint64_t w, Sink sink,
                                  SideSink side_sink, void* ctx,
                                  uint32_t taker, ScopedPidLock& lock);
  // kMpmc, producer lock held, `tail` the tail: takes the consumer lock if
  // it is free (or held by a dead task) and skips the committed pad records
  // at head, as a consumer would before reaching the next record. True if
  // head moved.
  bool SkipPadsForProducer(uint64_t tail);

  Ring* r_ = nullptr;
  char* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  RingMode mode_ = RingMode::kSpsc;
  uint64_t maxsize_ = 0;
  uint64_t queue_id_ = 0;
  DeadSideClaim dead_side_claim_ = nullptr;
  const std::atomic<uint32_t>* truncated_ = nullptr;
};

}  // namespace mp::queue_internal

#endif  // MP_QUEUE_INTERNAL_RING_H_
