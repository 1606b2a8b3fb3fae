#include "mp/queue/internal/ring.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "mp/core/fence.h"
#include "mp/queue/internal/fault_points.h"

namespace mp::queue_internal {
namespace {

// How long a side spins before it sleeps: about two futex sleep/wake round
// trips on the VMs we measured (23-50 us each), so a peer that is merely
// slower never costs a system call, while an idle one sleeps soon. A time
// budget, not a count: PAUSE costs 3 ns on some CPUs and 30 ns on others.
constexpr auto kSpinBudget = std::chrono::microseconds(50);
// How long a producer facing a full ring waits for a batch of room before
// it takes any room (RingView::WaitForBatchOfRoom).
constexpr auto kBatchWait = std::chrono::microseconds(20);

// Spins until `ready()`, the budget is spent or `deadline` passes; checks
// the clock every 32 rounds (a vDSO clock read is ~20 ns). A deadline
// already past (a poll: GetNowait, PutNowait, the pool's collector) looks
// once and does not spin.
template <class Ready>
bool SpinUntil(Ready ready, Deadline deadline) {
  const auto now = std::chrono::steady_clock::now();
  if (!deadline.infinite() && now >= deadline.time_point()) return ready();
  auto until = now + kSpinBudget;
  if (!deadline.infinite() && deadline.time_point() < until) {
    until = deadline.time_point();
  }
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      CpuRelax();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}
// How long a sleeper whose HeavyFence could not cover the publishers (no
// membarrier in this process) sleeps before it looks again.
// How long a waiter sleeps before it checks again the state it sleeps on
// (indices, the header at head): a writer of the shared bytes that makes
// the ring inconsistent sends no wake-up.
constexpr auto kValidateSlice = std::chrono::milliseconds(100);

size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

// memcpy, with the small sizes (most messages) copied inline in 16-byte
// pieces, the last one overlapping: no call, no size dispatch.
inline void CopyPayload(char* dst, const void* src_v, size_t n) {
  const char* src = static_cast<const char*>(src_v);
  if (n >= 16 && n <= 128) {
    size_t i = 0;
    for (; i + 16 < n; i += 16) __builtin_memcpy(dst + i, src + i, 16);
    __builtin_memcpy(dst + n - 16, src + n - 16, 16);
    return;
  }
  if (n != 0) std::memcpy(dst, src, n);
}


// A Put or Get that timed out waiting for its side's lock, not for room or
// data: the status its caller expects (full / empty), saying so, and who
// held the lock (a live task: a dead one would have been taken over).
absl::Status LockTimedOut(absl::StatusCode code, const char* op,
                          const char* side, const PidLock& lock) {
  const uint32_t holder =
      lock.word.load(std::memory_order_relaxed) & PidLock::kHolderMask;
  return absl::Status(
      code, absl::StrCat("queue: ", op, " timed out waiting for the ", side,
                         " lock, held by live task ", holder,
                         " (the queue itself may not be ",
                         code == absl::StatusCode::kResourceExhausted
                             ? "full)"
                             : "empty)"));
}
}  // namespace

// ---- Ring ------------------------------------------------------------------

size_t RingView::BytesUsedApprox() const {
  const size_t used = r_->BytesUsedApprox();
  return used > capacity_ ? capacity_ : used;
}

size_t Ring::BytesUsedApprox() const {
  uint64_t head = head_.load(std::memory_order_relaxed);
  uint64_t tail = tail_.load(std::memory_order_relaxed);
  return tail > head ? static_cast<size_t>(tail - head) : 0;
}

// One wake per sleep episode: the waker clears the flag before waking, so
// the messages that follow, published while the sleeper is still getting up,
// make no system call. A sleeper that must sleep again raises the flag again.
void Ring::WakeConsumers() {
  if (LoadWaitersAfterStore(consumers_waiting_) != 0 &&
      consumers_waiting_.exchange(0, std::memory_order_acq_rel) != 0) {
    data_epoch_.fetch_add(1, std::memory_order_release);
    FutexWakeAll(&data_epoch_);
  }
}

void Ring::WakeProducers() {
  if (LoadWaitersAfterStore(producers_waiting_) != 0 &&
      producers_waiting_.exchange(0, std::memory_order_acq_rel) != 0) {
    space_epoch_.fetch_add(1, std::memory_order_release);
    FutexWakeAll(&space_epoch_);
  }
}

void Ring::Close() {
  closed_.store(1, std::memory_order_seq_cst);
  data_epoch_.fetch_add(1, std::memory_order_seq_cst);
  space_epoch_.fetch_add(1, std::memory_order_seq_cst);
  FutexWakeAll(&data_epoch_);
  FutexWakeAll(&space_epoch_);
}

// Returns true when data may be there (re-check), false at the deadline.
// The sleep half of the wake-up protocol (ring.h), for either side: spin
// until `ready()`, then raise `waiters`, fence, re-check and sleep on
// `epoch`. `after_raise` is the side's fault point. True when `ready()` may
// hold (the caller re-checks), false at the deadline. A non-zero `slice`
// ends the sleep after that long too (false, as at the deadline): the end
// of the slice is computed only once the spin is spent, so the fast path
// reads the clock no more than before.
template <class Ready, class AfterRaise>
bool SleepUntil(FutexWord& epoch, std::atomic<uint32_t>& waiters, Ready ready,
                AfterRaise after_raise, Deadline deadline,
                std::chrono::milliseconds slice) {
  if (SpinUntil(ready, deadline)) return true;
  if (deadline.Expired()) return false;
  if (slice.count() != 0) {
    deadline = Deadline::Earlier(deadline, Deadline::After(slice));
  }
  const uint32_t e = epoch.load(std::memory_order_acquire);
  const bool covered = RaiseWaitersBeforeLoad(waiters);
  after_raise();
  if (ready()) return true;
  const Deadline until =
      covered ? deadline
              : Deadline::Earlier(deadline, Deadline::After(kUncoveredSlice));
  if (FutexWait(&epoch, e, until) != FutexResult::kTimedOut) return true;
  return ready() || !deadline.Expired();
}

bool RingView::WaitForClaim(uint64_t head, Deadline deadline,
                            std::chrono::milliseconds slice) {
  // Indices only: without the consumer lock (kMpmc) the header at a head
  // another consumer has since moved past may be a payload being written.
  auto claimed = [&] {
    return r_->tail_.load(std::memory_order_seq_cst) != head ||
           r_->head_.load(std::memory_order_relaxed) != head || r_->closed();
  };
  return SleepUntil(
      r_->data_epoch_, r_->consumers_waiting_, claimed,
      [] { MP_FAULT_POINT("ring.get.before_sleep"); }, deadline, slice);
}

bool RingView::WaitForCommit(uint64_t head, Deadline deadline, bool or_closed,
                             std::chrono::milliseconds slice) {
  auto committed = [&] {
    return RecordHeader::IsCommittedAt(
               HeaderAt(head).load(std::memory_order_seq_cst), head) ||
           (or_closed && r_->closed());
  };
  return SleepUntil(
      r_->data_epoch_, r_->consumers_waiting_, committed,
      [] { MP_FAULT_POINT("ring.get.before_sleep"); }, deadline, slice);
}

// A full ring: before the usual spin-then-sleep for any room, spin a
// little for room for a batch of records (a quarter of the ring), polling
// head only every few pauses. A producer that resumes at the first free
// record runs in lock step with the consumer: every record it claims lands
// on the line the consumer has just read, and its polls of head take that
// line from the consumer at every record, so the consumer slows, the ring
// stays full, and both pay a line transfer per message (measured: the
// 64-byte SPSC case ran at half the rate, bimodally, whenever the producer
// was the faster side). Waiting for a batch lets the consumer drain a run of
// records undisturbed. Never longer than kBatchWait, nor past `deadline`:
// then any room will do, as before.
bool RingView::WaitForBatchOfRoom(size_t need, Deadline deadline) {
  const size_t slack = std::min(capacity_ / 4, capacity_ - need);
  const auto now = std::chrono::steady_clock::now();
  auto until = now + kBatchWait;
  if (!deadline.infinite()) {
    if (now >= deadline.time_point()) return false;
    until = std::min(until, deadline.time_point());
  }
  for (int round = 1;; ++round) {
    for (int k = 0; k < 16; ++k) CpuRelax();
    const uint64_t head = r_->head_.load(std::memory_order_relaxed);
    if (r_->tail_.load(std::memory_order_relaxed) + need + slack - head <=
            capacity_ ||
        r_->closed()) {
      return true;
    }
    if (round % 8 == 0 && std::chrono::steady_clock::now() >= until) {
      return false;
    }
  }
}

bool RingView::WaitForSpace(uint64_t /*tail*/, size_t need, Deadline deadline,
                            std::chrono::milliseconds slice) {
  auto has_room = [&] {
    return r_->tail_.load(std::memory_order_relaxed) + need -
                   r_->head_.load(std::memory_order_seq_cst) <=
               capacity_ ||
           r_->closed();
  };
  if (WaitForBatchOfRoom(need, deadline)) return true;
  return SleepUntil(
      r_->space_epoch_, r_->producers_waiting_, has_room,
      [] { MP_FAULT_POINT("ring.put.before_sleep"); }, deadline, slice);
}

absl::Status RingView::Push(const void* data, size_t n, Deadline deadline) {
  if (n > max_message()) {
    return absl::InvalidArgumentError(
        absl::StrCat("message of ", n, " bytes exceeds the ring's maximum of ",
                     max_message(), " bytes"));
  }
  if (r_->closed()) return absl::FailedPreconditionError("queue is closed");
  return PushLocked(data, n, deadline, mode_ == RingMode::kMpmc);
}

absl::Status RingView::PushSide(size_t n, Fill fill, void* ctx,
                                Deadline deadline) {
  if (n > max_message()) {
    return absl::InvalidArgumentError(
        absl::StrCat("side reference of ", n, " bytes exceeds the ring's "
                     "maximum of ", max_message(), " bytes"));
  }
  if (r_->closed()) return absl::FailedPreconditionError("queue is closed");
  const Filler filler{fill, ctx};
  return PushLocked(nullptr, n, deadline, mode_ == RingMode::kMpmc, &filler);
}

bool RingView::AtItemLimit() {
  const uint64_t in = r_->records_in_.load(std::memory_order_relaxed);
  const uint64_t cached = r_->gone_cache_.load(std::memory_order_relaxed);
  if (cached <= in && in - cached < maxsize_) return false;
  const uint64_t gone = r_->Counted(Ring::Count::kOut) +
                        r_->Counted(Ring::Count::kLost) +
                        r_->Counted(Ring::Count::kCorrupt);
  r_->gone_cache_.store(gone, std::memory_order_relaxed);
  // More gone than claimed: counts someone else wrote; not full.
  return gone <= in && in - gone >= maxsize_;
}

bool RingView::WaitForItemRoom(Deadline deadline,
                               std::chrono::milliseconds slice) {
  auto has_room = [&] {
    const uint64_t gone = r_->Counted(Ring::Count::kOut) +
                          r_->Counted(Ring::Count::kLost) +
                          r_->Counted(Ring::Count::kCorrupt);
    const uint64_t in = r_->ClaimedRecords();
    return gone > in || in - gone < maxsize_ || r_->closed();
  };
  return SleepUntil(
      r_->space_epoch_, r_->producers_waiting_, has_room,
      [] { MP_FAULT_POINT("ring.put.before_sleep"); }, deadline, slice);
}

absl::Status RingView::PushLocked(const void* src, size_t n, Deadline deadline,
                              bool mpmc, const Filler* fill) {
  const size_t rec = Align8(sizeof(RecordHeader) + n);
  const uint32_t me = CurrentTid();
  ScopedPidLock lock(mpmc ? &r_->producer_lock_ : nullptr);
  for (;;) {
    // A lock taken over from a dead producer needs no repair of the ring: a
    // claim it published is the consumers' to skip and count
    // (SkipDeadClaim), and one it did not publish is overwritten by ours.
    // Only its count may need completing (RepairProducerCounts).
    if (lock.Lock(deadline) == PidLock::Acquired::kNo) {
      return LockTimedOut(absl::StatusCode::kResourceExhausted, "put",
                          "producer", r_->producer_lock_);
    }
    MP_FAULT_POINT("ring.put.after_lock");
    r_->RepairProducerCounts();
    for (;;) {
      const uint64_t tail = r_->tail_.load(std::memory_order_relaxed);
      // Positions come from shared memory: only an 8-aligned one is used
      // as an offset (an aligned header inside the data area, see RingView).
      if (tail % 8 != 0) {
        return absl::DataLossError("ring: indices out of range");
      }
      // The item limit (bounded rings only: a test of a local copy
      // otherwise). Exact: claims are serialised (the producer lock, or the
      // one kSpsc producer) and records_in_ was repaired above.
      if (maxsize_ != 0 && AtItemLimit()) {
        lock.Unlock();
        if (r_->closed()) {
          return absl::FailedPreconditionError("queue is closed");
        }
        if (!WaitForItemRoom(deadline, kValidateSlice) && deadline.Expired()) {
          return absl::ResourceExhaustedError(absl::StrCat(
              "queue is full (maxsize ", maxsize_, " items)"));
        }
        if (r_->closed()) {
          return absl::FailedPreconditionError("queue is closed");
        }
        if (mpmc) break;  // re-take the lock
        continue;
      }
      const size_t off = static_cast<size_t>(tail & mask_);
      const size_t to_end = capacity_ - off;
      const bool pad = rec > to_end;
      const size_t need = pad ? to_end : rec;
      uint64_t head = r_->head_cache_.load(std::memory_order_relaxed);
      if (tail + need - head > capacity_) {
        head = r_->head_.load(std::memory_order_acquire);
        r_->head_cache_.store(head, std::memory_order_release);  // see Attach
        if (tail - head > capacity_) {  // head after tail, or lapped
          return absl::DataLossError("ring: indices out of range");
        }
        if (tail + need - head > capacity_) {
          if (mpmc && SkipPadsForProducer(tail)) continue;
          lock.Unlock();
          if (r_->closed()) {
            return absl::FailedPreconditionError("queue is closed");
          }
          // Sliced: the loop re-validates the indices after each slice, so
          // a head another process rewrote is DataLoss, not an endless wait.
          if (!WaitForSpace(tail, need, deadline, kValidateSlice) &&
              deadline.Expired()) {
            return absl::ResourceExhaustedError("queue is full");
          }
          if (r_->closed()) {
            return absl::FailedPreconditionError("queue is closed");
          }
          if (mpmc) break;  // re-take the lock
          continue;
        }
      }
      // The claim. The word after the record is the next header: zero it
      // while it is free space, before this record's commit can make a
      // consumer look there. (When the record fills the ring exactly, that
      // word is the header at head, a real header of the previous lap.)
      const uint64_t next = tail + need;
      if (next + sizeof(RecordHeader) - head <= capacity_) {
        HeaderAt(next).store(0, std::memory_order_relaxed);
      }
      std::atomic_ref<uint64_t> header = HeaderAt(tail);
      const uint32_t length =
          static_cast<uint32_t>(need - sizeof(RecordHeader));
      // The intent before the tail store (see "Exact counts" in ring.h). A
      // pad writes one too, counting nothing: else a pad could move tail to
      // the position a dead claimer's intent names.
      const uint64_t in =
          r_->records_in_.load(std::memory_order_relaxed) + (pad ? 0 : 1);
      r_->pend_tail_.store(next, std::memory_order_relaxed);
      r_->pend_in_.store(in, std::memory_order_release);
      if (pad) {
        header.store(RecordHeader::Claim(me, length | RecordHeader::kPadClaim),
                     std::memory_order_relaxed);
        r_->tail_.store(next, std::memory_order_release);
        header.store(RecordHeader::Committed(tail, length, RecordHeader::kPad),
                     std::memory_order_release);
        r_->WakeConsumers();
        continue;
      }
      const uint32_t flags = fill != nullptr ? RecordHeader::kSideRef : 0u;
      header.store(RecordHeader::Claim(me, static_cast<uint32_t>(n) | flags),
                   std::memory_order_relaxed);
      r_->tail_.store(next, std::memory_order_release);
      MP_FAULT_POINT("ring.put.after_tail");
      r_->records_in_.store(in, std::memory_order_relaxed);
      MP_FAULT_POINT("ring.put.after_claim");
      lock.Unlock();
      if (fill != nullptr) {
        absl::Status s =
            fill->fn(fill->ctx, data_ + off + sizeof(RecordHeader), n, tail);
        if (!s.ok()) {  // no message: the claim becomes a lost record
          header.store(RecordHeader::Committed(tail, static_cast<uint32_t>(n),
                                               RecordHeader::kLost),
                       std::memory_order_release);
          r_->WakeConsumers();
          return s;
        }
      } else {
        CopyPayload(data_ + off + sizeof(RecordHeader), src, n);
      }
      MP_FAULT_POINT("ring.put.after_payload");
      header.store(
          RecordHeader::Committed(tail, static_cast<uint32_t>(n) | flags,
                                  RecordHeader::kData),
          std::memory_order_release);
      MP_FAULT_POINT("ring.put.after_publish");
      r_->WakeConsumers();
      return absl::OkStatus();
    }
  }
}

bool RingView::SkipPadsForProducer(uint64_t tail) {
  // Never wait for the lock: its holder skips committed pads itself, and
  // may be waiting at head for a commit from producers that need this
  // producer lock (the wait would deadlock). A dead holder is taken over.
  ScopedPidLock lock(&r_->consumer_lock_);
  if (lock.Lock(Deadline::Past()) == PidLock::Acquired::kNo) return false;
  // A dead consumer's interrupted count is completed before head moves on.
  r_->RepairConsumerCounts();
  const uint64_t start = r_->head_.load(std::memory_order_relaxed);
  uint64_t head = start;
  while (head != tail && tail - head <= capacity_ && head % 8 == 0) {
    const uint64_t w = HeaderAt(head).load(std::memory_order_acquire);
    const size_t off = static_cast<size_t>(head & mask_);
    // Only a committed pad that fills the lap; anything else is the
    // consumers' to read (or to report as corrupt).
    if (!RecordHeader::IsCommittedAt(w, head) ||
        RecordHeader::KindOf(w) != RecordHeader::kPad ||
        Align8(sizeof(RecordHeader) + size_t{RecordHeader::LengthOf(w)}) !=
            capacity_ - off) {
      break;
    }
    head += capacity_ - off;
  }
  if (head == start) return false;
  r_->AdvanceHead(head, Ring::Count::kNone);
  lock.Unlock();
  r_->WakeProducers();
  return true;
}

absl::Status RingView::TruncatedError() {
  return absl::DataLossError(
      "queue: the segment's file was truncated under this mapping by another "
      "process; its contents are gone (recreate the queue)");
}

absl::StatusOr<uint64_t> RingView::NextRecordAfterCorrupt(uint64_t head) {
  const uint64_t tail = r_->tail_.load(std::memory_order_acquire);
  if (tail - head > capacity_ || tail == head) {
    return absl::DataLossError("ring: indices out of range");
  }
  // A record never straddles the end of the lap: the next one starts at the
  // lap's end at the latest.
  const uint64_t lap_end = head + (capacity_ - (head & mask_));
  const uint64_t limit = std::min(tail, lap_end);
  for (uint64_t p = head + sizeof(RecordHeader); p < limit;
       p += sizeof(RecordHeader)) {
    const uint64_t w = HeaderAt(p).load(std::memory_order_acquire);
    if (RecordHeader::IsCommittedAt(w, p)) return p;
    // A claim being written: its producer lives. (A payload word rarely
    // names a live task; the check costs a system call only for words
    // that could be a claim.)
    if (w != 0 && RecordHeader::KindOf(w) == RecordHeader::kClaimed) {
      const uint32_t tid = RecordHeader::ClaimerOf(w);
      const uint32_t length = RecordHeader::ClaimedPayloadOf(w);
      if (tid != 0 && tid <= kMaxTid &&
          Align8(sizeof(RecordHeader) + size_t{length}) <= lap_end - p &&
          !TaskIsDead(tid)) {
        return p;
      }
    }
  }
  return limit;
}

absl::StatusOr<bool> RingView::SkipDeadClaim(uint64_t head, uint64_t w,
                                         uint64_t tail) {
  const uint32_t length = RecordHeader::LengthOf(w);
  const bool pad = (length & RecordHeader::kPadClaim) != 0;
  const bool side = !pad && (length & RecordHeader::kSideRef) != 0;
  const uint32_t payload = RecordHeader::ClaimedPayloadOf(w);
  const size_t to_end = capacity_ - static_cast<size_t>(head & mask_);
  const size_t rec = Align8(sizeof(RecordHeader) + size_t{payload});
  if (rec > to_end || head + rec > tail || (pad && rec != to_end)) {
    return absl::DataLossError("ring: corrupt record claim");
  }
  const uint32_t tid = RecordHeader::ClaimerOf(w);
  if (tid != 0 && !TaskIsDead(tid)) return false;
  // Counted when head moves past it (AdvanceHead), not here: the count and
  // the head move go together through the intent.
  uint64_t expected = w;
  if (HeaderAt(head).compare_exchange_strong(
          expected,
          RecordHeader::Committed(
              head, payload, pad ? RecordHeader::kPad : RecordHeader::kLost),
          std::memory_order_acq_rel, std::memory_order_acquire) &&
      side && dead_side_claim_ != nullptr) {
    dead_side_claim_(queue_id_, head);  // the segment it may have made
  }
  return true;  // skipped by us, or committed meanwhile: look again
}

absl::Status RingView::Pop(Sink sink, void* ctx, Deadline deadline,
                       uint32_t taker, SideSink side_sink) {
  if (taker != Ring::kNoSlot && taker >= Ring::kTaskSlots) {
    return absl::InvalidArgumentError("ring: bad task slot");
  }
  return PopLocked(sink, ctx, deadline, mode_ == RingMode::kMpmc, taker,
                   side_sink);
}

absl::Status RingView::PopLocked(Sink sink, void* ctx, Deadline deadline,
                                 bool mpmc, uint32_t taker,
                                 SideSink side_sink) {
  // Every exit releases the lock, a throwing sink's included.
  ScopedPidLock lock(mpmc ? &r_->consumer_lock_ : nullptr);
  // A lock taken over from a dead consumer needs no repair of the ring: the
  // record it was reading is still at `head` and goes to us, or head has
  // moved past it and only its count may need completing.
  if (lock.Lock(deadline) == PidLock::Acquired::kNo) {
    return LockTimedOut(absl::StatusCode::kDeadlineExceeded, "get",
                        "consumer", r_->consumer_lock_);
  }
  MP_FAULT_POINT("ring.get.after_lock");
  r_->RepairConsumerCounts();
  StuckClaim stuck;
  for (;;) {
    const uint64_t head = r_->head_.load(std::memory_order_relaxed);
    if (head % 8 != 0) {
      return absl::DataLossError("ring: indices out of range");
    }
    const uint64_t w = HeaderAt(head).load(std::memory_order_acquire);
    if (!RecordHeader::IsCommittedAt(w, head)) {
      if (absl::Status s = AwaitRecord(head, w, deadline, mpmc, stuck);
          !s.ok()) {
        return s;
      }
      continue;
    }
    absl::StatusOr<bool> taken =
        TakeRecord(head, w, sink, side_sink, ctx, taker, lock);
    if (!taken.ok() || *taken) return taken.status();
  }
}

absl::Status RingView::AwaitRecord(uint64_t head, uint64_t w,
                                   Deadline deadline, bool mpmc,
                                   StuckClaim& stuck) {
  if (w == 0 && !r_->closed()) {
    // Nothing claimed at head: a claim writes the header before it publishes
    // the tail, and the word after each record was zeroed. Wait for the
    // commit polling the header alone, the line the producer writes anyway:
    // polling `tail` would pull the producer's index line across at every
    // record. A claim whose producer dies before committing makes no
    // wake-up; the sleeper sees it at the next commit or at its deadline, as
    // it would an empty queue (kMpmc keeps its liveness slices).
    // The sleep is sliced (kValidateSlice): after each slice the indices and
    // the claim at head are checked below, so a ring another process made
    // inconsistent (tail moved past an unclaimed head, head past tail) is
    // DataLoss within a slice, never an endless sleep.
    if (WaitForCommit(head, deadline, /*or_closed=*/true,
                      mpmc ? kLivenessSlice : kValidateSlice)) {
      return absl::OkStatus();
    }
  }
  // Not (yet) a record: look at the claims. Tail first, then the header
  // again: a claim is written before the tail store that publishes it.
  const uint64_t tail = r_->tail_.load(std::memory_order_acquire);
  if (tail - head > capacity_) {  // head after tail, or lapped
    return absl::DataLossError("ring: indices out of range");
  }
  w = HeaderAt(head).load(std::memory_order_acquire);
  if (RecordHeader::IsCommittedAt(w, head)) return absl::OkStatus();
  if (tail != head) return AwaitClaim(head, w, tail, deadline, stuck);
  if (r_->closed()) {
    // A producer that saw the queue open may claim after our read.
    if (r_->tail_.load(std::memory_order_acquire) != head) {
      return absl::OkStatus();
    }
    return absl::OutOfRangeError("queue is closed");
  }
  // Empty. kMpmc waits at head for the next commit, keeping the lock: the
  // other consumers wait on the lock, asleep once their spin is spent,
  // instead of polling the ring beside us: their cores go to the producers,
  // and no consumer polls the producers' line. The slices let us look for a
  // claim to judge. kSpsc waits for a claim, sliced as above: a rewrite of
  // the indices makes no wake-up.
  const bool woken =
      mpmc ? WaitForCommit(head, deadline, /*or_closed=*/true, kLivenessSlice)
           : WaitForClaim(head, deadline, kValidateSlice);
  if (!woken) {
    if (Truncated()) return TruncatedError();
    if (deadline.Expired()) {
      return absl::DeadlineExceededError("queue is empty");
    }
  }
  return absl::OkStatus();
}

absl::Status RingView::AwaitClaim(uint64_t head, uint64_t w, uint64_t tail,
                                  Deadline deadline, StuckClaim& stuck) {
  if (RecordHeader::KindOf(w) != RecordHeader::kClaimed) {
    return absl::DataLossError("ring: corrupt record header");
  }
  if (w == 0) {
    // Tail is past head (read with acquire) yet nothing is claimed at head:
    // a claim writes its header before it moves tail, and only the consumer
    // side clears a header at head. Not a producer's claim (never counted as
    // a lost record): the indices were written by someone else.
    return absl::DataLossError("ring: tail past head with no record at head");
  }
  const auto now = std::chrono::steady_clock::now();
  if (stuck.at != head) {
    stuck.at = head;
    stuck.since = now;
  }
  if (deadline.Expired() || now - stuck.since >= kLivenessSlice) {
    stuck.judged_late = deadline.Expired();
    absl::StatusOr<bool> skipped = SkipDeadClaim(head, w, tail);
    if (!skipped.ok()) return skipped.status();
    if (*skipped) return absl::OkStatus();
  }
  // Wait for the commit keeping the lock: the record at head is the next one
  // for every consumer, and only a lock holder may read the header at head
  // (see WaitForClaim). The commit wakes us; the slices are for looking at
  // the claimer now and then.
  if (!WaitForCommit(head, deadline, /*or_closed=*/false, kLivenessSlice) &&
      deadline.Expired() && stuck.judged_late) {
    return absl::DeadlineExceededError("queue is empty");
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RingView::TakeRecord(uint64_t head, uint64_t w,
                                          Sink sink, SideSink side_sink,
                                          void* ctx, uint32_t taker,
                                          ScopedPidLock& lock) {
  const size_t off = static_cast<size_t>(head & mask_);
  const size_t to_end = capacity_ - off;
  const uint32_t len = RecordHeader::LengthOf(w) & ~RecordHeader::kSideRef;
  const bool side = (RecordHeader::LengthOf(w) & RecordHeader::kSideRef) != 0;
  const uint32_t kind = RecordHeader::KindOf(w);
  const size_t rec = Align8(sizeof(RecordHeader) + size_t{len});
  if (rec > to_end || (kind == RecordHeader::kPad && rec != to_end)) {
    // No knowable extent: skip to the next record we can find, count this
    // one corrupt, and report it to this Get (once, as a poison record): the
    // records behind it go to the next Gets.
    absl::StatusOr<uint64_t> next = NextRecordAfterCorrupt(head);
    if (!next.ok()) return next.status();
    r_->AdvanceHead(*next, Ring::Count::kCorrupt);
    lock.Unlock();
    r_->WakeProducers();
    r_->WakeJoiners();
    return absl::DataLossError(absl::StrCat(
        "ring: corrupt record header at position ", head, " (length ", len,
        "): skipped ", *next - head, " bytes, counted in corrupt_records()"));
  }
  if (kind != RecordHeader::kData) {  // a pad, or a lost record
    const bool lost = kind == RecordHeader::kLost;
    r_->AdvanceHead(head + rec,
                    lost ? Ring::Count::kLost : Ring::Count::kNone);
    r_->WakeProducers();
    if (lost) r_->WakeJoiners();
    return false;
  }
  // The sink may throw (bad_alloc): the guard releases the lock and the
  // record stays at head. An error it returns drops the record.
  const char* payload = data_ + off + sizeof(RecordHeader);
  absl::Status s =
      !side ? sink(ctx, payload, len)
      : side_sink != nullptr
          ? side_sink(ctx, payload, len, head)
          : absl::DataLossError("queue: a side-channel record, unread here");
  if (!s.ok()) {
    r_->AdvanceHead(head + rec, Ring::Count::kCorrupt);
    lock.Unlock();
    r_->WakeProducers();
    r_->WakeJoiners();
    return s;
  }
  MP_FAULT_POINT("ring.get.after_copy");
  r_->AdvanceHead(head + rec, Ring::Count::kOut, taker);
  MP_FAULT_POINT("ring.get.after_publish");
  lock.Unlock();
  r_->WakeProducers();
  return true;
}

}  // namespace mp::queue_internal
