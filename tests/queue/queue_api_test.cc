// Python's queue semantics for Queue / JoinableQueue / SimpleQueue (issue
// 18): maxsize counts items, messages of any size (the side channel), the
// public QueueMode, Make() and the constructors' mp::Error, the timeout
// forms.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/error.h"
#include "mp/core/segment_header.h"
#include "mp/queue/queue.h"
#include "tests/watchdog.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The side segments in /dev/shm (names starting with kSideSegmentPrefix).
std::vector<std::string> SideSegments() {
  std::vector<std::string> out;
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (std::strncmp(e->d_name, mp::kSideSegmentPrefix,
                     std::strlen(mp::kSideSegmentPrefix)) == 0) {
      out.push_back(e->d_name);
    }
  }
  closedir(d);
  return out;
}

class SideSegmentsClean : public ::testing::Test {
 protected:
  void SetUp() override { before_ = SideSegments(); }
  void TearDown() override { EXPECT_EQ(SideSegments(), before_); }

 private:
  std::vector<std::string> before_;
};

// ---- maxsize counts items ----------------------------------------------------

TEST(QueueMaxsizeTest, FullAfterTwoPutsAndAThirdPutWaitsForAGet) {
  mp::Queue<int> q(2);
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_FALSE(q.full());
  ASSERT_TRUE(q.Put(1).ok());
  EXPECT_FALSE(q.full());
  ASSERT_TRUE(q.Put(2).ok());
  EXPECT_TRUE(q.full());
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_TRUE(mp::IsFull(q.Put(3, /*block=*/false)));
  EXPECT_TRUE(mp::IsFull(q.Put(3, milliseconds(1))));
  EXPECT_EQ(q.qsize(), 2u);

  // A third Put blocks, asleep, until a Get takes an item.
  const pid_t producer = mp_test::ForkChild([&] {
    return q.Put(3).ok() ? 0 : 1;  // no deadline
  });
  ASSERT_TRUE(mp_test::AwaitAsleep(producer)) << "the producer never slept";
  EXPECT_EQ(q.qsize(), 2u);
  absl::StatusOr<int> v = q.Get();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 1);
  EXPECT_EQ(mp_test::Watch(producer, "blocked producer"), "");
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_TRUE(q.full());
  EXPECT_EQ(*q.Get(), 2);
  EXPECT_EQ(*q.Get(), 3);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
}

TEST(QueueMaxsizeTest, ZeroAndNegativeAreUnbounded) {
  for (long maxsize : {0L, -1L}) {
    mp::Queue<int> q(mp::QueueOptions{.maxsize = maxsize,
                                      .capacity_bytes = 1 << 16});
    EXPECT_EQ(q.maxsize(), 0u);
    for (int i = 0; i < 1000; ++i) ASSERT_TRUE(q.PutNowait(i).ok()) << i;
    EXPECT_FALSE(q.full());
  }
}

TEST(QueueMaxsizeTest, SpscBoundedToo) {
  mp::Queue<int> q(mp::QueueOptions{.maxsize = 3, .mode = mp::QueueMode::kSpsc});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(q.PutNowait(i).ok());
  EXPECT_TRUE(q.full());
  EXPECT_TRUE(mp::IsFull(q.PutNowait(3)));
  EXPECT_EQ(*q.Get(), 0);
  EXPECT_TRUE(q.PutNowait(3).ok());
  EXPECT_TRUE(mp::IsFull(q.PutNowait(4)));
}

// Two producer processes put as fast as they can; the consumer, reading
// slowly, never sees more than maxsize items in the queue (qsize counts
// claims too, so an overfilled claim would show).
TEST(QueueMaxsizeTest, TwoProducerProcessesNeverExceedIt) {
  constexpr long kMax = 3;
  constexpr int kPerProducer = 3000;
  mp::Queue<int> q(mp::QueueOptions{.maxsize = kMax});
  std::vector<pid_t> producers;
  for (int p = 0; p < 2; ++p) {
    producers.push_back(mp_test::ForkChild([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        if (!q.Put(p * kPerProducer + i).ok()) return 1;
      }
      return 0;
    }));
  }
  size_t most = 0;
  long sum = 0;
  for (int i = 0; i < 2 * kPerProducer; ++i) {
    const size_t before = q.qsize();
    most = std::max(most, before);
    ASSERT_LE(before, static_cast<size_t>(kMax)) << "after " << i << " gets";
    absl::StatusOr<int> v = q.Get(seconds(10));
    ASSERT_TRUE(v.ok()) << v.status();
    sum += *v;
    if (i % 16 == 0) sched_yield();
  }
  for (pid_t p : producers) EXPECT_EQ(mp_test::Watch(p, "producer"), "");
  EXPECT_EQ(sum, 2L * kPerProducer * (2 * kPerProducer - 1) / 2);
  EXPECT_EQ(most, static_cast<size_t>(kMax)) << "the producers never filled it";
  EXPECT_EQ(q.qsize(), 0u);
}

// ---- messages of any size ------------------------------------------------------

std::string BigString(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 131);
  return s;
}

using SideChannelTest = SideSegmentsClean;

TEST_F(SideChannelTest, SixteenMiBThroughADefaultQueue) {
  mp::Queue<std::string> q;
  const std::string big = BigString(16 << 20, 1);
  ASSERT_GT(big.size(), q.side_threshold());
  ASSERT_TRUE(q.Put(big).ok());
  ASSERT_TRUE(q.Put("small").ok());
  EXPECT_EQ(q.qsize(), 2u);
  absl::StatusOr<std::string> v = q.Get();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(*v == big);
  EXPECT_EQ(*q.Get(), "small");
  EXPECT_EQ(q.lost_records() + q.corrupt_records(), 0u);
}

TEST_F(SideChannelTest, SixteenMiBVectorOfDoublesAcrossAFork) {
  mp::Queue<std::vector<double>> q;
  std::vector<double> big(2 << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = i * 0.5;
  const pid_t producer = mp_test::ForkChild([&] {
    for (int i = 0; i < 3; ++i) {
      big[0] = i;
      if (!q.Put(big).ok()) return 1;
    }
    return 0;
  });
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::vector<double>> v = q.Get(seconds(30));
    ASSERT_TRUE(v.ok()) << v.status();
    big[0] = i;
    EXPECT_TRUE(*v == big) << i;
  }
  EXPECT_EQ(mp_test::Watch(producer, "producer"), "");
}

TEST_F(SideChannelTest, SixteenMiBThroughASimpleQueueBothWays) {
  mp::SimpleQueue<std::string> there, back;
  const pid_t echo = mp_test::ForkChild([&] {
    absl::StatusOr<std::string> v = there.Get();
    if (!v.ok()) return 1;
    return back.Put(*v + "!").ok() ? 0 : 2;
  });
  const std::string big = BigString(16 << 20, 7);
  ASSERT_TRUE(there.Put(big).ok());
  absl::StatusOr<std::string> v = back.Get();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(*v == big + "!");
  EXPECT_EQ(mp_test::Watch(echo, "echo"), "");
  EXPECT_FALSE(there.closed());
  there.Close();
  EXPECT_TRUE(there.closed());
  EXPECT_EQ(there.Put("x").code(), absl::StatusCode::kFailedPrecondition);
}

// In a small ring, a message that does not fit goes aside too; bounded
// queues count it as one item.
TEST_F(SideChannelTest, LargerThanASmallRingAndCountedAsOneItem) {
  mp::Queue<std::string> q(
      mp::QueueOptions{.maxsize = 2, .capacity_bytes = 256});
  const size_t before = SideSegments().size();
  ASSERT_TRUE(q.Put(std::string(1000, 'a')).ok());
  EXPECT_EQ(SideSegments().size(), before + 1);
  ASSERT_TRUE(q.Put(std::string(10, 'b')).ok());
  EXPECT_TRUE(q.full());
  EXPECT_TRUE(mp::IsFull(q.PutNowait(std::string(1000, 'c'))));
  EXPECT_EQ(*q.Get(), std::string(1000, 'a'));
  EXPECT_EQ(*q.Get(), std::string(10, 'b'));
}

// A big trivially copyable T goes aside as well.
TEST_F(SideChannelTest, BigTriviallyCopyableValue) {
  struct Blob {
    char bytes[4096];
  };
  mp::Queue<Blob> q(mp::QueueOptions{.capacity_bytes = 1024});
  Blob b;
  for (size_t i = 0; i < sizeof(b.bytes); ++i) b.bytes[i] = static_cast<char>(i);
  ASSERT_TRUE(q.Put(b).ok());
  absl::StatusOr<Blob> v = q.Get();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(std::memcmp(v->bytes, b.bytes, sizeof(b.bytes)), 0);
}

// The segment is another process's file: one rewritten under the consumer
// (a hostile header, a wrong size) is DataLoss for that message, counted
// corrupt; the next message is delivered.
TEST_F(SideChannelTest, HostileSegmentIsDataLossForThatMessageOnly) {
  for (int attack = 0; attack < 3; ++attack) {
    mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 256});
    const std::vector<std::string> before = SideSegments();
    ASSERT_TRUE(q.Put(std::string(5000, 'x')).ok());
    ASSERT_TRUE(q.Put("next").ok());
    std::vector<std::string> now = SideSegments();
    std::string seg;
    for (const std::string& s : now) {
      if (std::find(before.begin(), before.end(), s) == before.end()) seg = s;
    }
    ASSERT_FALSE(seg.empty());
    const int fd = shm_open(("/" + seg).c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    if (attack == 0) {  // a hostile header
      const char junk[64] = {1, 2, 3};
      ASSERT_EQ(pwrite(fd, junk, sizeof(junk), 0), 64);
    } else if (attack == 1) {  // truncated
      ASSERT_EQ(ftruncate(fd, 100), 0);
    } else {  // gone
      ASSERT_EQ(shm_unlink(("/" + seg).c_str()), 0);
    }
    close(fd);
    absl::StatusOr<std::string> v = q.Get();
    EXPECT_EQ(v.status().code(), absl::StatusCode::kDataLoss) << attack;
    EXPECT_EQ(q.corrupt_records(), 1u);
    EXPECT_EQ(*q.Get(), "next");
    EXPECT_EQ(q.qsize(), 0u);
  }
}

// ---- construction --------------------------------------------------------------

TEST(QueueMakeTest, BadOptionsAreInvalidArgumentNamingTheOption) {
  struct Case {
    mp::QueueOptions options;
    const char* names;
  };
  const Case cases[] = {
      {{.mode = static_cast<mp::QueueMode>(7)}, "mode"},
      {{.capacity_bytes = size_t{1} << 40}, "capacity_bytes"},
      {{.capacity_bytes = static_cast<size_t>(-1)}, "capacity_bytes"},
      {{.permissions = 01777}, "permissions"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<mp::Queue<int>> q = mp::Queue<int>::Make(c.options);
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(q.status().message().find(c.names), absl::string_view::npos)
        << q.status();
    EXPECT_EQ(mp::JoinableQueue<int>::Make(c.options).status().code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(mp::SimpleQueue<int>::Make(c.options).status().code(),
              absl::StatusCode::kInvalidArgument);
    try {
      mp::Queue<int> thrown(c.options);
      ADD_FAILURE() << "no exception for " << c.names;
    } catch (const mp::Error& e) {
      EXPECT_EQ(e.code(), absl::StatusCode::kInvalidArgument);
      EXPECT_EQ(e.status(), q.status());
    }
    EXPECT_THROW(mp::JoinableQueue<int> j(c.options), mp::Error);
    EXPECT_THROW(mp::SimpleQueue<int> s(c.options), mp::Error);
  }
  absl::StatusOr<mp::Queue<int>> ok =
      mp::Queue<int>::Make({.maxsize = 8, .capacity_bytes = 4096});
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->capacity(), 4096u);
  EXPECT_EQ(ok->maxsize(), 8u);
}

// ---- JoinableQueue through its base --------------------------------------------

// A Get through a Queue<T>& is the taker's task as through the
// JoinableQueue: a consumer that dies holding it abandons it and Join
// returns.
TEST(JoinableQueueBaseTest, GetThroughTheBaseIsATask) {
  mp::JoinableQueue<int> jq;
  mp::Queue<int>& base = jq;
  ASSERT_TRUE(base.Put(1).ok());
  ASSERT_TRUE(base.Put(2).ok());
  EXPECT_EQ(jq.unfinished_tasks(), 2u);
  const pid_t consumer = mp_test::ForkChild([&] {
    mp::Queue<int> copy = base;  // a plain Queue copy of the handle
    return copy.Get().ok() ? 0 : 1;  // and dies without TaskDone
  });
  EXPECT_EQ(mp_test::Watch(consumer, "consumer"), "");
  ASSERT_TRUE(base.Get().ok());
  ASSERT_TRUE(jq.TaskDone().ok());
  EXPECT_TRUE(jq.Join(seconds(10)).ok());
  EXPECT_EQ(jq.abandoned_tasks(), 1u);
  EXPECT_TRUE(jq.Join(1.0).ok());
  EXPECT_TRUE(jq.Join().ok());
}

}  // namespace
