// DescribeSyncState (mp/sync/internal/snapshot.h) against the objects' own
// accessors: the restated offsets must read what the objects hold.

#include "mp/sync/internal/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "mp/core/liveness.h"
#include "mp/core/segment_header.h"
#include "mp/sync/condition.h"
#include "mp/sync/event.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"

namespace mp::sync_internal {
namespace {

template <class T>
SyncSnapshot Describe(SegmentKind kind, const T& object) {
  std::string copy(reinterpret_cast<const char*>(&object), sizeof(T));
  absl::StatusOr<SyncSnapshot> s = DescribeSyncState(
      static_cast<uint32_t>(kind), sizeof(T), copy.data(), copy.size());
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : SyncSnapshot{};
}

TEST(SyncSnapshotTest, Lock) {
  ResidentLock lock;
  SyncSnapshot s = Describe(SegmentKind::kLock, lock);
  EXPECT_EQ(s.type, SyncSnapshot::Type::kLock);
  EXPECT_EQ(s.lock.owner_tid, 0u);
  ASSERT_EQ(lock.Acquire(), LockResult::kAcquired);
  s = Describe(SegmentKind::kLock, lock);
  EXPECT_EQ(s.lock.owner_tid, liveness::CurrentTid());
  EXPECT_FALSE(s.lock.owner_died);
  EXPECT_FALSE(s.lock.taken_over);
  EXPECT_TRUE(s.problems.empty());
  ASSERT_TRUE(lock.Release().ok());
}

TEST(SyncSnapshotTest, RLock) {
  ResidentRLock lock;
  ASSERT_EQ(lock.Acquire(), LockResult::kAcquired);
  ASSERT_EQ(lock.Acquire(), LockResult::kAcquired);
  SyncSnapshot s = Describe(SegmentKind::kLock, lock);
  EXPECT_EQ(s.type, SyncSnapshot::Type::kRLock);
  EXPECT_EQ(s.lock.owner_tid, liveness::CurrentTid());
  EXPECT_EQ(s.rlock_count, lock.count());
  EXPECT_EQ(s.rlock_count, 2u);
  ASSERT_TRUE(lock.Release().ok());
  ASSERT_TRUE(lock.Release().ok());
}

TEST(SyncSnapshotTest, EventAndSemaphore) {
  ResidentEvent event;
  EXPECT_FALSE(Describe(SegmentKind::kEvent, event).event_set);
  event.Set();
  EXPECT_TRUE(Describe(SegmentKind::kEvent, event).event_set);

  ResidentSemaphore sem(3, ResidentSemaphore::kMaxValue);
  ASSERT_TRUE(sem.Acquire());
  SyncSnapshot s = Describe(SegmentKind::kSemaphore, sem);
  EXPECT_EQ(s.semaphore_value, sem.GetValue());
  EXPECT_EQ(s.semaphore_value, 2u);
  EXPECT_FALSE(s.semaphore_bounded);
  ResidentSemaphore bounded(1, 4);
  s = Describe(SegmentKind::kSemaphore, bounded);
  EXPECT_TRUE(s.semaphore_bounded);
  EXPECT_EQ(s.semaphore_bound, 4u);
}

TEST(SyncSnapshotTest, NamedCondition) {
  const std::string name = "mp-snapshot-test-cond-" + std::to_string(getpid());
  absl::StatusOr<Condition> c = Condition::Create(name);
  ASSERT_TRUE(c.ok()) << c.status();
  c->lock();
  // The segment's bytes after its header, as mpctl reads them.
  std::string copy(64, '\0');
  const int fd = open(("/dev/shm/" + name).c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pread(fd, copy.data(), 64, SegmentHeader::kSize), 64);
  close(fd);
  ASSERT_TRUE(Condition::Unlink(name).ok());
  absl::StatusOr<SyncSnapshot> s = DescribeSyncState(
      static_cast<uint32_t>(SegmentKind::kCondition), 64, copy.data(), 64);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->lock.owner_tid, liveness::CurrentTid());
  EXPECT_EQ(s->rlock_count, 1u);
  c->unlock();
}

TEST(SyncSnapshotTest, RefusesWhatItCannotRead) {
  ResidentLock lock;
  std::string copy(reinterpret_cast<const char*>(&lock), sizeof(lock));
  EXPECT_EQ(DescribeSyncState(static_cast<uint32_t>(SegmentKind::kQueue), 40,
                              copy.data(), copy.size())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DescribeSyncState(static_cast<uint32_t>(SegmentKind::kLock), 41,
                              copy.data(), copy.size())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DescribeSyncState(static_cast<uint32_t>(SegmentKind::kLock), 40,
                              copy.data(), 39)
                .status()
                .code(),
            absl::StatusCode::kDataLoss);
  const uint32_t bad = 9;
  ResidentEvent event;
  std::string ev(reinterpret_cast<const char*>(&event), sizeof(event));
  std::memcpy(ev.data(), &bad, 4);
  absl::StatusOr<SyncSnapshot> s = DescribeSyncState(
      static_cast<uint32_t>(SegmentKind::kEvent), 4, ev.data(), ev.size());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->problems.size(), 1u);
}

}  // namespace
}  // namespace mp::sync_internal
