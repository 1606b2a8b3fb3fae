// The ring's counts (see "Exact counts" in ring.h), JoinableQueue's tasks and
// the kSpsc side owners: everything in the ring that is bookkeeping rather
// than moving records (ring.cc).

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "mp/core/liveness.h"
#include "mp/queue/internal/fault_points.h"
#include "mp/queue/internal/pid_lock.h"
#include "mp/queue/internal/ring.h"

namespace mp::queue_internal {
namespace {

// How long Join sleeps before it counts again (a wake can be missed where
// the fence cannot cover TaskDone, or when a count moves without a wake).
constexpr auto kJoinSlice = std::chrono::milliseconds(20);

}  // namespace

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
    FutexWait(&task_epoch_, e, Deadline::Earlier(deadline, Deadline::After(kJoinSlice)));
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
