// The ring between threads of one process (run under ThreadSanitizer).
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mp/queue/queue.h"
#include "tests/queue/test_util.h"

namespace {

using mp::QueueMode;

TEST(QueueThreadTest, SpscIntsInOrder) {
  constexpr uint64_t kCount = 200'000;
  mp::Queue<uint64_t> q({.capacity_bytes = 4096, .mode = QueueMode::kSpsc});
  std::thread producer([&] {
    for (uint64_t i = 0; i < kCount; ++i) ASSERT_TRUE(q.Put(i).ok());
  });
  for (uint64_t i = 0; i < kCount; ++i) {
    absl::StatusOr<uint64_t> v = q.Get();
    ASSERT_TRUE(v.ok());
    ASSERT_EQ(*v, i);
  }
  producer.join();
}

TEST(QueueThreadTest, SpscVariableSizes) {
  mp::Queue<std::string> q({.capacity_bytes = 8192, .mode = QueueMode::kSpsc});
  constexpr uint64_t kCount = 20'000;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kCount; ++i) {
      ASSERT_TRUE(q.Put(mp_test::MakeMessage(0, i, 20 + (i * 37) % 3000)).ok());
    }
  });
  for (uint64_t i = 0; i < kCount; ++i) {
    absl::StatusOr<std::string> m = q.Get();
    ASSERT_TRUE(m.ok());
    uint32_t p;
    uint64_t seq;
    ASSERT_TRUE(mp_test::CheckMessage(*m, &p, &seq));
    ASSERT_EQ(seq, i);
  }
  producer.join();
}

TEST(QueueThreadTest, MpmcEveryMessageExactlyOnce) {
  constexpr int kProducers = 3, kConsumers = 3;
  constexpr uint64_t kPer = 20'000;
  mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 16 * 1024});
  std::vector<std::atomic<int>> seen(kProducers * kPer);
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (uint64_t i = 0; i < kPer; ++i) {
        ASSERT_TRUE(q.Put(mp_test::MakeMessage(p, i, 20 + i % 200)).ok());
      }
    });
  }
  std::vector<std::thread> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.emplace_back([&] {
      for (;;) {
        absl::StatusOr<std::string> m = q.Get();
        if (mp::IsClosed(m.status())) return;
        ASSERT_TRUE(m.ok());
        uint32_t p;
        uint64_t seq;
        ASSERT_TRUE(mp_test::CheckMessage(*m, &p, &seq));
        seen[p * kPer + seq].fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  q.Close();
  for (auto& t : consumers) t.join();
  for (auto& s : seen) ASSERT_EQ(s.load(), 1);
}

TEST(QueueThreadTest, JoinableQueueJoinAndTimeouts) {
  mp::JoinableQueue<int> q(mp::QueueOptions{.capacity_bytes = 64});
  std::thread worker([&] {
    for (;;) {
      absl::StatusOr<int> v = q.Get();
      if (!v.ok()) return;
      ASSERT_TRUE(q.TaskDone().ok());
    }
  });
  for (int i = 0; i < 10'000; ++i) ASSERT_TRUE(q.Put(i).ok());
  ASSERT_TRUE(q.Join().ok());
  q.Close();
  worker.join();
  EXPECT_TRUE(mp::IsClosed(q.Get(true, 0.01).status()));
}

// The item limit and the side channel between threads: two producers
// against maxsize 4 (the consumer never sees more), every fourth message
// big enough to go through a side segment.
TEST(QueueThreadTest, BoundedMpmcWithBigMessages) {
  constexpr int kPerProducer = 400;
  mp::Queue<std::string> q(
      mp::QueueOptions{.maxsize = 4, .capacity_bytes = 4096});
  auto message = [](int p, int i) {
    return std::string(i % 4 == 0 ? 6000 : 8, static_cast<char>('a' + p)) +
           std::to_string(i);
  };
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) ASSERT_TRUE(q.Put(message(p, i)).ok());
    });
  }
  int next[2] = {0, 0};
  for (int n = 0; n < 2 * kPerProducer; ++n) {
    ASSERT_LE(q.qsize(), 4u);
    absl::StatusOr<std::string> v = q.Get(std::chrono::seconds(10));
    ASSERT_TRUE(v.ok()) << v.status();
    const int p = (*v)[0] - 'a';
    ASSERT_TRUE(p == 0 || p == 1);
    ASSERT_EQ(*v, message(p, next[p])) << "producer " << p;
    ++next[p];
  }
  for (std::thread& t : producers) t.join();
  EXPECT_EQ(q.qsize(), 0u);
  EXPECT_EQ(q.lost_records() + q.corrupt_records(), 0u);
}

}  // namespace
