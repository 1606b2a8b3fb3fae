#include "mp/queue/internal/ring_snapshot.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "mp/queue/internal/ring.h"

namespace mp::queue_internal {
namespace {

// Ring's private fields, restated from ring.h (offsets in bytes from the
// start of the Ring). Pinned to the layout version they were read from: a
// new Ring::kVersion fails the build here until they are checked again.
//   line 0:  magic 0 | version 8 | mode 12 | capacity 16 | mask 24 |
//            producer_owner 32 | consumer_owner 40 | maxsize 48 |
//            queue_id 56
//   line 1:  tail 64 | head_cache 72 | records_in 80 | pend_tail 88 |
//            pend_in 96 | gone_cache 104
//   line 2:  head 128
//   line 3:  consumer_lock 192 (word, waiters, epoch) | records_out 208 |
//            lost 216 | corrupt 224 | pend_head 232 | pend_count 240 |
//            pend_what 248
//   line 4:  data_epoch 256 | consumers_waiting 260 | producer_lock 264
//   line 5:  space_epoch 320 | producers_waiting 324
//   line 6:  closed 384 | task_epoch 388 | joiners_waiting 392 |
//            tasks_done 400 | pend_taken 408
//   7..22:   task slots 448 + 32 * i (owner, taken, done, abandoned_before)
// TODO(lead): a `friend struct RingLayout` in Ring (as ResidentLock has
// sync_internal::LockLayout) would let these be offsetof() checks.
constexpr size_t kMagicAt = 0;
constexpr size_t kVersionAt = 8;
constexpr size_t kModeAt = 12;
constexpr size_t kCapacityAt = 16;
constexpr size_t kMaskAt = 24;
constexpr size_t kProducerOwnerAt = 32;
constexpr size_t kConsumerOwnerAt = 40;
constexpr size_t kMaxsizeAt = 48;
constexpr size_t kQueueIdAt = 56;
constexpr size_t kTailAt = 64;
constexpr size_t kHeadCacheAt = 72;
constexpr size_t kRecordsInAt = 80;
constexpr size_t kPendTailAt = 88;
constexpr size_t kPendInAt = 96;
constexpr size_t kHeadAt = 128;
constexpr size_t kConsumerLockAt = 192;
constexpr size_t kRecordsOutAt = 208;
constexpr size_t kLostAt = 216;
constexpr size_t kCorruptAt = 224;
constexpr size_t kPendHeadAt = 232;
constexpr size_t kPendCountAt = 240;
constexpr size_t kPendWhatAt = 248;
constexpr size_t kConsumersWaitingAt = 260;
constexpr size_t kProducerLockAt = 264;
constexpr size_t kProducersWaitingAt = 324;
constexpr size_t kClosedAt = 384;
constexpr size_t kJoinersWaitingAt = 392;
constexpr size_t kTasksDoneAt = 400;
constexpr size_t kSlotsAt = 448;
constexpr size_t kSlotBytes = 32;

static_assert(Ring::kVersion == 7,
              "Ring's layout changed: check the offsets in ring_snapshot.cc");
static_assert(sizeof(Ring) == kSlotsAt + Ring::kTaskSlots * kSlotBytes);
static_assert(sizeof(PidLock) == 12);
static_assert(offsetof(PidLock, word) == 0);
static_assert(offsetof(PidLock, waiters) == 4);
static_assert(sizeof(TaskSlot) == kSlotBytes);
static_assert(offsetof(TaskSlot, owner) == 0);
static_assert(offsetof(TaskSlot, taken) == 8);
static_assert(offsetof(TaskSlot, done) == 16);
static_assert(offsetof(TaskSlot, abandoned_before) == 24);

// The counts as Ring::Count numbers them (pend_what's low byte).
constexpr uint32_t kCountOut = 1;
constexpr uint32_t kCountLost = 2;
constexpr uint32_t kCountCorrupt = 3;

template <class T>
T Read(const char* p, size_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof(v));
  return v;
}

OwnerSnapshot Owner(uint64_t w) {
  return OwnerSnapshot{static_cast<uint32_t>(w >> 32),
                       static_cast<uint32_t>(w)};
}

PidLockSnapshot Lock(const char* p, size_t at) {
  PidLockSnapshot s;
  s.holder_tid =
      Read<uint32_t>(p, at + offsetof(PidLock, word)) & PidLock::kHolderMask;
  s.waiters = Read<uint32_t>(p, at + offsetof(PidLock, waiters)) != 0;
  return s;
}

// a + b, saturating.
uint64_t Add(uint64_t a, uint64_t b) {
  return a > ~uint64_t{0} - b ? ~uint64_t{0} : a + b;
}

}  // namespace

const char* RingModeName(uint32_t mode) {
  switch (mode) {
    case static_cast<uint32_t>(RingMode::kSpsc):
      return "SPSC";
    case static_cast<uint32_t>(RingMode::kMpmc):
      return "MPMC";
  }
  return "unknown";
}

size_t RingFieldBytes() { return sizeof(Ring); }

absl::StatusOr<RingSnapshot> DescribeRing(const void* bytes, size_t n,
                                          uint64_t ring_bytes) {
  const char* p = static_cast<const char*>(bytes);
  if (p == nullptr || n < sizeof(Ring)) {
    return absl::DataLossError(absl::StrCat("ring: ", n, " bytes, fewer than ",
                                            sizeof(Ring),
                                            " for the ring's own fields"));
  }
  if (n > ring_bytes) {
    return absl::DataLossError(absl::StrCat(
        "ring: ", n, " bytes copied from a ring of ", ring_bytes));
  }
  if (Read<uint64_t>(p, kMagicAt) != Ring::kMagic) {
    return absl::DataLossError("ring: bad magic");
  }
  RingSnapshot s;
  s.version = Read<uint32_t>(p, kVersionAt);
  if (s.version != Ring::kVersion) {
    return absl::DataLossError(absl::StrCat("ring: layout version ", s.version,
                                            ", this reader knows ",
                                            Ring::kVersion));
  }
  std::vector<std::string>& bad = s.problems;

  s.mode = Read<uint32_t>(p, kModeAt);
  s.mode_valid = s.mode == static_cast<uint32_t>(RingMode::kSpsc) ||
                 s.mode == static_cast<uint32_t>(RingMode::kMpmc);
  if (!s.mode_valid) bad.push_back(absl::StrCat("mode: bad value ", s.mode));

  s.maxsize = Read<uint64_t>(p, kMaxsizeAt);
  s.queue_id = Read<uint64_t>(p, kQueueIdAt);
  s.capacity = Read<uint64_t>(p, kCapacityAt);
  const uint64_t mask = Read<uint64_t>(p, kMaskAt);
  const uint64_t cap = s.capacity;
  if (cap < Ring::kMinCapacity || cap > Ring::kMaxCapacity ||
      (cap & (cap - 1)) != 0) {
    bad.push_back(absl::StrCat("capacity: ", cap, " is not a power of two in [",
                               Ring::kMinCapacity, ", ", Ring::kMaxCapacity,
                               "]"));
  } else if (mask != cap - 1) {
    bad.push_back(absl::StrCat("mask: ", mask, " for capacity ", cap));
  } else if (cap > ring_bytes - sizeof(Ring)) {
    bad.push_back(absl::StrCat("capacity: ", cap, " bytes of data, but only ",
                               ring_bytes - sizeof(Ring),
                               " follow the ring"));
  } else {
    s.capacity_valid = true;
  }

  s.spsc_producer = Owner(Read<uint64_t>(p, kProducerOwnerAt));
  s.spsc_consumer = Owner(Read<uint64_t>(p, kConsumerOwnerAt));

  s.tail = Read<uint64_t>(p, kTailAt);
  s.head_cache = Read<uint64_t>(p, kHeadCacheAt);
  s.head = Read<uint64_t>(p, kHeadAt);
  if (s.head % 8 != 0 || s.tail % 8 != 0 || s.head_cache % 8 != 0) {
    bad.push_back(absl::StrCat("indices: not 8-aligned (head ", s.head,
                               ", tail ", s.tail, ", head cache ",
                               s.head_cache, ")"));
  } else if (s.head > s.tail) {
    bad.push_back(
        absl::StrCat("indices: head ", s.head, " after tail ", s.tail));
  } else if (s.capacity_valid && s.tail - s.head > cap) {
    bad.push_back(absl::StrCat("indices: head ", s.head, " and tail ", s.tail,
                               " more than the capacity apart"));
  } else if (s.head_cache > s.head) {
    bad.push_back(absl::StrCat("indices: head cache ", s.head_cache,
                               " ahead of head ", s.head));
  } else if (s.capacity_valid) {
    s.indices_valid = true;
    s.bytes_used = s.tail - s.head;
  }

  // Counts, each with an interrupted move completed (Ring::Counted and
  // Ring::ClaimedRecords).
  s.records_in = Read<uint64_t>(p, kRecordsInAt);
  if (Read<uint64_t>(p, kPendInAt) == s.records_in + 1 &&
      Read<uint64_t>(p, kPendTailAt) == s.tail) {
    s.records_in += 1;
  }
  s.records_out = Read<uint64_t>(p, kRecordsOutAt);
  s.lost = Read<uint64_t>(p, kLostAt);
  s.corrupt = Read<uint64_t>(p, kCorruptAt);
  const uint32_t what = Read<uint32_t>(p, kPendWhatAt) & 0xffu;
  if (Read<uint64_t>(p, kPendHeadAt) == s.head) {
    const uint64_t pend = Read<uint64_t>(p, kPendCountAt);
    uint64_t* counted = what == kCountOut       ? &s.records_out
                        : what == kCountLost    ? &s.lost
                        : what == kCountCorrupt ? &s.corrupt
                                                : nullptr;
    if (counted != nullptr && pend == *counted + 1) *counted = pend;
  }
  const uint64_t gone = Add(Add(s.records_out, s.lost), s.corrupt);
  if (gone > s.records_in) {
    bad.push_back(absl::StrCat("counts: ", s.records_out, " taken + ", s.lost,
                               " lost + ", s.corrupt,
                               " corrupt exceed the ", s.records_in,
                               " records ever put"));
  } else {
    s.counts_valid = true;
    s.records_queued = s.records_in - gone;
    if (s.indices_valid && s.records_queued > s.bytes_used / 8) {
      // Every record takes at least its 8-byte header.
      bad.push_back(absl::StrCat("counts: ", s.records_queued,
                                 " records queued in ", s.bytes_used,
                                 " bytes"));
      s.counts_valid = false;
      s.records_queued = s.bytes_used / 8;
    }
  }

  s.closed_word = Read<uint32_t>(p, kClosedAt);
  s.closed = s.closed_word != 0;
  if (s.closed_word > 1) {
    bad.push_back(absl::StrCat("closed: bad value ", s.closed_word));
  }
  const uint32_t cw = Read<uint32_t>(p, kConsumersWaitingAt);
  const uint32_t pw = Read<uint32_t>(p, kProducersWaitingAt);
  const uint32_t jw = Read<uint32_t>(p, kJoinersWaitingAt);
  s.consumers_waiting = cw != 0;
  s.producers_waiting = pw != 0;
  s.joiners_waiting = jw != 0;
  if (cw > 1 || pw > 1 || jw > 1) {
    bad.push_back(absl::StrCat("waiter flags: bad values (consumers ", cw,
                               ", producers ", pw, ", joiners ", jw, ")"));
  }

  s.producer_lock = Lock(p, kProducerLockAt);
  s.consumer_lock = Lock(p, kConsumerLockAt);

  s.tasks_done_unattributed = Read<uint64_t>(p, kTasksDoneAt);
  for (uint32_t i = 0; i < Ring::kTaskSlots; ++i) {
    const size_t at = kSlotsAt + i * kSlotBytes;
    const uint64_t owner =
        Read<uint64_t>(p, at + offsetof(TaskSlot, owner));
    if (owner == 0) continue;
    TaskSlotSnapshot t;
    t.index = i;
    t.owner = Owner(owner);
    t.taken = Read<uint64_t>(p, at + offsetof(TaskSlot, taken));
    t.done = Read<uint64_t>(p, at + offsetof(TaskSlot, done));
    t.abandoned_before =
        Read<uint64_t>(p, at + offsetof(TaskSlot, abandoned_before));
    if (t.owner.pid == 0) {
      bad.push_back(absl::StrCat("task slot ", i, ": owner word names pid 0"));
    }
    if (s.counts_valid && t.taken > s.records_in) {
      bad.push_back(absl::StrCat("task slot ", i, ": ", t.taken,
                                 " taken of ", s.records_in, " ever put"));
    }
    s.task_slots.push_back(t);
  }
  return s;
}

}  // namespace mp::queue_internal
