// Poison records (issue 16, hole 7): a record a consumer cannot take (the
// wrong size for a trivially copyable T, a codec that fails or throws) is
// handed out once and dropped, never left at the head of the queue; a throw
// on the consumer side never leaves the consumer lock held.
//
// Every Get here has a deadline: a record stuck at head, or a lock left held
// by a live thread, shows as a DeadlineExceeded (or a repeated DataLoss)
// instead of a hang.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"
#include "tests/queue/element_type.h"

// A message whose codec throws on a chosen value, as a user's codec might.
struct Touchy {
  int32_t value = 0;
};

// What Decode does with a Touchy of value kThrowRuntime / kThrowBadAlloc /
// kFail: throw std::runtime_error, throw std::bad_alloc (only while
// `bad_alloc_armed`), return an error.
constexpr int32_t kThrowRuntime = -1;
constexpr int32_t kThrowBadAlloc = -2;
constexpr int32_t kFail = -3;
std::atomic<bool> bad_alloc_armed{false};

template <>
struct mp::Codec<Touchy> {
  static void Encode(const Touchy& v, ByteWriter& out) {
    out.Write(&v.value, sizeof(v.value));
  }
  static absl::Status Decode(ByteReader& in, Touchy* v) {
    if (absl::Status s = in.Read(&v->value, sizeof(v->value)); !s.ok()) {
      return s;
    }
    if (v->value == kThrowRuntime) throw std::runtime_error("touchy");
    if (v->value == kThrowBadAlloc && bad_alloc_armed.exchange(false)) {
      throw std::bad_alloc();
    }
    if (v->value == kFail) return absl::DataLossError("touchy: refused");
    return absl::OkStatus();
  }
};
static_assert(!mp::CodecCopiesBytes<Touchy>);

namespace {

using std::chrono::seconds;

mp::Deadline Soon() { return mp::Deadline::After(seconds(2)); }

std::string UniqueName(const char* what) {
  return "/mp_poison_test_" + std::string(what) + "_" +
         std::to_string(getpid());
}

using mp_test::RecordElementType;

TEST(QueuePoisonTest, WrongSizeRecordIsHandedOutOnceThenDropped) {
  const std::string name = UniqueName("size");
  auto wide = mp::Queue<int64_t>::Create(name, {.capacity_bytes = 4096});
  ASSERT_TRUE(wide.ok()) << wide.status();
  RecordElementType<int32_t>(name);
  auto narrow = mp::Queue<int32_t>::Open(name);
  ASSERT_TRUE(narrow.ok()) << narrow.status();
  ASSERT_TRUE(mp::SharedMemory::Unlink(name).ok());

  ASSERT_TRUE(wide->Put(int64_t{1} << 40).ok());
  ASSERT_TRUE(narrow->Put(5).ok());
  ASSERT_TRUE(wide->Put(int64_t{7}).ok());
  ASSERT_TRUE(narrow->Put(6).ok());
  EXPECT_EQ(narrow->qsize(), 4u);

  // Each 8-byte record reaches one Get as DataLoss; the 4-byte ones follow.
  EXPECT_EQ(narrow->Get(Soon()).status().code(), absl::StatusCode::kDataLoss);
  absl::StatusOr<int32_t> v = narrow->Get(Soon());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 5);
  EXPECT_EQ(narrow->Get(Soon()).status().code(), absl::StatusCode::kDataLoss);
  v = narrow->Get(Soon());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 6);

  EXPECT_EQ(narrow->qsize(), 0u);
  EXPECT_EQ(narrow->corrupt_records(), 2u);
  EXPECT_EQ(narrow->lost_records(), 0u);
  EXPECT_TRUE(mp::IsEmpty(narrow->Get(mp::Deadline::Past()).status()));
}

TEST(QueuePoisonTest, UndecodableRecordIsDroppedAndJoinStillReturns) {
  mp::JoinableQueue<Touchy> q(mp::QueueOptions{.capacity_bytes = 4096});
  ASSERT_TRUE(q.Put(Touchy{kFail}).ok());
  ASSERT_TRUE(q.Put(Touchy{3}).ok());
  EXPECT_EQ(q.Get(Soon()).status().code(), absl::StatusCode::kDataLoss);
  absl::StatusOr<Touchy> v = q.Get(Soon());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, 3);
  ASSERT_TRUE(q.TaskDone().ok());
  EXPECT_EQ(q.corrupt_records(), 1u);
  EXPECT_EQ(q.qsize(), 0u);
  // The poison item is no task anyone can finish: it does not hold Join.
  EXPECT_TRUE(q.Join(Soon()).ok());
  EXPECT_EQ(q.TaskDone().code(), absl::StatusCode::kInvalidArgument);
}

// Two consumers share a queue whose first record makes the codec throw.
// The one that gets it sees the exception; both keep consuming, nobody
// waits on a lock the thrower still holds.
TEST(QueuePoisonTest, ThrowingCodecStrandsNoConsumer) {
  constexpr int kGood = 200;
  mp::Queue<Touchy> q(mp::QueueOptions{.capacity_bytes = 1 << 14});
  ASSERT_TRUE(q.Put(Touchy{kThrowRuntime}).ok());
  for (int i = 0; i < kGood; ++i) ASSERT_TRUE(q.Put(Touchy{i}).ok());
  q.Close();

  std::atomic<int> good{0}, thrown{0}, timed_out{0}, other{0};
  auto consume = [&] {
    for (;;) {
      try {
        absl::StatusOr<Touchy> v = q.Get(Soon());
        if (v.ok()) {
          good.fetch_add(1);
        } else if (mp::IsClosed(v.status())) {
          return;
        } else if (mp::IsEmpty(v.status())) {
          timed_out.fetch_add(1);
          return;
        } else {
          other.fetch_add(1);
        }
      } catch (const std::runtime_error&) {
        thrown.fetch_add(1);
      }
    }
  };
  std::thread a(consume), b(consume);
  a.join();
  b.join();
  EXPECT_EQ(timed_out.load(), 0) << "a consumer waited on a stranded lock";
  EXPECT_EQ(thrown.load(), 1);
  EXPECT_EQ(good.load(), kGood);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(q.corrupt_records(), 1u);
  EXPECT_EQ(q.qsize(), 0u);
}

// bad_alloc while decoding is not the record's fault: the record stays at
// head for the next Get, and the lock is free.
TEST(QueuePoisonTest, BadAllocLeavesTheRecordForTheNextGet) {
  mp::Queue<Touchy> q(mp::QueueOptions{.capacity_bytes = 4096});
  ASSERT_TRUE(q.Put(Touchy{kThrowBadAlloc}).ok());
  bad_alloc_armed = true;
  EXPECT_THROW((void)q.Get(Soon()), std::bad_alloc);
  absl::StatusOr<Touchy> v = q.Get(Soon());
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->value, kThrowBadAlloc);
  EXPECT_EQ(q.corrupt_records(), 0u);
  EXPECT_EQ(q.qsize(), 0u);
}

// The ring itself: a sink that throws (as a copy that cannot allocate
// would) leaves the record at head and the consumer lock free, for this
// thread and for every other consumer.
TEST(QueuePoisonTest, ThrowingSinkReleasesTheConsumerLock) {
  using mp::queue_internal::Ring;
  using mp::queue_internal::RingMode;
  constexpr size_t kCapacity = 4096;
  alignas(64) static char bytes[sizeof(Ring) + kCapacity];
  std::memset(bytes, 0, sizeof(bytes));
  mp::queue_internal::RingView view =
      mp::queue_internal::RingView::Format(bytes, kCapacity, RingMode::kMpmc);
  mp::queue_internal::RingView* ring = &view;
  const int64_t value = 9;
  ASSERT_TRUE(ring->Push(&value, sizeof(value), Soon()).ok());
  auto throwing = [](void*, const char*, size_t) -> absl::Status {
    throw std::runtime_error("sink");
  };
  EXPECT_THROW((void)ring->Pop(throwing, nullptr, Soon()), std::runtime_error);
  int64_t got = 0;
  auto copy = [](void* ctx, const char* b, size_t n) -> absl::Status {
    std::memcpy(ctx, b, n);
    return absl::OkStatus();
  };
  absl::Status other;
  std::thread t([&] { other = ring->Pop(copy, &got, Soon()); });
  t.join();
  ASSERT_TRUE(other.ok()) << other << " (the lock was left held)";
  EXPECT_EQ(got, 9);
  EXPECT_EQ(ring->RecordsApprox(), 0u);
  EXPECT_EQ(ring->corrupt_records(), 0u);
}

}  // namespace
