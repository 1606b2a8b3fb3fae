// DescribeRing (mp/queue/internal/ring_snapshot.h) against the ring itself:
// each figure the snapshot reads from its restated offsets must be what
// RingView reports for the same ring, so a drift in Ring's layout fails here.

#include "mp/queue/internal/ring_snapshot.h"

#include <unistd.h>

#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "mp/core/liveness.h"
#include "mp/queue/internal/ring.h"
#include "tests/watchdog.h"

namespace mp::queue_internal {
namespace {

constexpr size_t kCapacity = 1024;

struct Buffer {
  Buffer() : size(Ring::BytesFor(kCapacity)) {
    p = static_cast<char*>(::operator new(size, std::align_val_t{64}));
    std::memset(p, 0, size);
  }
  ~Buffer() { ::operator delete(p, std::align_val_t{64}); }
  char* p;
  size_t size;
};

RingSnapshot Describe(const Buffer& b) {
  // A private copy, as mpctl reads it.
  std::string copy(b.p, RingFieldBytes());
  absl::StatusOr<RingSnapshot> s = DescribeRing(copy.data(), copy.size(), b.size);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : RingSnapshot{};
}

absl::Status Keep(void*, const char*, size_t) { return absl::OkStatus(); }
absl::Status Refuse(void*, const char*, size_t) {
  return absl::DataLossError("refused");
}

TEST(RingSnapshotTest, AgreesWithTheRing) {
  Buffer b;
  RingView v = RingView::Format(b.p, kCapacity, RingMode::kMpmc);
  RingSnapshot s = Describe(b);
  EXPECT_TRUE(s.problems.empty());
  EXPECT_EQ(s.version, Ring::kVersion);
  EXPECT_EQ(s.mode, static_cast<uint32_t>(RingMode::kMpmc));
  EXPECT_EQ(s.capacity, kCapacity);
  EXPECT_TRUE(s.capacity_valid && s.indices_valid && s.counts_valid);
  EXPECT_EQ(s.records_queued, 0u);

  const std::string msg(20, 'x');
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(v.Push(msg.data(), msg.size(), Deadline::Past()).ok());
  }
  ASSERT_TRUE(v.Pop(Keep, nullptr, Deadline::Past()).ok());
  EXPECT_FALSE(v.Pop(Refuse, nullptr, Deadline::Past()).ok());
  const uint32_t slot = v.ClaimTaskSlot();
  ASSERT_NE(slot, Ring::kNoSlot);
  ASSERT_TRUE(v.Pop(Keep, nullptr, Deadline::Past(), slot).ok());
  ASSERT_TRUE(v.TaskDone(slot).ok());
  v.Close();

  s = Describe(b);
  EXPECT_TRUE(s.problems.empty()) << s.problems[0];
  EXPECT_EQ(s.bytes_used, v.BytesUsedApprox());
  EXPECT_EQ(s.tail - s.head, v.BytesUsedApprox());
  EXPECT_GT(s.head, 0u);
  EXPECT_EQ(s.records_queued, v.RecordsApprox());
  EXPECT_EQ(s.records_queued, 2u);
  EXPECT_EQ(s.records_in, 5u);
  EXPECT_EQ(s.records_out, 2u);
  EXPECT_EQ(s.corrupt, v.corrupt_records());
  EXPECT_EQ(s.corrupt, 1u);
  EXPECT_EQ(s.lost, 0u);
  EXPECT_TRUE(s.closed);
  ASSERT_EQ(s.task_slots.size(), 1u);
  EXPECT_EQ(s.task_slots[0].index, slot);
  EXPECT_EQ(s.task_slots[0].owner.pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(s.task_slots[0].taken, 1u);
  EXPECT_EQ(s.task_slots[0].done, 1u);
  EXPECT_EQ(s.consumer_lock.holder_tid, 0u);
}

struct InSink {
  const Buffer* b;
  RingSnapshot seen;
};

TEST(RingSnapshotTest, SeesTheConsumerLockHolder) {
  Buffer b;
  RingView v = RingView::Format(b.p, kCapacity, RingMode::kMpmc);
  ASSERT_TRUE(v.Push("abc", 3, Deadline::Past()).ok());
  InSink ctx{&b, {}};
  auto sink = [](void* c, const char*, size_t) {
    auto* in = static_cast<InSink*>(c);
    in->seen = Describe(*in->b);
    return absl::OkStatus();
  };
  ASSERT_TRUE(v.Pop(sink, &ctx, Deadline::Past()).ok());
  EXPECT_EQ(ctx.seen.consumer_lock.holder_tid, liveness::CurrentTid());
  EXPECT_EQ(Describe(b).consumer_lock.holder_tid, 0u);
}

TEST(RingSnapshotTest, SeesASleepingConsumerAndTheSpscOwners) {
  Buffer b;
  RingView v = RingView::Format(b.p, kCapacity, RingMode::kSpsc);
  ASSERT_TRUE(v.ClaimSpscSide(true).ok());
  EXPECT_EQ(Describe(b).spsc_producer.pid, static_cast<uint32_t>(getpid()));
  EXPECT_EQ(Describe(b).spsc_consumer.pid, 0u);
  std::atomic<uint32_t> tid{0};
  std::thread consumer([&] {
    tid = liveness::CurrentTid();
    (void)v.Pop(Keep, nullptr, Deadline::Infinite());
  });
  while (tid.load() == 0) usleep(100);
  ASSERT_TRUE(mp_test::AwaitAsleep(static_cast<pid_t>(tid.load())));
  // Asleep in the kernel: the flag is up (raised before the sleep).
  EXPECT_TRUE(Describe(b).consumers_waiting);
  ASSERT_TRUE(v.Push("x", 1, Deadline::Past()).ok());
  consumer.join();
}

TEST(RingSnapshotTest, ReportsCorruptFields) {
  Buffer b;
  RingView::Format(b.p, kCapacity, RingMode::kMpmc);
  std::string copy(b.p, RingFieldBytes());
  // head (offset 128) after tail (64); closed (384) a non-flag value.
  const uint64_t head = 4096, tail = 8;
  std::memcpy(copy.data() + 128, &head, 8);
  std::memcpy(copy.data() + 64, &tail, 8);
  const uint32_t closed = 7;
  std::memcpy(copy.data() + 384, &closed, 4);
  absl::StatusOr<RingSnapshot> s = DescribeRing(copy.data(), copy.size(), b.size);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->indices_valid);
  EXPECT_EQ(s->bytes_used, 0u);
  EXPECT_EQ(s->problems.size(), 2u);
  // A capacity the segment cannot hold.
  s = DescribeRing(copy.data(), copy.size(), RingFieldBytes() + 64);
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(s->capacity_valid);
  // Too short, bad magic: nothing to describe.
  EXPECT_EQ(DescribeRing(copy.data(), 100, b.size).status().code(),
            absl::StatusCode::kDataLoss);
  copy[0] ^= 1;
  EXPECT_EQ(DescribeRing(copy.data(), copy.size(), b.size).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace mp::queue_internal
