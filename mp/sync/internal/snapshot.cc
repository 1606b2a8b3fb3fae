#include "mp/sync/internal/snapshot.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "mp/core/segment_header.h"
#include "mp/sync/condition.h"
#include "mp/sync/event.h"
#include "mp/sync/internal/named.h"
#include "mp/sync/internal/robust_list.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"

namespace mp::sync_internal {
namespace {

// The resident types' private fields, restated from their headers' layout
// comments (offsets in bytes), pinned by the sizes below.
//   ResidentLock       0 word_ | 4 owner_died_ | 8 reserved_ | 24, 32 links
//   ResidentRLock      0 ResidentLock | 40 count_ | 44 pad_
//   ResidentEvent      0 word_ (bit 0 SET, bit 1 WAITERS)
//   ResidentSemaphore  0 count_ | 4 waiters_ (bits 0-21 count) | 8 bound_
//   ResidentCondition  0 seq_ | 4 sleepers_ | 8 counts_ (waiting | signals
//                      << 32)
//   named Condition    0 ResidentCondition | 16 ResidentRLock
//                      (condition.cc's NamedConditionState)
// TODO(lead): friend access for a layout struct (as LockLayout) would let
// these be offsetof() checks.
constexpr size_t kLockWordAt = 0;
constexpr size_t kLockOwnerDiedAt = 4;
constexpr size_t kRLockCountAt = 40;
constexpr size_t kEventWordAt = 0;
constexpr uint32_t kEventSet = 1;
constexpr uint32_t kEventWaiters = 2;
constexpr size_t kSemCountAt = 0;
constexpr size_t kSemWaitersAt = 4;
constexpr size_t kSemBoundAt = 8;
constexpr uint32_t kSemWaiterCountMask = (uint32_t{1} << 22) - 1;
constexpr size_t kCondSeqAt = 0;
constexpr size_t kCondSleepersAt = 4;
constexpr size_t kCondCountsAt = 8;
constexpr size_t kNamedCondLockAt = 16;

constexpr size_t kLockSize = 40;
constexpr size_t kRLockSize = 48;
constexpr size_t kEventSize = 4;
constexpr size_t kSemaphoreSize = 12;
constexpr size_t kConditionSize = 16;
constexpr size_t kNamedConditionSize = kNamedCondLockAt + kRLockSize;

static_assert(sizeof(ResidentLock) == kLockSize);
static_assert(sizeof(ResidentRLock) == kRLockSize);
static_assert(sizeof(ResidentEvent) == kEventSize);
static_assert(sizeof(ResidentSemaphore) == kSemaphoreSize);
static_assert(sizeof(ResidentCondition) == kConditionSize);
static_assert(alignof(ResidentRLock) == 8 && kNamedCondLockAt % 8 == 0);

template <class T>
T Read(const char* p, size_t at) {
  T v;
  std::memcpy(&v, p + at, sizeof(v));
  return v;
}

void DescribeLock(const char* p, size_t at, SyncSnapshot& s) {
  const uint32_t word = Read<uint32_t>(p, at + kLockWordAt);
  const uint32_t died = Read<uint32_t>(p, at + kLockOwnerDiedAt);
  s.lock.owner_tid = word & kTidMask;
  s.lock.owner_died = (word & kOwnerDied) != 0;
  s.lock.waiters = (word & kWaiters) != 0;
  s.lock.taken_over = died != 0;
  if (died > 1) {
    s.problems.push_back(absl::StrCat("lock owner_died flag: bad value ", died));
  }
  if (s.lock.taken_over && s.lock.owner_tid == 0) {
    s.problems.push_back("lock: taken-over flag set on a free lock");
  }
}

}  // namespace

uint32_t KnownSyncVersion() { return kNamedSyncVersion; }

const char* SyncTypeName(SyncSnapshot::Type type) {
  switch (type) {
    case SyncSnapshot::Type::kLock:
      return "lock";
    case SyncSnapshot::Type::kRLock:
      return "rlock";
    case SyncSnapshot::Type::kEvent:
      return "event";
    case SyncSnapshot::Type::kSemaphore:
      return "semaphore";
    case SyncSnapshot::Type::kCondition:
      return "condition";
  }
  return "unknown";
}

absl::StatusOr<SyncSnapshot> DescribeSyncState(uint32_t kind,
                                               uint32_t state_size,
                                               const void* state, size_t n) {
  SyncSnapshot s;
  size_t need = 0;
  switch (static_cast<SegmentKind>(kind)) {
    case SegmentKind::kLock:
      if (state_size == kLockSize) {
        s.type = SyncSnapshot::Type::kLock;
      } else if (state_size == kRLockSize) {
        s.type = SyncSnapshot::Type::kRLock;
      }
      break;
    case SegmentKind::kEvent:
      if (state_size == kEventSize) s.type = SyncSnapshot::Type::kEvent;
      break;
    case SegmentKind::kSemaphore:
      if (state_size == kSemaphoreSize) s.type = SyncSnapshot::Type::kSemaphore;
      break;
    case SegmentKind::kCondition:
      if (state_size == kNamedConditionSize) {
        s.type = SyncSnapshot::Type::kCondition;
      }
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "kind ", kind, " (", SegmentKindName(kind), ") is not a sync kind"));
  }
  switch (s.type) {
    case SyncSnapshot::Type::kLock:
      need = kLockSize;
      break;
    case SyncSnapshot::Type::kRLock:
      need = kRLockSize;
      break;
    case SyncSnapshot::Type::kEvent:
      need = kEventSize;
      break;
    case SyncSnapshot::Type::kSemaphore:
      need = kSemaphoreSize;
      break;
    case SyncSnapshot::Type::kCondition:
      need = kNamedConditionSize;
      break;
  }
  if (need != state_size) {
    return absl::InvalidArgumentError(
        absl::StrCat(SegmentKindName(kind), " with a state of ", state_size,
                     " bytes: not a layout this reader knows"));
  }
  const char* p = static_cast<const char*>(state);
  if (p == nullptr || n < need) {
    return absl::DataLossError(absl::StrCat(SegmentKindName(kind), ": ", n,
                                            " bytes of state, fewer than ",
                                            need));
  }

  switch (s.type) {
    case SyncSnapshot::Type::kLock:
      DescribeLock(p, 0, s);
      break;
    case SyncSnapshot::Type::kRLock:
      DescribeLock(p, 0, s);
      s.rlock_count = Read<uint32_t>(p, kRLockCountAt);
      if ((s.rlock_count == 0) != (s.lock.owner_tid == 0) &&
          !s.lock.owner_died) {
        // A count with no owner (or an owner with no count) is only a
        // snapshot taken mid-acquire or mid-release; reported, not judged.
        s.problems.push_back(absl::StrCat("rlock: count ", s.rlock_count,
                                          " with owner tid ",
                                          s.lock.owner_tid,
                                          " (mid-update or damaged)"));
      }
      break;
    case SyncSnapshot::Type::kEvent: {
      const uint32_t w = Read<uint32_t>(p, kEventWordAt);
      s.event_set = (w & kEventSet) != 0;
      s.event_waiters = (w & kEventWaiters) != 0;
      if ((w & ~(kEventSet | kEventWaiters)) != 0) {
        s.problems.push_back(absl::StrCat("event word: bad value ", w));
      }
      break;
    }
    case SyncSnapshot::Type::kSemaphore: {
      s.semaphore_value = Read<uint32_t>(p, kSemCountAt);
      s.semaphore_waiters =
          Read<uint32_t>(p, kSemWaitersAt) & kSemWaiterCountMask;
      s.semaphore_bound = Read<uint32_t>(p, kSemBoundAt);
      s.semaphore_bounded = s.semaphore_bound != ResidentSemaphore::kMaxValue;
      if (s.semaphore_bound > ResidentSemaphore::kMaxValue) {
        s.problems.push_back(
            absl::StrCat("semaphore bound: bad value ", s.semaphore_bound));
      }
      if (s.semaphore_value > s.semaphore_bound) {
        s.problems.push_back(absl::StrCat("semaphore value ",
                                          s.semaphore_value, " above its bound ",
                                          s.semaphore_bound));
      }
      break;
    }
    case SyncSnapshot::Type::kCondition: {
      s.condition_seq = Read<uint32_t>(p, kCondSeqAt);
      s.condition_sleepers = Read<uint32_t>(p, kCondSleepersAt);
      const uint64_t counts = Read<uint64_t>(p, kCondCountsAt);
      s.condition_waiting = static_cast<uint32_t>(counts);
      s.condition_signals = static_cast<uint32_t>(counts >> 32);
      DescribeLock(p, kNamedCondLockAt, s);
      s.rlock_count = Read<uint32_t>(p, kNamedCondLockAt + kRLockCountAt);
      break;
    }
  }
  return s;
}

}  // namespace mp::sync_internal
