// Queue, JoinableQueue, SimpleQueue between processes: every message checked.
#include "mp/queue/queue.h"

#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/fence_testing.h"
#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "tests/queue/test_util.h"
#include "tests/watchdog.h"

namespace {

using mp::QueueMode;

void ExpectExitedOk(mp::Process& p) {
  ASSERT_TRUE(p.Join().ok());
  EXPECT_EQ(p.exitcode(), 0);
}

class QueueModeTest : public ::testing::TestWithParam<QueueMode> {};

TEST_P(QueueModeTest, MillionIntsBetweenProcessesInOrder) {
  constexpr uint64_t kCount = 1'000'000;
  mp::Queue<uint64_t> q(mp::QueueOptions{.capacity_bytes = 64 * 1024,
                                         .mode = GetParam()});
  mp::Process producer([q]() mutable {
    for (uint64_t i = 0; i < kCount; ++i) MP_CHECK_OK(q.Put(i * 7 + 1));
  });
  ASSERT_TRUE(producer.Start().ok());
  for (uint64_t i = 0; i < kCount; ++i) {
    absl::StatusOr<uint64_t> v = q.Get();
    ASSERT_TRUE(v.ok()) << v.status();
    ASSERT_EQ(*v, i * 7 + 1);
  }
  ExpectExitedOk(producer);
  EXPECT_TRUE(q.empty());
}

TEST_P(QueueModeTest, VariableSizesWithWrapAroundAtEveryOffset) {
  // Capacity 4096: sizes cycle so the tail visits every 8-byte offset, and
  // sizes from 1 byte to the largest message are sent.
  mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 4096,
                                            .mode = GetParam()});
  const size_t max_payload = q.max_message_bytes() - 8;  // codec's prefix
  std::vector<size_t> sizes;
  for (size_t s = 0; s <= 600; ++s) sizes.push_back(mp_test::kCheckedHeader + s);
  for (size_t s = max_payload - 64; s <= max_payload; ++s) sizes.push_back(s);
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) sizes.push_back(20 + rng() % 2000);
  mp::Process producer([q, sizes]() mutable {
    for (size_t i = 0; i < sizes.size(); ++i) {
      MP_CHECK_OK(q.Put(mp_test::MakeMessage(1, i, sizes[i])));
    }
  });
  ASSERT_TRUE(producer.Start().ok());
  for (size_t i = 0; i < sizes.size(); ++i) {
    absl::StatusOr<std::string> m = q.Get();
    ASSERT_TRUE(m.ok()) << m.status();
    uint32_t prod;
    uint64_t seq;
    ASSERT_TRUE(mp_test::CheckMessage(*m, &prod, &seq)) << i;
    ASSERT_EQ(seq, i);
    ASSERT_EQ(m->size(), sizes[i]);
  }
  ExpectExitedOk(producer);
}

INSTANTIATE_TEST_SUITE_P(Modes, QueueModeTest,
                         ::testing::Values(QueueMode::kSpsc, QueueMode::kMpmc),
                         [](const auto& info) {
                           return info.param == QueueMode::kSpsc ? "Spsc"
                                                                : "Mpmc";
                         });

TEST(QueueTest, MpmcBetweenProcessesEveryMessageExactlyOnce) {
  constexpr int kProducers = 3;
  constexpr int kConsumers = 3;
  constexpr uint64_t kPerProducer = 40'000;
  mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 16 * 1024});
  // Each consumer records what it saw in a shared bitmap of counters.
  const size_t total = kProducers * kPerProducer;
  auto* seen = static_cast<std::atomic<uint8_t>*>(
      mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
           -1, 0));
  ASSERT_NE(seen, MAP_FAILED);
  std::vector<std::unique_ptr<mp::Process>> procs;
  for (int p = 0; p < kProducers; ++p) {
    procs.push_back(std::make_unique<mp::Process>([q, p]() mutable {
      for (uint64_t i = 0; i < kPerProducer; ++i) {
        MP_CHECK_OK(q.Put(mp_test::MakeMessage(p, i, 20 + (i * 13) % 300)));
      }
    }));
  }
  for (int c = 0; c < kConsumers; ++c) {
    procs.push_back(std::make_unique<mp::Process>([q, seen]() mutable {
      for (;;) {
        absl::StatusOr<std::string> m = q.Get();
        if (mp::IsClosed(m.status())) return;
        CHILD_CHECK(m.ok());
        uint32_t prod;
        uint64_t seq;
        CHILD_CHECK(mp_test::CheckMessage(*m, &prod, &seq));
        CHILD_CHECK(prod < kProducers && seq < kPerProducer);
        seen[prod * kPerProducer + seq].fetch_add(1);
      }
    }));
  }
  for (auto& p : procs) ASSERT_TRUE(p->Start().ok());
  for (int p = 0; p < kProducers; ++p) ExpectExitedOk(*procs[p]);
  q.Close();
  for (int c = 0; c < kConsumers; ++c) ExpectExitedOk(*procs[kProducers + c]);
  for (size_t i = 0; i < total; ++i) ASSERT_EQ(seen[i].load(), 1) << i;
  munmap(seen, total);
  EXPECT_EQ(q.lost_records(), 0u);
}

TEST(QueueTest, NonBlockingAndTimeoutsReportEmptyAndFull) {
  mp::Queue<uint64_t> q(mp::QueueOptions{.capacity_bytes = 64});  // 64 bytes: four 16-byte records
  EXPECT_TRUE(mp::IsEmpty(q.Get(false).status()));
  EXPECT_TRUE(mp::IsEmpty(q.Get(true, 0.01).status()));
  int puts = 0;
  while (q.Put(1, false).ok()) ++puts;
  EXPECT_EQ(puts, 4);
  EXPECT_TRUE(q.full());
  EXPECT_TRUE(mp::IsFull(q.Put(1, false)));
  EXPECT_TRUE(mp::IsFull(q.Put(1, true, 0.01)));
  EXPECT_EQ(q.qsize(), 4u);
  EXPECT_TRUE(q.Get().ok());
  EXPECT_TRUE(q.Put(2, false).ok());
}

TEST(QueueTest, BlockedGetIsWokenByAPutFromAnotherProcess) {
  mp::Queue<int> q;
  mp::Queue<int> ready;
  mp::Process child([q, ready]() mutable {
    MP_CHECK_OK(ready.Put(1));
    absl::StatusOr<int> v = q.Get();  // sleeps on the futex
    CHILD_CHECK(v.ok() && *v == 42);
  });
  ASSERT_TRUE(child.Start().ok());
  ASSERT_TRUE(ready.Get().ok());
  EXPECT_TRUE(mp_test::AwaitAsleep(child.pid()));  // in q.Get()
  ASSERT_TRUE(q.Put(42).ok());
  ExpectExitedOk(child);
}

// Many sleep/wake episodes: the producer pauses past the consumer's spin
// budget before most puts, so the consumer raises its flag and sleeps each
// time; a lost wake-up hangs the test. Run with the asymmetric fence
// (membarrier) and with the consumer forced onto the fallback (a real fence
// and 1 ms sleep slices), as on a kernel without membarrier.
class SleepWakeTest : public ::testing::TestWithParam<bool> {};

TEST_P(SleepWakeTest, EveryEpisodeWakesTheSleeper) {
  const bool membarrier_in_consumer = GetParam();
  constexpr int kEpisodes = 300;
  mp::Queue<int> there(mp::QueueOptions{.capacity_bytes = 4096});
  mp::Queue<int> back(mp::QueueOptions{.capacity_bytes = 4096});
  mp::Process consumer([there, back, membarrier_in_consumer]() mutable {
    if (!membarrier_in_consumer) {
      mp::fence_testing::UseFallbackFence();
    }
    for (int i = 0; i < kEpisodes; ++i) {
      absl::StatusOr<int> v = there.Get();
      CHILD_CHECK(v.ok() && *v == i);
      if (i % 3 == 0) MP_CHECK_OK(back.Put(i));  // wakes the parent too
    }
  });
  ASSERT_TRUE(consumer.Start().ok());
  std::mt19937 rng(7);
  for (int i = 0; i < kEpisodes; ++i) {
    usleep(std::uniform_int_distribution<int>(0, 300)(rng));
    ASSERT_TRUE(there.Put(i).ok());
    if (i % 3 == 0) {
      EXPECT_EQ(*back.Get(), i);
    }
  }
  ExpectExitedOk(consumer);
}

INSTANTIATE_TEST_SUITE_P(Fence, SleepWakeTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "Membarrier" : "FallbackFence";
                         });

// An idle blocked consumer sleeps: over half a second of waiting it burns
// only its brief spin, never a core (a busy-waiting one would use ~500 ms).
TEST(QueueTest, IdleBlockedConsumerUsesNoCpu) {
  mp::Queue<int> q;
  mp::Queue<int> ready;
  mp::Process consumer([q, ready]() mutable {
    auto cpu_now = [] {
      timespec ts;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;  // ms
    };
    MP_CHECK_OK(ready.Put(1));
    const double before = cpu_now();
    absl::StatusOr<int> v = q.Get();
    const double used = cpu_now() - before;
    CHILD_CHECK(v.ok() && *v == 7);
    if (used > 50) {
      std::fprintf(stderr, "blocked Get used %.1f ms of CPU\n", used);
      _exit(1);
    }
  });
  ASSERT_TRUE(consumer.Start().ok());
  ASSERT_TRUE(ready.Get().ok());
  EXPECT_TRUE(mp_test::AwaitAsleep(consumer.pid()));
  usleep(500000);  // half a second asleep: what it costs is measured there
  ASSERT_TRUE(q.Put(7).ok());
  ExpectExitedOk(consumer);
}

TEST(QueueTest, BlockedPutIsWokenByAGet) {
  mp::Queue<uint64_t> q(mp::QueueOptions{.capacity_bytes = 64});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.Put(i).ok());
  mp::Process child([q]() mutable { MP_CHECK_OK(q.Put(99)); });
  ASSERT_TRUE(child.Start().ok());
  EXPECT_TRUE(mp_test::AwaitAsleep(child.pid()));  // in the full queue's Put
  for (int i = 0; i < 4; ++i) EXPECT_EQ(*q.Get(), uint64_t(i));
  EXPECT_EQ(*q.Get(), 99u);
  ExpectExitedOk(child);
}

TEST(QueueTest, CloseDrainsThenReportsEndOfStream) {
  mp::Queue<int> q;
  ASSERT_TRUE(q.Put(1).ok());
  ASSERT_TRUE(q.Put(2).ok());
  q.Close();
  q.Close();  // idempotent
  EXPECT_EQ(q.Put(3).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(*q.Get(), 1);
  EXPECT_EQ(*q.Get(), 2);
  EXPECT_EQ(q.Get().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(q.Get(false).status().code(), absl::StatusCode::kOutOfRange);
  q.JoinThread();
}

TEST(QueueTest, CloseWakesBlockedConsumersInOtherProcesses) {
  mp::Queue<int> q;
  std::vector<std::unique_ptr<mp::Process>> kids;
  for (int i = 0; i < 3; ++i) {
    kids.push_back(std::make_unique<mp::Process>([q]() mutable {
      CHILD_CHECK(q.Get().status().code() == absl::StatusCode::kOutOfRange);
    }));
    ASSERT_TRUE(kids.back()->Start().ok());
  }
  for (auto& k : kids) EXPECT_TRUE(mp_test::AwaitAsleep(k->pid()));  // Get
  q.Close();
  for (auto& k : kids) ExpectExitedOk(*k);
}

TEST(QueueTest, CloseWakesABlockedProducer) {
  mp::Queue<uint64_t> q(mp::QueueOptions{.capacity_bytes = 64});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(q.Put(i).ok());
  mp::Process child([q]() mutable {
    CHILD_CHECK(q.Put(5).code() == absl::StatusCode::kFailedPrecondition);
  });
  ASSERT_TRUE(child.Start().ok());
  EXPECT_TRUE(mp_test::AwaitAsleep(child.pid()));  // in the full queue's Put
  q.Close();
  ExpectExitedOk(child);
}

// A message larger than the ring's largest record goes through a side
// segment (queue.h, "Messages of any size"); the largest that fits goes
// through the ring, and the queue stays usable.
TEST(QueueTest, MessageLargerThanTheRingGoesAsideAndQueueStaysUsable) {
  mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 4096});
  EXPECT_EQ(q.side_threshold(), q.max_message_bytes());
  const std::string over(5000, 'x');
  const std::string just_over(q.max_message_bytes() - 7, 'x');  // + 8 prefix
  ASSERT_TRUE(q.Put(over).ok());
  ASSERT_TRUE(q.Put(just_over).ok());
  EXPECT_EQ(*q.Get(), over);
  EXPECT_EQ(*q.Get(), just_over);
  std::string biggest(q.max_message_bytes() - 8, 'y');
  ASSERT_TRUE(q.Put(biggest).ok());
  EXPECT_EQ(*q.Get(), biggest);
  ASSERT_TRUE(q.Put("small").ok());
  EXPECT_EQ(*q.Get(), "small");
  EXPECT_EQ(q.lost_records() + q.corrupt_records(), 0u);
}

// The largest message fits a queue holding no messages wherever the ring's
// lap stands, with no consumer running: the producer skips the pads at head
// itself. (Found by fuzz/ring_fuzz: a pad left at head made such a Put say
// Full, or block for ever, on an empty queue.)
TEST(QueueTest, LargestMessageFitsAnEmptyQueueAtEveryOffset) {
  mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 4096});
  const std::string biggest(q.max_message_bytes() - 8, 'y');
  for (size_t small = 0; small < 1024; small += 8) {
    ASSERT_TRUE(q.Put(std::string(small, 's'), false).ok());
    ASSERT_TRUE(q.Get(false).ok());
    absl::Status s = q.Put(biggest, false);
    ASSERT_TRUE(s.ok()) << small << ": " << s;
    absl::StatusOr<std::string> got = q.Get(false);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, biggest);
  }
  // A pad a failed Put left behind: a full queue, then drained.
  ASSERT_TRUE(q.Put(std::string(2000, 'a'), false).ok());
  EXPECT_TRUE(mp::IsFull(q.Put(biggest, false)));
  ASSERT_TRUE(q.Get(false).ok());
  EXPECT_TRUE(q.Put(biggest, false).ok());
  EXPECT_EQ(*q.Get(false), biggest);
}

TEST(JoinableQueueTest, JoinWaitsForEveryTaskDone) {
  mp::JoinableQueue<int> q;
  mp::Queue<int> done;
  constexpr int kItems = 200;
  std::vector<std::unique_ptr<mp::Process>> workers;
  for (int w = 0; w < 3; ++w) {
    workers.push_back(std::make_unique<mp::Process>([q, done]() mutable {
      for (;;) {
        absl::StatusOr<int> v = q.Get();
        if (!v.ok()) return;
        MP_CHECK_OK(done.Put(*v));
        MP_CHECK_OK(q.TaskDone());
      }
    }));
    ASSERT_TRUE(workers.back()->Start().ok());
  }
  for (int i = 0; i < kItems; ++i) ASSERT_TRUE(q.Put(i).ok());
  ASSERT_TRUE(q.Join().ok());
  // Every item was reported done, so every result is already in `done`.
  long sum = 0;
  for (int i = 0; i < kItems; ++i) {
    absl::StatusOr<int> v = done.Get(false);
    ASSERT_TRUE(v.ok()) << i;
    sum += *v;
  }
  EXPECT_EQ(sum, kItems * (kItems - 1) / 2);
  q.Close();
  for (auto& w : workers) ExpectExitedOk(*w);
}

TEST(JoinableQueueTest, TooManyTaskDoneIsAnError) {
  mp::JoinableQueue<int> q;
  EXPECT_EQ(q.TaskDone().code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(q.Put(1).ok());
  ASSERT_TRUE(q.Get().ok());
  EXPECT_FALSE(q.Join(mp::Deadline::After(std::chrono::milliseconds(10))).ok());
  EXPECT_TRUE(q.TaskDone().ok());
  EXPECT_TRUE(q.Join().ok());
  EXPECT_EQ(q.TaskDone().code(), absl::StatusCode::kInvalidArgument);
}

// The task count lives in the ring: a Put through a Queue<T>& that refers to
// a JoinableQueue counts as any other, and a Put that fails (full) counts
// nothing.
TEST(JoinableQueueTest, CountsPutsThroughABaseReference) {
  mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 64});
  mp::Queue<int64_t>& base = q;
  int items = 0;
  while (base.PutNowait(items).ok()) ++items;
  ASSERT_GT(items, 0);
  EXPECT_TRUE(mp::IsFull(q.PutNowait(-1)));
  EXPECT_EQ(q.unfinished_tasks(), static_cast<uint64_t>(items));
  EXPECT_EQ(q.qsize(), static_cast<size_t>(items));
  for (int i = 0; i < items; ++i) {
    ASSERT_TRUE(q.Get().ok());
    ASSERT_TRUE(q.TaskDone().ok());
  }
  EXPECT_TRUE(q.Join(mp::Deadline::After(std::chrono::seconds(5))).ok());
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.abandoned_tasks(), 0u);
  EXPECT_EQ(q.TaskDone().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SimpleQueueTest, PutGetEmptyClose) {
  mp::SimpleQueue<std::string> q;
  EXPECT_TRUE(q.empty());
  mp::Process child([q]() mutable {
    MP_CHECK_OK(q.Put("hello"));
    MP_CHECK_OK(q.Put("world"));
    q.Close();
  });
  ASSERT_TRUE(child.Start().ok());
  EXPECT_EQ(*q.Get(), "hello");
  EXPECT_EQ(*q.Get(), "world");
  EXPECT_EQ(q.Get().status().code(), absl::StatusCode::kOutOfRange);
  ExpectExitedOk(child);
}

// A value type that counts, per value, the live objects holding it (so a
// second destruction of one object, or a leaked one, shows in its count),
// and how many times the codec encoded and decoded it.
constexpr int kCountedValues = 100;
struct Counted {
  static inline int live[kCountedValues] = {};
  static inline int encoded[kCountedValues] = {};
  static inline int decoded[kCountedValues] = {};
  static inline int negative = 0;  // destructions of a value with no live one
  static void Reset() {
    for (int i = 0; i < kCountedValues; ++i) live[i] = encoded[i] = decoded[i] = 0;
    negative = 0;
  }
  static int LiveTotal() {
    int n = 0;
    for (int l : live) n += l;
    return n;
  }

  int v = 0;
  Counted() { ++live[0]; }
  explicit Counted(int x) : v(x) { ++live[v]; }
  Counted(const Counted& o) : v(o.v) { ++live[v]; }
  Counted(Counted&& o) noexcept : v(o.v) { ++live[v]; }
  Counted& operator=(const Counted& o) {
    --live[v];
    v = o.v;
    ++live[v];
    return *this;
  }
  Counted& operator=(Counted&& o) noexcept { return *this = o; }
  ~Counted() {
    if (--live[v] < 0) ++negative;
  }
};

}  // namespace

template <>
struct mp::Codec<Counted> {
  static void Encode(const Counted& c, mp::ByteWriter& out) {
    ++Counted::encoded[c.v];
    out.Put(c.v);
  }
  static absl::Status Decode(mp::ByteReader& in, Counted* c) {
    int v = 0;
    if (absl::Status s = in.Get(&v); !s.ok()) return s;
    if (v < 0 || v >= kCountedValues) {
      return absl::DataLossError("Counted out of range");
    }
    ++Counted::decoded[v];
    *c = Counted(v);
    return absl::OkStatus();
  }
};

namespace {

// A queue holds values as bytes, never as objects: every object made by Put
// or Get is the caller's and is destroyed exactly once, every value put is
// encoded once and, when it is got, decoded once, and values still in the
// queue when its last handle goes are bytes (nothing to destroy).
TEST(QueueTest, ValuesAreDestroyedExactlyOnce) {
  Counted::Reset();
  {
    mp::Queue<Counted> q;
    for (int i = 0; i < kCountedValues; ++i) {
      ASSERT_TRUE(q.Put(Counted(i)).ok());
    }
    // The queue holds no object of ours: only bytes.
    EXPECT_EQ(Counted::LiveTotal(), 0);
    std::vector<Counted> got;
    for (int i = 0; i < kCountedValues / 2; ++i) {
      absl::StatusOr<Counted> c = q.Get();
      ASSERT_TRUE(c.ok()) << c.status();
      EXPECT_EQ(c->v, i);
      got.push_back(*std::move(c));
    }
    // Exactly the objects we hold are alive, one per value got.
    for (int i = 0; i < kCountedValues; ++i) {
      EXPECT_EQ(Counted::live[i], i < kCountedValues / 2 ? 1 : 0) << i;
    }
    got.clear();
    EXPECT_EQ(Counted::LiveTotal(), 0);
  }
  EXPECT_EQ(Counted::negative, 0) << "an object was destroyed twice";
  for (int i = 0; i < kCountedValues; ++i) {
    EXPECT_EQ(Counted::live[i], 0) << i;
    EXPECT_EQ(Counted::encoded[i], 1) << i;
    EXPECT_EQ(Counted::decoded[i], i < kCountedValues / 2 ? 1 : 0) << i;
  }
}

TEST(QueueTest, CopiesShareTheQueue) {
  mp::Queue<int> a;
  mp::Queue<int> b = a;
  ASSERT_TRUE(a.Put(5).ok());
  EXPECT_EQ(*b.Get(), 5);
}

}  // namespace
