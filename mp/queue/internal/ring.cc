#include "mp/queue/internal/ring.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <new>

#include "absl/strings/str_cat.h"
#include "mp/core/fault.h"
#include "mp/core/fence.h"

namespace mp::queue_internal {
namespace {

// How long a side spins before it sleeps: about two futex sleep/wake round
// trips on the VMs we measured (23-50 us each), so a peer that is merely
// slower never costs a system call, while an idle one sleeps soon. A time
// budget, not a count: PAUSE costs 3 ns on some CPUs and 30 ns on others.
constexpr auto kSpinBudget = std::chrono::microseconds(50);

// Spins until `ready()` or the budget is spent; checks the clock every 32
// rounds (a vDSO clock read is ~20 ns).
template <class Ready>
bool SpinUntil(Ready ready) {
  const auto until = std::chrono::steady_clock::now() + kSpinBudget;
  for (;;) {
    for (int i = 0; i < 32; ++i) {
      if (ready()) return true;
      CpuRelax();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}
constexpr int kLockSpinIterations = 100;
// How long a sleeper whose HeavyFence could not cover the publishers (no
// membarrier in this process) sleeps before it looks again.
constexpr auto kUncoveredSlice = std::chrono::milliseconds(1);
constexpr auto kLivenessSlice = std::chrono::milliseconds(20);
// How long a waiter sleeps before it checks again the state it sleeps on
// (indices, the header at head): a writer of the shared bytes that makes
// the ring inconsistent sends no wake-up.
constexpr auto kValidateSlice = std::chrono::milliseconds(100);
// How long Join sleeps before it counts again (a wake can be missed where
// the fence cannot cover TaskDone, or when a count moves without a wake).
constexpr auto kJoinSlice = std::chrono::milliseconds(20);

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

// Holds a PidLock (or nothing, for a kSpsc side) for a scope: every exit,
// a thrown exception included, releases it.
class ScopedPidLock {
 public:
  explicit ScopedPidLock(PidLock* lock) : lock_(lock) {}
  ~ScopedPidLock() { Unlock(); }
  ScopedPidLock(const ScopedPidLock&) = delete;
  ScopedPidLock& operator=(const ScopedPidLock&) = delete;

  PidLock::Acquired Lock(Deadline deadline) {
    if (lock_ == nullptr) return PidLock::Acquired::kYes;
    const PidLock::Acquired a = lock_->Lock(deadline);
    held_ = a != PidLock::Acquired::kNo;
    return a;
  }
  void Unlock() {
    if (held_) {
      held_ = false;
      lock_->Unlock();
    }
  }

 private:
  PidLock* const lock_;
  bool held_ = false;
};

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

Deadline Earlier(Deadline a, Deadline b) {
  if (a.infinite()) return b;
  if (b.infinite()) return a;
  return a.time_point() < b.time_point() ? a : b;
}

}  // namespace

// The hot half of the Dekker pair (see ring.h): after publishing, read the
// waiters flag. LightFence is a compiler barrier (the sleeper pays with
// HeavyFence). GCC rejects thread fences under ThreadSanitizer (-Werror=tsan)
// and TSan cannot see membarrier, so a TSan build uses a seq_cst
// read-modify-write of the waiters word on both sides instead, which orders
// the same way at the price of a shared write.
inline uint32_t LoadWaitersAfterStore(std::atomic<uint32_t>& waiters) {
#if defined(__SANITIZE_THREAD__)
  return waiters.fetch_add(0, std::memory_order_seq_cst);
#else
  LightFence();
  return waiters.load(std::memory_order_relaxed);
#endif
}

// The sleeper's half: raise the flag, then fence. True when a sleep may be
// unbounded; false when the fence could not cover the hot sides (no
// membarrier here), so the sleeper must re-check in short slices.
inline bool RaiseWaitersBeforeLoad(std::atomic<uint32_t>& waiters) {
#if defined(__SANITIZE_THREAD__)
  waiters.exchange(1, std::memory_order_seq_cst);
  return true;
#else
  waiters.store(1, std::memory_order_relaxed);
  return HeavyFence();
#endif
}

// ---- PidLock ---------------------------------------------------------------

PidLock::Acquired PidLock::Lock(Deadline deadline) {
  const uint32_t me = CurrentTid();
  uint32_t expected = 0;
  if (word.compare_exchange_strong(expected, me, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
    return Acquired::kYes;
  }
  for (int i = 0; i < kLockSpinIterations; ++i) {
    CpuRelax();
    expected = 0;
    if (word.load(std::memory_order_relaxed) == 0 &&
        word.compare_exchange_weak(expected, me, std::memory_order_acquire,
                                   std::memory_order_relaxed)) {
      return Acquired::kYes;
    }
  }
  // After a sleep we may have taken the wake meant for all sleepers (the
  // unlocker clears the flag): whoever leaves this loop raises it again.
  bool slept = false;
  auto leave = [&](Acquired a) {
    if (slept) waiters.store(1, std::memory_order_relaxed);
    return a;
  };
  for (;;) {
    uint32_t v = word.load(std::memory_order_relaxed);
    if ((v & kHolderMask) == 0) {
      // Free. (A bit 31 with no holder is a state no Unlock leaves, only a
      // writer of the shared bytes; it is a free lock all the same, not one
      // held by "task 0" that no liveness check could ever free.)
      if (word.compare_exchange_weak(v, me, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
        return leave(Acquired::kYes);
      }
      continue;
    }
    if (deadline.Expired()) {
      if (TaskIsDead(v & kHolderMask)) {
        if (word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
          return leave(Acquired::kFromDeadHolder);
        }
        continue;
      }
      if (slept) Wake();  // pass on a wake we may have taken
      return leave(Acquired::kNo);
    }
    // Sleep on the epoch, not the word: the holder may unlock and take the
    // lock again before we sleep, leaving the word as we saw it; each wake
    // bumps the epoch.
    const uint32_t e = epoch.load(std::memory_order_acquire);
    const bool covered = RaiseWaitersBeforeLoad(waiters);
    if (word.load(std::memory_order_relaxed) != v) continue;
    Deadline slice = Earlier(deadline, Deadline::After(kLivenessSlice));
    if (!covered) slice = Earlier(slice, Deadline::After(kUncoveredSlice));
    FutexResult r = FutexWait(&epoch, e, slice);
    slept = true;
    if (r == FutexResult::kTimedOut && TaskIsDead(v & kHolderMask) &&
        word.compare_exchange_strong(v, me, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
      return leave(Acquired::kFromDeadHolder);
    }
  }
}

void PidLock::Unlock() {
  word.store(0, std::memory_order_release);
  if (LoadWaitersAfterStore(waiters) != 0 &&
      waiters.exchange(0, std::memory_order_acq_rel) != 0) {
    Wake();
  }
}

void PidLock::Wake() {
  epoch.fetch_add(1, std::memory_order_release);
  FutexWakeOne(&epoch);
}

// ---- Ring ------------------------------------------------------------------

size_t Ring::RoundCapacity(size_t capacity) {
  size_t c = kMinCapacity;
  while (c < capacity && c < kMaxCapacity) c <<= 1;
  return c;
}

Ring* Ring::Format(void* base, size_t capacity, RingMode mode,
                   uint64_t maxsize, uint64_t queue_id) {
  Ring* r = new (base) Ring();
  r->maxsize_ = maxsize;
  r->queue_id_ = queue_id;
  r->magic_ = kMagic;
  r->version_ = kVersion;
  r->mode_ = static_cast<uint32_t>(mode);
  r->capacity_ = capacity;
  r->mask_ = capacity - 1;
  return r;
}

absl::StatusOr<Ring*> Ring::Attach(void* base, size_t size) {
  if (base == nullptr || reinterpret_cast<uintptr_t>(base) % kCacheLine != 0) {
    return absl::InvalidArgumentError("ring: misaligned segment");
  }
  if (size < sizeof(Ring)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring: segment of ", size, " bytes is too small"));
  }
  Ring* r = static_cast<Ring*>(base);
  if (r->magic_ != kMagic) return absl::DataLossError("ring: bad magic");
  if (r->version_ != kVersion) {
    return absl::DataLossError(absl::StrCat("ring: version ", r->version_));
  }
  if (r->mode_ != static_cast<uint32_t>(RingMode::kSpsc) &&
      r->mode_ != static_cast<uint32_t>(RingMode::kMpmc)) {
    return absl::DataLossError("ring: bad mode");
  }
  uint64_t cap = r->capacity_;
  if (cap < kMinCapacity || cap > kMaxCapacity || (cap & (cap - 1)) != 0 ||
      r->mask_ != cap - 1 || cap > size - sizeof(Ring)) {
    return absl::DataLossError(absl::StrCat("ring: bad capacity ", cap));
  }
  // The cache before its index: head_cache_ is stored (release) after head
  // was loaded (acquire), so reading the cache first (acquire) orders that
  // load before ours and our head is at least the cached value, live ring or
  // not. In a live ring the reads are not one snapshot: a consumer and a
  // producer may both move a lap between our reads of head and tail. Only a
  // state seen twice in a row with nothing moved is judged.
  uint64_t last_head = ~uint64_t{0}, last_tail = ~uint64_t{0};
  for (int attempt = 0;; ++attempt) {
    const uint64_t head_cache =
        r->head_cache_.load(std::memory_order_acquire);
    const uint64_t head = r->head_.load(std::memory_order_acquire);
    const uint64_t tail = r->tail_.load(std::memory_order_acquire);
    if (head <= tail && tail - head <= cap && head % 8 == 0 && tail % 8 == 0 &&
        head_cache <= head) {
      return r;
    }
    if ((head == last_head && tail == last_tail) || attempt == 1000) {
      return absl::DataLossError("ring: indices out of range");
    }
    last_head = head;
    last_tail = tail;
  }
}

RingView RingView::Format(void* base, size_t capacity, RingMode mode,
                          uint64_t maxsize, uint64_t queue_id) {
  return RingView(Ring::Format(base, capacity, mode, maxsize, queue_id),
                  capacity, mode, maxsize, queue_id);
}

absl::StatusOr<RingView> RingView::Attach(void* base, size_t size) {
  absl::StatusOr<Ring*> r = Ring::Attach(base, size);
  if (!r.ok()) return r.status();
  // One read of each, then validated again here: what Ring::Attach checked
  // may have been rewritten since.
  const uint64_t cap = std::atomic_ref<uint64_t>((*r)->capacity_).load(
      std::memory_order_relaxed);
  const uint32_t mode = std::atomic_ref<uint32_t>((*r)->mode_).load(
      std::memory_order_relaxed);
  if (cap < Ring::kMinCapacity || cap > Ring::kMaxCapacity ||
      (cap & (cap - 1)) != 0 || cap > size - sizeof(Ring)) {
    return absl::DataLossError(absl::StrCat("ring: bad capacity ", cap));
  }
  if (mode != static_cast<uint32_t>(RingMode::kSpsc) &&
      mode != static_cast<uint32_t>(RingMode::kMpmc)) {
    return absl::DataLossError("ring: bad mode");
  }
  // Any value is safe here: the limit only bounds claims, the id only names
  // side segments (of this queue's own prefix).
  const uint64_t maxsize = std::atomic_ref<uint64_t>((*r)->maxsize_).load(
      std::memory_order_relaxed);
  const uint64_t queue_id = std::atomic_ref<uint64_t>((*r)->queue_id_).load(
      std::memory_order_relaxed);
  return RingView(*r, static_cast<size_t>(cap), static_cast<RingMode>(mode),
                  maxsize, queue_id);
}

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
  if (SpinUntil(ready)) return true;
  if (deadline.Expired()) return false;
  if (slice.count() != 0) deadline = Earlier(deadline, Deadline::After(slice));
  const uint32_t e = epoch.load(std::memory_order_acquire);
  const bool covered = RaiseWaitersBeforeLoad(waiters);
  after_raise();
  if (ready()) return true;
  const Deadline until =
      covered ? deadline : Earlier(deadline, Deadline::After(kUncoveredSlice));
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

bool RingView::WaitForSpace(uint64_t /*tail*/, size_t need, Deadline deadline,
                            std::chrono::milliseconds slice) {
  auto has_room = [&] {
    return r_->tail_.load(std::memory_order_relaxed) + need -
                   r_->head_.load(std::memory_order_seq_cst) <=
               capacity_ ||
           r_->closed();
  };
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
      header.store(RecordHeader::Committed(tail, static_cast<uint32_t>(n) | flags,
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

absl::StatusOr<bool> RingView::SkipDeadClaim(uint64_t head, uint64_t w,
                                         uint64_t tail) {
  const uint32_t length = RecordHeader::LengthOf(w);
  const bool pad = (length & RecordHeader::kPadClaim) != 0;
  const bool side = !pad && (length & RecordHeader::kSideRef) != 0;
  const uint32_t payload =
      length & ~(RecordHeader::kPadClaim | RecordHeader::kSideRef);
  const size_t to_end = capacity_ - static_cast<size_t>(head & mask_);
  const size_t rec = Align8(sizeof(RecordHeader) + size_t{payload});
  if (rec > to_end || head + rec > tail || (pad && rec != to_end)) {
    return absl::DataLossError("ring: corrupt record claim");
  }
  const uint32_t tid = RecordHeader::StateOf(w) >> 2;
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
                             bool mpmc, uint32_t taker, SideSink side_sink) {
  // A claim seen uncommitted at `stuck_at` since `stuck_since`: its claimer
  // is checked for liveness once it has been stuck kLivenessSlice, or when
  // our deadline has passed.
  uint64_t stuck_at = ~uint64_t{0};
  std::chrono::steady_clock::time_point stuck_since;
  bool judged_late = false;  // its claimer was alive at our deadline
  // Every exit releases the lock, a throwing sink's included.
  ScopedPidLock lock(mpmc ? &r_->consumer_lock_ : nullptr);
  for (;;) {
    // A lock taken over from a dead consumer needs no repair of the ring:
    // the record it was reading is still at `head` and goes to us, or head
    // has moved past it and only its count may need completing.
    if (lock.Lock(deadline) == PidLock::Acquired::kNo) {
      return LockTimedOut(absl::StatusCode::kDeadlineExceeded, "get",
                          "consumer", r_->consumer_lock_);
    }
    MP_FAULT_POINT("ring.get.after_lock");
    r_->RepairConsumerCounts();
    for (;;) {
      const uint64_t head = r_->head_.load(std::memory_order_relaxed);
      if (head % 8 != 0) {
        return absl::DataLossError("ring: indices out of range");
      }
      const size_t off = static_cast<size_t>(head & mask_);
      const size_t to_end = capacity_ - off;
      uint64_t w = HeaderAt(head).load(std::memory_order_acquire);
      if (w == 0 && !r_->closed()) {
        // Nothing claimed at head: a claim writes the header before it
        // publishes the tail, and the word after each record was zeroed.
        // Wait for the commit polling the header alone, the line the
        // producer writes anyway: polling `tail` would pull the producer's
        // index line across at every record. A claim whose producer dies
        // before committing makes no wake-up; the sleeper sees it at the
        // next commit or at its deadline, as it would an empty queue (kMpmc
        // keeps its liveness slices).
        // The sleep is sliced (kValidateSlice): after each slice the indices
        // and the claim at head are checked below, so a ring another process
        // made inconsistent (tail moved past an unclaimed head, head past
        // tail) is DataLoss within a slice, never an endless sleep.
        if (WaitForCommit(head, deadline, /*or_closed=*/true,
                          mpmc ? kLivenessSlice : kValidateSlice)) {
          continue;
        }
        w = HeaderAt(head).load(std::memory_order_acquire);
      }
      if (!RecordHeader::IsCommittedAt(w, head)) {
        // Not (yet) a record: look at the claims. Tail first, then the
        // header again: a claim is written before the tail store that
        // publishes it.
        const uint64_t tail = r_->tail_.load(std::memory_order_acquire);
        if (tail - head > capacity_) {  // head after tail, or lapped
          return absl::DataLossError("ring: indices out of range");
        }
        w = HeaderAt(head).load(std::memory_order_acquire);
        if (!RecordHeader::IsCommittedAt(w, head)) {
          const bool claimed = tail != head;
          if (claimed) {
            if (RecordHeader::KindOf(w) != RecordHeader::kClaimed) {
              return absl::DataLossError("ring: corrupt record header");
            }
            if (w == 0) {
              // Tail is past head (read with acquire) yet nothing is claimed
              // at head: a claim writes its header before it moves tail, and
              // only the consumer side clears a header at head. Not a
              // producer's claim (never counted as a lost record): the
              // indices were written by someone else.
              return absl::DataLossError(
                  "ring: tail past head with no record at head");
            }
            const auto now = std::chrono::steady_clock::now();
            if (stuck_at != head) {
              stuck_at = head;
              stuck_since = now;
            }
            if (deadline.Expired() || now - stuck_since >= kLivenessSlice) {
              judged_late = deadline.Expired();
              absl::StatusOr<bool> skipped = SkipDeadClaim(head, w, tail);
              if (!skipped.ok()) return skipped.status();
              if (*skipped) continue;
            }
            // Wait for the commit keeping the lock: the record at head is
            // the next one for every consumer, and only a lock holder may
            // read the header at head (see WaitForClaim). The commit wakes
            // us; the slices are for looking at the claimer now and then.
            if (!WaitForCommit(head, deadline, /*or_closed=*/false,
                               kLivenessSlice) &&
                deadline.Expired() && judged_late) {
              return absl::DeadlineExceededError("queue is empty");
            }
            continue;
          }
          if (r_->closed()) {
            // A producer that saw the queue open may claim after our read.
            if (r_->tail_.load(std::memory_order_acquire) != head) continue;
            return absl::OutOfRangeError("queue is closed");
          }
          if (mpmc) {
            // Empty: wait at head for the next commit, keeping the lock.
            // The other consumers wait on the lock, asleep once their spin
            // is spent, instead of polling the ring beside us: their cores
            // go to the producers, and no consumer polls the producers'
            // line. The slices let us look for a claim to judge.
            if (!WaitForCommit(head, deadline, /*or_closed=*/true,
                               kLivenessSlice) &&
                deadline.Expired()) {
              return absl::DeadlineExceededError("queue is empty");
            }
            continue;
          }
          // Sliced, as above: a rewrite of the indices makes no wake-up.
          if (!WaitForClaim(head, deadline, kValidateSlice) &&
              deadline.Expired()) {
            return absl::DeadlineExceededError("queue is empty");
          }
          continue;
        }
      }
      const uint32_t len =
          RecordHeader::LengthOf(w) & ~RecordHeader::kSideRef;
      const bool side = (RecordHeader::LengthOf(w) & RecordHeader::kSideRef) != 0;
      const uint32_t kind = RecordHeader::KindOf(w);
      const size_t rec = Align8(sizeof(RecordHeader) + size_t{len});
      if (rec > to_end || (kind == RecordHeader::kPad && rec != to_end)) {
        return absl::DataLossError("ring: corrupt record header");
      }
      if (kind != RecordHeader::kData) {  // a pad, or a lost record
        const bool lost = kind == RecordHeader::kLost;
        r_->AdvanceHead(head + rec, lost ? Ring::Count::kLost : Ring::Count::kNone);
        r_->WakeProducers();
        if (lost) r_->WakeJoiners();
        continue;
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
      return absl::OkStatus();
    }
  }
}

// ---- Exact counts (ring.h) ---------------------------------------------------

std::atomic<uint64_t>* Ring::CounterOf(Count c) {
  switch (c) {
    case Count::kOut:
      return &records_out_;
    case Count::kLost:
      return &lost_;
    case Count::kCorrupt:
      return &corrupt_;
    case Count::kNone:
      break;
  }
  return nullptr;
}

void Ring::AdvanceHead(uint64_t next, Count c, uint32_t taker) {
  std::atomic<uint64_t>* counter = CounterOf(c);
  if (counter == nullptr) {  // a pad: nothing to count, no intent needed
    head_.store(next, std::memory_order_release);
    return;
  }
  const uint64_t n = counter->load(std::memory_order_relaxed) + 1;
  // pend_head_ first: until head reaches it, the rest of the intent is
  // ignored, stale or not. pend_what_ names the taker on every counted move,
  // so a stale pend_taken_ is never read as ours.
  pend_head_.store(next, std::memory_order_relaxed);
  uint64_t taken = 0;
  uint32_t what = static_cast<uint32_t>(c);
  if (taker != kNoSlot) {
    taken = slots_[taker].taken.load(std::memory_order_relaxed) + 1;
    pend_taken_.store(taken, std::memory_order_relaxed);
    what |= (taker + 1) << 8;
  }
  pend_what_.store(what, std::memory_order_relaxed);
  pend_count_.store(n, std::memory_order_release);
  head_.store(next, std::memory_order_release);
  if (c == Count::kOut) MP_FAULT_POINT("ring.get.after_head");
  counter->store(n, std::memory_order_relaxed);
  if (taker != kNoSlot) {
    slots_[taker].taken.store(taken, std::memory_order_release);
  }
}

void Ring::RepairConsumerCounts() {
  if (head_.load(std::memory_order_relaxed) !=
      pend_head_.load(std::memory_order_relaxed)) {
    return;
  }
  const uint32_t what = pend_what_.load(std::memory_order_relaxed);
  std::atomic<uint64_t>* counter = CounterOf(static_cast<Count>(what & 0xff));
  if (counter == nullptr) return;
  const uint64_t want = pend_count_.load(std::memory_order_acquire);
  if (counter->load(std::memory_order_relaxed) + 1 == want) {
    counter->store(want, std::memory_order_relaxed);
  }
  const uint32_t slot = (what >> 8) - 1;  // kNoSlot when none
  if (slot < kTaskSlots) {
    const uint64_t taken = pend_taken_.load(std::memory_order_relaxed);
    if (slots_[slot].taken.load(std::memory_order_relaxed) + 1 == taken) {
      slots_[slot].taken.store(taken, std::memory_order_release);
    }
  }
}

void Ring::RepairProducerCounts() {
  if (tail_.load(std::memory_order_relaxed) !=
      pend_tail_.load(std::memory_order_relaxed)) {
    return;
  }
  const uint64_t want = pend_in_.load(std::memory_order_acquire);
  if (records_in_.load(std::memory_order_relaxed) + 1 == want) {
    records_in_.store(want, std::memory_order_relaxed);
  }
}

// Readers complete an interrupted move's count as the next holder will. An
// intent counts only if head stands at its position and the intent did not
// change while we looked (a successor writes pend_what_ before it moves
// head), so a move still in flight, or an intent whose mover died before
// moving head, is never counted.
uint64_t Ring::Counted(Count c) const {
  const std::atomic<uint64_t>& counter = c == Count::kOut    ? records_out_
                                         : c == Count::kLost ? lost_
                                                             : corrupt_;
  const uint64_t v = counter.load(std::memory_order_acquire);
  const uint32_t what = pend_what_.load(std::memory_order_acquire);
  if ((what & 0xff) == static_cast<uint32_t>(c) &&
      pend_count_.load(std::memory_order_acquire) == v + 1 &&
      head_.load(std::memory_order_acquire) ==
          pend_head_.load(std::memory_order_acquire) &&
      pend_what_.load(std::memory_order_acquire) == what) {
    return v + 1;
  }
  return v;
}

uint64_t Ring::Clamped(Count c) const {
  const uint64_t v = Counted(c);
  uint64_t others = 0;
  for (Count o : {Count::kOut, Count::kLost, Count::kCorrupt}) {
    if (o == c) continue;
    const uint64_t n = Counted(o);
    others = n > ~uint64_t{0} - others ? ~uint64_t{0} : others + n;
  }
  const uint64_t in = ClaimedRecords();
  const uint64_t possible = in > others ? in - others : 0;
  return std::min(v, possible);
}

uint64_t Ring::SlotTaken(uint32_t i) const {
  const uint64_t v = slots_[i].taken.load(std::memory_order_acquire);
  const uint32_t what = pend_what_.load(std::memory_order_acquire);
  if ((what & 0xff) == static_cast<uint32_t>(Count::kOut) &&
      (what >> 8) == i + 1 &&
      pend_taken_.load(std::memory_order_acquire) == v + 1 &&
      head_.load(std::memory_order_acquire) ==
          pend_head_.load(std::memory_order_acquire) &&
      pend_what_.load(std::memory_order_acquire) == what) {
    return v + 1;
  }
  return v;
}

uint64_t Ring::ClaimedRecords() const {
  const uint64_t v = records_in_.load(std::memory_order_acquire);
  if (pend_in_.load(std::memory_order_acquire) == v + 1 &&
      tail_.load(std::memory_order_acquire) ==
          pend_tail_.load(std::memory_order_acquire)) {
    return v + 1;
  }
  return v;
}

uint64_t Ring::RecordsApprox() const {
  // What left the ring first, then what entered it: a record moving through
  // meanwhile makes the answer larger, never negative.
  const uint64_t gone =
      Counted(Count::kOut) + Counted(Count::kLost) + Counted(Count::kCorrupt);
  const uint64_t in = ClaimedRecords();
  return in > gone ? in - gone : 0;
}

// ---- JoinableQueue's tasks ---------------------------------------------------

namespace {

uint64_t OwnerWord(uint32_t pid, uint64_t start) {
  return (uint64_t{pid} << 32) | (start & 0xffffffffu);
}

// True when the slot owner `owner` (non-zero) no longer runs: its pid is
// gone or a zombie, or names a process that started at another time.
bool OwnerIsDead(uint64_t owner) {
  const uint32_t pid = static_cast<uint32_t>(owner >> 32);
  if (pid == 0) return true;  // names no process: only a writer's garbage
  // One look at /proc: gone, a zombie, or another start time (low 32 bits).
  return liveness::TaskIsDead(pid, owner & 0xffffffffu, 0xffffffffu);
}

}  // namespace

uint32_t Ring::ClaimTaskSlot() {
  const uint32_t pid = static_cast<uint32_t>(getpid());
  const uint64_t me = OwnerWord(pid, liveness::TaskStartTime(pid));
  for (uint32_t i = 0; i < kTaskSlots; ++i) {
    if (slots_[i].owner.load(std::memory_order_acquire) == me) return i;
  }
  for (uint32_t i = 0; i < kTaskSlots; ++i) {
    uint64_t o = 0;
    if (slots_[i].owner.load(std::memory_order_relaxed) == 0 &&
        slots_[i].owner.compare_exchange_strong(o, me,
                                                std::memory_order_acq_rel)) {
      return i;  // never used: every count is 0
    }
  }
  for (uint32_t i = 0; i < kTaskSlots; ++i) {
    uint64_t o = slots_[i].owner.load(std::memory_order_acquire);
    if (o == 0 || o == me || !OwnerIsDead(o)) continue;
    // The dead owners' abandoned tasks, before we own the slot: nobody
    // moves a dead slot's counts but a repair, which SlotTaken includes.
    const uint64_t done = slots_[i].done.load(std::memory_order_acquire);
    const uint64_t taken = SlotTaken(i);
    if (slots_[i].owner.compare_exchange_strong(o, me,
                                                std::memory_order_acq_rel)) {
      // Killed before this store, we leave a dead slot, counted alike.
      slots_[i].abandoned_before.store(taken > done ? taken - done : 0,
                                       std::memory_order_release);
      return i;
    }
  }
  return kNoSlot;
}

uint64_t Ring::UnfinishedTasks() const {
  // The finished first, then the claimed: racing puts and task_dones can
  // only make the answer larger (Join waits longer), never smaller.
  uint64_t finished = tasks_done_.load(std::memory_order_acquire) +
                      Counted(Count::kLost) + Counted(Count::kCorrupt);
  for (uint32_t i = 0; i < kTaskSlots; ++i) {
    const uint64_t owner = slots_[i].owner.load(std::memory_order_acquire);
    if (owner == 0) continue;
    const uint64_t ab = slots_[i].abandoned_before.load(std::memory_order_acquire);
    const uint64_t done = slots_[i].done.load(std::memory_order_acquire);
    if (OwnerIsDead(owner)) {
      finished += std::max(SlotTaken(i), done);
    } else {
      finished += done + ab;
    }
  }
  const uint64_t in = ClaimedRecords();
  return in > finished ? in - finished : 0;
}

uint64_t Ring::AbandonedTasks() const {
  uint64_t abandoned = 0;
  for (uint32_t i = 0; i < kTaskSlots; ++i) {
    const uint64_t owner = slots_[i].owner.load(std::memory_order_acquire);
    if (owner == 0) continue;
    if (OwnerIsDead(owner)) {
      const uint64_t done = slots_[i].done.load(std::memory_order_acquire);
      const uint64_t taken = SlotTaken(i);
      abandoned += taken > done ? taken - done : 0;
    } else {
      abandoned += slots_[i].abandoned_before.load(std::memory_order_acquire);
    }
  }
  return abandoned;
}

absl::Status Ring::TaskDone(uint32_t slot) {
  if (slot != kNoSlot && slot >= kTaskSlots) {
    return absl::InvalidArgumentError("ring: bad task slot");
  }
  uint64_t finished = tasks_done_.load(std::memory_order_acquire) +
                      Counted(Count::kLost) + Counted(Count::kCorrupt);
  for (uint32_t i = 0; i < kTaskSlots; ++i) {
    finished += slots_[i].done.load(std::memory_order_acquire);
  }
  if (finished >= ClaimedRecords()) {
    return absl::InvalidArgumentError("task_done() called too many times");
  }
  std::atomic<uint64_t>& done =
      slot == kNoSlot ? tasks_done_ : slots_[slot].done;
  done.fetch_add(1, std::memory_order_acq_rel);
  WakeJoiners();
  return absl::OkStatus();
}

void Ring::WakeJoiners() {
  if (LoadWaitersAfterStore(joiners_waiting_) != 0 &&
      joiners_waiting_.exchange(0, std::memory_order_acq_rel) != 0) {
    task_epoch_.fetch_add(1, std::memory_order_release);
    FutexWakeAll(&task_epoch_);
  }
}

absl::Status Ring::JoinTasks(Deadline deadline) {
  for (;;) {
    if (UnfinishedTasks() == 0) return absl::OkStatus();
    if (deadline.Expired()) {
      return absl::DeadlineExceededError("join: tasks still unfinished");
    }
    const uint32_t e = task_epoch_.load(std::memory_order_acquire);
    RaiseWaitersBeforeLoad(joiners_waiting_);
    if (UnfinishedTasks() == 0) return absl::OkStatus();
    // Slices: a count can move with no wake (a dead consumer's count
    // completed, a fence that could not cover the waker); Join counts again
    // at least every kJoinSlice.
    FutexWait(&task_epoch_, e, Earlier(deadline, Deadline::After(kJoinSlice)));
  }
}

// ---- kSpsc sides ---------------------------------------------------------------

absl::Status RingView::ClaimSpscSide(bool producer) {
  std::atomic<uint64_t>& word =
      producer ? r_->producer_owner_ : r_->consumer_owner_;
  const uint32_t pid = static_cast<uint32_t>(getpid());
  const uint64_t me = OwnerWord(pid, liveness::TaskStartTime(pid));
  for (;;) {
    uint64_t o = word.load(std::memory_order_acquire);
    if (o == me) return absl::OkStatus();
    if (o != 0 && !OwnerIsDead(o)) {
      const char* side = producer ? "producer" : "consumer";
      return absl::FailedPreconditionError(absl::StrCat(
          "queue is SPSC and its ", side, " is process ", o >> 32,
          ", still alive: a second ", side,
          " would corrupt it (create the queue MPMC to share a side)"));
    }
    if (word.compare_exchange_strong(o, me, std::memory_order_acq_rel)) {
      return absl::OkStatus();
    }
  }
}

}  // namespace mp::queue_internal
