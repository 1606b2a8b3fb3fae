// Named queues against a careless or hostile writer of their /dev/shm file
// (issue: named segments). Each case is what another user, or a process with
// write access, can do to a name; the queue answers with a clear error and
// never uses a segment it should not trust.

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <typeinfo>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/segment_header.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"
#include "tests/watchdog.h"

namespace {

std::string UniqueName(const char* what) {
  return "/mp_hostile_test_" + std::string(what) + "_" +
         std::to_string(getpid());
}

class HostileSegmentTest : public ::testing::Test {
 protected:
  void TearDown() override { mp::SharedMemory::Unlink(name_).IgnoreError(); }
  std::string name_ = UniqueName("q");
};

// Case 2: a name taken first by user `nobody` is not opened by root as if it
// were its own; naming the owner accepts it.
TEST_F(HostileSegmentTest, QueueSquattedByAnotherUserIsRefused) {
  ASSERT_EQ(geteuid(), 0u) << "the two-user case runs as root";
  constexpr uid_t kNobody = 65534;
  // The squatter's queue: one that user `nobody` owns. (Made by root and
  // handed over, since /dev/shm need not let `nobody` create files.)
  {
    auto made = mp::Queue<int>::Create(name_);
    ASSERT_TRUE(made.ok()) << made.status();
    ASSERT_EQ(chown(("/dev/shm" + name_).c_str(), kNobody, kNobody), 0);
  }
  auto q = mp::Queue<int>::Open(name_);
  EXPECT_EQ(q.status().code(), absl::StatusCode::kPermissionDenied)
      << q.status();
  EXPECT_NE(q.status().message().find("owned by uid 65534"), std::string::npos)
      << q.status();
  auto accepted = mp::Queue<int>::Open(name_, {.owner = kNobody});
  ASSERT_TRUE(accepted.ok()) << accepted.status();
  ASSERT_TRUE(accepted->Put(5).ok());
  EXPECT_EQ(*accepted->Get(), 5);
}

// A queue its creator made world-writable is refused unless the opener says
// it accepts that mode.
TEST_F(HostileSegmentTest, QueueOpenToOthersIsRefusedUnlessAccepted) {
  auto q = mp::Queue<int>::Create(name_, {.permissions = 0666});
  ASSERT_TRUE(q.ok()) << q.status();
  auto opened = mp::Queue<int>::Open(name_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(opened.status().message().find("mode 0666"), std::string::npos)
      << opened.status();
  EXPECT_TRUE(mp::Queue<int>::Open(name_, {.permissions = 0666}).ok());
}

// Case 7 (part): a symlink in place of the name is a clear error, not
// Internal.
TEST_F(HostileSegmentTest, SymlinkInPlaceOfTheQueueIsRefused) {
  const std::string target = UniqueName("target");
  auto q = mp::Queue<int>::Create(target);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(symlink(("/dev/shm" + target).c_str(),
                    ("/dev/shm" + name_).c_str()),
            0);
  auto opened = mp::Queue<int>::Open(name_);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kFailedPrecondition)
      << opened.status();
  EXPECT_NE(opened.status().message().find("symbolic link"), std::string::npos)
      << opened.status();
  ASSERT_EQ(unlink(("/dev/shm" + name_).c_str()), 0);
  ASSERT_TRUE(mp::SharedMemory::Unlink(target).ok());
}

// Where the fields of a named queue's ring lie in its segment (ring.h,
// "Line 0" and after), for the tests that play the hostile writer.
constexpr size_t kRingAt = mp::queue_internal::kNamedRingOffset;
constexpr size_t kModeAt = kRingAt + 12;
constexpr size_t kCapacityAt = kRingAt + 16;
constexpr size_t kMaskAt = kRingAt + 24;
constexpr size_t kTailAt = kRingAt + 64;
constexpr size_t kHeadCacheAt = kRingAt + 72;
constexpr size_t kHeadAt = kRingAt + 128;
constexpr size_t kConsumerLockAt = kRingAt + 192;
constexpr size_t kLostAt = kRingAt + 216;
constexpr size_t kCorruptAt = kRingAt + 224;
constexpr size_t kProducerLockAt = kRingAt + 264;
constexpr size_t kDataAt = kRingAt + sizeof(mp::queue_internal::Ring);

void Poke64(void* base, size_t at, uint64_t v) {
  std::memcpy(static_cast<char*>(base) + at, &v, 8);
}
void Poke32(void* base, size_t at, uint32_t v) {
  std::memcpy(static_cast<char*>(base) + at, &v, 4);
}

// The start addresses of this process's mappings of the /dev/shm `name`.
std::vector<uintptr_t> MappingsOf(const std::string& name) {
  std::vector<uintptr_t> out;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    if (line.size() < name.size() + 8 ||
        line.compare(line.size() - name.size() - 8, std::string::npos,
                     "/dev/shm" + name) != 0) {
      continue;
    }
    out.push_back(std::stoull(line.substr(0, line.find('-')), nullptr, 16));
  }
  return out;
}

// Case 1: a second mapping rewrites the ring's capacity, mask and indices
// after Open so that the next record's offset lands in another segment of
// this process (queue A writing into B). The queue keeps the geometry it
// read at Open: the Put lands in A's own data area, B is untouched.
TEST_F(HostileSegmentTest, RewrittenGeometryCannotRedirectAPut) {
  auto created = mp::Queue<int64_t>::Create(name_, {.capacity_bytes = 4096});
  ASSERT_TRUE(created.ok()) << created.status();
  auto q = mp::Queue<int64_t>::Open(name_);
  ASSERT_TRUE(q.ok()) << q.status();
  auto writer = mp::SharedMemory::Open(name_);
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::string other = UniqueName("b");
  auto b = mp::SharedMemory::Create(other, 1 << 16);
  ASSERT_TRUE(b.ok()) << b.status();
  mp::SharedMemory::Unlink(other).IgnoreError();  // mapped: enough
  std::memset(b->data(), 0x5a, b->size());
  const std::vector<uintptr_t> all = MappingsOf(name_);
  ASSERT_EQ(all.size(), 3u);  // the creator's, q's and the writer's
  // tail such that data + (tail & mask) is 1 KiB into B, for either queue
  // mapping (both are tried: the test does not know which one q uses).
  for (uintptr_t base : all) {
    if (base == reinterpret_cast<uintptr_t>(writer->data())) continue;
    const uint64_t pos = reinterpret_cast<uintptr_t>(b->data()) + 1024 -
                         (base + kDataAt);
    Poke64(writer->data(), kCapacityAt, ~uint64_t{0} >> 1);
    Poke64(writer->data(), kMaskAt, ~uint64_t{0});
    Poke64(writer->data(), kTailAt, pos);
    Poke64(writer->data(), kHeadCacheAt, pos);
    Poke64(writer->data(), kHeadAt, pos);
    Poke32(writer->data(), kModeAt, 7);
    const pid_t child = mp_test::ForkChild([&] {
      absl::Status put = q->Put(42, mp::Deadline::Past());
      if (!put.ok() && put.code() != absl::StatusCode::kDataLoss) return 1;
      absl::StatusOr<int64_t> got = q->Get(mp::Deadline::Past());
      if (got.ok() && *got != 42) return 2;
      if (!got.ok() && got.status().code() != absl::StatusCode::kDataLoss &&
          got.status().code() != absl::StatusCode::kDeadlineExceeded) {
        return 3;
      }
      return 0;
    });
    EXPECT_EQ(mp_test::Watch(child, "put/get after the rewrite"), "");
    for (size_t i = 0; i < b->size(); ++i) {
      ASSERT_EQ(static_cast<unsigned char*>(b->data())[i], 0x5a)
          << "queue A wrote into segment B at byte " << i;
    }
  }
}

// Case 1: whatever a second mapping writes into the ring's fixed fields,
// indices, counts and record headers between operations, Put and Get answer
// with a status (OK, DataLoss, full, empty, closed), never crash, hang or
// touch a neighbouring segment.
TEST_F(HostileSegmentTest, RandomRewritesBetweenOperationsNeverCrash) {
  for (mp::QueueMode mode :
       {mp::QueueMode::kMpmc,
        mp::QueueMode::kSpsc}) {
    mp::SharedMemory::Unlink(name_).IgnoreError();
    auto created =
        mp::Queue<std::string>::Create(name_, {.capacity_bytes = 4096, .mode = mode});
    ASSERT_TRUE(created.ok()) << created.status();
    auto b = mp::SharedMemory::Create(UniqueName("guard"), 1 << 16);
    ASSERT_TRUE(b.ok()) << b.status();
    mp::SharedMemory::Unlink(UniqueName("guard")).IgnoreError();
    std::memset(b->data(), 0x5a, b->size());
    const pid_t child = mp_test::ForkChild([&] {
      auto q = mp::Queue<std::string>::Open(name_);
      auto writer = mp::SharedMemory::Open(name_);
      if (!q.ok() || !writer.ok()) return 10;
      std::mt19937_64 rng(1234);
      const size_t size = writer->size();
      const uint64_t b_pos = reinterpret_cast<uintptr_t>(b->data());
      for (int i = 0; i < 3000; ++i) {
        const uint64_t r = rng();
        uint64_t v = rng();
        switch (r % 6) {  // a value: random, small, misaligned, or aimed at B
          case 0: v &= 0xffff; break;
          case 1: v = (v & 0xfff) | 1; break;
          case 2: v = b_pos - reinterpret_cast<uintptr_t>(writer->data()); break;
          default: break;
        }
        const size_t fields[] = {kModeAt, kCapacityAt, kMaskAt, kTailAt,
                                 kHeadCacheAt, kHeadAt, kRingAt + 80,
                                 kRingAt + 88, kRingAt + 96, kRingAt + 192,
                                 kRingAt + 208, kRingAt + 216, kRingAt + 224,
                                 kRingAt + 232, kRingAt + 240, kRingAt + 248,
                                 kRingAt + 256, kRingAt + 264, kRingAt + 384};
        const size_t at = (r >> 8) % 3 == 0
                              ? kDataAt + (((r >> 16) % (size - kDataAt)) & ~size_t{7})
                              : fields[(r >> 16) % std::size(fields)];
        if (at + 8 <= size) Poke64(writer->data(), at, v);
        if ((r >> 40) % 50 == 0) std::memset(static_cast<char*>(writer->data()) + kTailAt, 0, 200);
        const std::string msg((r >> 24) % 300, 'x');
        absl::Status put = q->Put(msg, mp::Deadline::Past());
        const absl::StatusCode pc = put.code();
        if (pc != absl::StatusCode::kOk && pc != absl::StatusCode::kDataLoss &&
            pc != absl::StatusCode::kResourceExhausted &&
            pc != absl::StatusCode::kFailedPrecondition &&
            pc != absl::StatusCode::kInvalidArgument) {
          std::fprintf(stderr, "put: %s\n", put.ToString().c_str());
          return 11;
        }
        auto got = q->Get(mp::Deadline::After(std::chrono::milliseconds(1)));
        const absl::StatusCode gc = got.status().code();
        if (gc != absl::StatusCode::kOk && gc != absl::StatusCode::kDataLoss &&
            gc != absl::StatusCode::kDeadlineExceeded &&
            gc != absl::StatusCode::kOutOfRange) {
          std::fprintf(stderr, "get: %s\n", got.status().ToString().c_str());
          return 12;
        }
        if (got.ok() && got->size() > q->max_message_bytes()) return 13;
        if (q->capacity() != 4096) return 14;
      }
      return 0;
    });
    EXPECT_EQ(mp_test::Watch(child, "hostile rewrites"), "");
    for (size_t i = 0; i < b->size(); ++i) {
      ASSERT_EQ(static_cast<unsigned char*>(b->data())[i], 0x5a)
          << "the queue wrote into a neighbouring segment at byte " << i;
    }
  }
}

// Case 3: head and tail made inconsistent by a second mapping. A Get with no
// deadline returns DataLoss within a slice (the outside watchdog calls a
// Get still blocked after 10 s a hang), also when it was already asleep
// and a valid Put follows; a timed Get counts no phantom lost record.
class InconsistentIndicesTest
    : public HostileSegmentTest,
      public ::testing::WithParamInterface<mp::QueueMode> {};

TEST_P(InconsistentIndicesTest, BlockingGetReturnsDataLossPromptly) {
  struct Rewrite {
    const char* what;
    uint64_t head, tail;
  };
  for (const Rewrite& r : {Rewrite{"tail = head + 8", 0, 8},
                           Rewrite{"head past tail", 16, 8}}) {
    SCOPED_TRACE(r.what);
    mp::SharedMemory::Unlink(name_).IgnoreError();
    auto q = mp::Queue<int64_t>::Create(name_, {.capacity_bytes = 4096,
                                                .mode = GetParam()});
    ASSERT_TRUE(q.ok()) << q.status();
    auto writer = mp::SharedMemory::Open(name_);
    ASSERT_TRUE(writer.ok()) << writer.status();
    // The consumer is asleep in Get() before the rewrite.
    const pid_t child = mp_test::ForkChild([&] {
      absl::StatusOr<int64_t> got = q->Get();
      if (got.status().code() != absl::StatusCode::kDataLoss) {
        std::fprintf(stderr, "get: %s\n", got.status().ToString().c_str());
        return 1;
      }
      return q->lost_records() == 0 ? 0 : 2;
    });
    usleep(50 * 1000);
    Poke64(writer->data(), kHeadAt, r.head);
    Poke64(writer->data(), kHeadCacheAt, r.head < r.tail ? r.head : r.tail);
    Poke64(writer->data(), kTailAt, r.tail);
    // A valid Put (for "head past tail" the producer sees the indices out
    // of range and says so).
    absl::Status put = q->Put(7, mp::Deadline::Past());
    EXPECT_TRUE(put.ok() || put.code() == absl::StatusCode::kDataLoss) << put;
    EXPECT_EQ(mp_test::Watch(child, "blocked get"), "");
    // A new Get, blocking or timed, sees the same at once.
    const pid_t again = mp_test::ForkChild([&] {
      return q->Get().status().code() == absl::StatusCode::kDataLoss ? 0 : 1;
    });
    EXPECT_EQ(mp_test::Watch(again, "second blocking get"), "");
    auto timed = q->Get(mp::Deadline::After(std::chrono::milliseconds(30)));
    EXPECT_EQ(timed.status().code(), absl::StatusCode::kDataLoss)
        << timed.status();
    EXPECT_EQ(q->lost_records(), 0u);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, InconsistentIndicesTest,
                         ::testing::Values(mp::QueueMode::kSpsc,
                                           mp::QueueMode::kMpmc));

// Case 4: a committed record whose header claims more than the ring holds.
// Its length was its only boundary; the consumer finds the next record by
// the position every committed header carries, skips the bad one, counts it
// in corrupt_records() and reports DataLoss once; the valid records behind
// it are delivered. Also for a Get already asleep when the bad record
// appears (it sends no wake-up: the Get sees it within a slice).
TEST_P(InconsistentIndicesTest, OversizedCommittedRecordIsSkippedAndCounted) {
  using mp::queue_internal::RecordHeader;
  auto q = mp::Queue<int64_t>::Create(name_, {.capacity_bytes = 4096,
                                              .mode = GetParam()});
  ASSERT_TRUE(q.ok()) << q.status();
  auto writer = mp::SharedMemory::Open(name_);
  ASSERT_TRUE(writer.ok()) << writer.status();
  // Three records of 16 bytes at positions 0, 16, 32; the first one's
  // header is then rewritten to claim 1 MiB.
  for (int64_t v : {1, 2, 3}) ASSERT_TRUE(q->Put(v).ok());
  Poke64(writer->data(), kDataAt,
         RecordHeader::Committed(0, 1u << 20, RecordHeader::kData));
  const pid_t reader = mp_test::ForkChild([&] {
    absl::StatusOr<int64_t> first = q->Get();
    if (first.status().code() != absl::StatusCode::kDataLoss) return 1;
    absl::StatusOr<int64_t> second = q->Get();
    absl::StatusOr<int64_t> third = q->Get();
    if (!second.ok() || *second != 2 || !third.ok() || *third != 3) return 2;
    return q->corrupt_records() == 1 && q->lost_records() == 0 ? 0 : 3;
  });
  EXPECT_EQ(mp_test::Watch(reader, "gets past a corrupt record"), "");
  EXPECT_EQ(q->corrupt_records(), 1u);
  EXPECT_EQ(q->qsize(), 0u);

  // A Get asleep on the empty queue (position 48) when a producer's record
  // there is rewritten to run past the ring, with a valid record behind it.
  const pid_t sleeper = mp_test::ForkChild([&] {
    if (q->Get().status().code() != absl::StatusCode::kDataLoss) return 1;
    absl::StatusOr<int64_t> next = q->Get();
    return next.ok() && *next == 5 ? 0 : 2;
  });
  mp_test::AwaitAsleep(sleeper);
  Poke64(writer->data(), kDataAt + 48 + 16, 0);
  Poke64(writer->data(), kDataAt + 48,
         RecordHeader::Committed(48, 1u << 20, RecordHeader::kData));
  Poke64(writer->data(), kTailAt, 64);
  ASSERT_TRUE(q->Put(5).ok());
  EXPECT_EQ(mp_test::Watch(sleeper, "sleeping get"), "");
  EXPECT_EQ(q->lost_records(), 0u);
}

// Case 7: counters read from the segment are reported no higher than is
// possible (a writer set them to 2^64 - 1); a Put or Get that timed out on
// a lock held by a live stranger says so instead of "full" / "empty".
TEST_F(HostileSegmentTest, CountersAreClampedAndLockTimeoutsSayWhy) {
  auto q = mp::Queue<int64_t>::Create(name_, {.capacity_bytes = 4096});
  ASSERT_TRUE(q.ok()) << q.status();
  auto writer = mp::SharedMemory::Open(name_);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(q->Put(1).ok());
  ASSERT_TRUE(q->Put(2).ok());
  ASSERT_TRUE(q->Get().ok());
  Poke64(writer->data(), kLostAt, ~uint64_t{0});
  Poke64(writer->data(), kCorruptAt, ~uint64_t{0} - 3);
  EXPECT_LE(q->lost_records(), 1u);     // 2 claimed, 1 taken
  EXPECT_LE(q->corrupt_records(), 1u);
  Poke64(writer->data(), kLostAt, 0);
  Poke64(writer->data(), kCorruptAt, 0);
  EXPECT_EQ(q->lost_records(), 0u);
  EXPECT_EQ(q->qsize(), 1u);

  const uint32_t stranger = static_cast<uint32_t>(getpid());  // alive
  Poke32(writer->data(), kProducerLockAt, stranger);
  absl::Status put = q->Put(3, mp::Deadline::Past());
  EXPECT_EQ(put.code(), absl::StatusCode::kResourceExhausted) << put;
  EXPECT_NE(put.message().find("producer lock, held by live task " +
                               std::to_string(stranger)),
            std::string::npos)
      << put;
  Poke32(writer->data(), kProducerLockAt, 0);
  Poke32(writer->data(), kConsumerLockAt, stranger);
  auto got = q->Get(mp::Deadline::Past());
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDeadlineExceeded)
      << got.status();
  EXPECT_NE(got.status().message().find("consumer lock"), std::string::npos)
      << got.status();
  Poke32(writer->data(), kConsumerLockAt, 0);
  EXPECT_EQ(*q->Get(), 2);
}

// Case 7 (type) and case 5 (mode): a named queue's segment header records
// its element type and mode; Open refuses another type of the same size
// (int32 read as float), another kind of segment or layout version, and,
// when asked, another mode, each with a message naming what it expected.
TEST_F(HostileSegmentTest, OpenRefusesAnotherTypeKindVersionOrMode) {
  auto ints = mp::Queue<int32_t>::Create(
      name_, {.capacity_bytes = 4096, .mode = mp::QueueMode::kSpsc});
  ASSERT_TRUE(ints.ok()) << ints.status();
  ASSERT_TRUE(ints->Put(0x3f800000).ok());
  auto floats = mp::Queue<float>::Open(name_);
  EXPECT_EQ(floats.status().code(), absl::StatusCode::kInvalidArgument)
      << floats.status();
  EXPECT_NE(floats.status().message().find("another type"), std::string::npos)
      << floats.status();
  EXPECT_NE(floats.status().message().find(typeid(float).name()),
            std::string::npos)
      << floats.status();
  EXPECT_EQ(mp::Queue<std::string>::Open(name_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(mp::Queue<int32_t>::Open(name_).ok());

  auto as_mpmc = mp::Queue<int32_t>::Open(name_, {},
                                          mp::QueueMode::kMpmc);
  EXPECT_EQ(as_mpmc.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(as_mpmc.status().message().find("created SPSC, expected MPMC"),
            std::string::npos)
      << as_mpmc.status();
  EXPECT_TRUE(mp::Queue<int32_t>::Open(name_, {},
                                       mp::QueueMode::kSpsc)
                  .ok());

  auto writer = mp::SharedMemory::Open(name_);
  ASSERT_TRUE(writer.ok()) << writer.status();
  Poke32(writer->data(), 8, static_cast<uint32_t>(mp::SegmentKind::kLock));
  auto lock = mp::Queue<int32_t>::Open(name_);
  EXPECT_EQ(lock.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(lock.status().message().find("is a lock"), std::string::npos)
      << lock.status();
  Poke32(writer->data(), 8, static_cast<uint32_t>(mp::SegmentKind::kQueue));
  Poke32(writer->data(), 12, 1);
  auto old = mp::Queue<int32_t>::Open(name_);
  EXPECT_EQ(old.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(old.status().message().find("version 1, expected"),
            std::string::npos)
      << old.status();
}

// Case 5: a named SPSC queue serves one producer and one consumer process
// at a time: a second live one is refused with FailedPrecondition (it would
// lose or tear messages), a dead one's side is taken over; MPMC is not
// restricted.
TEST_F(HostileSegmentTest, SpscSideIsOneLiveProcessAtATime) {
  auto q = mp::Queue<int64_t>::Create(
      name_, {.capacity_bytes = 4096, .mode = mp::QueueMode::kSpsc});
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE(q->Put(1).ok());  // this process is the producer
  int ready[2], release[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(release), 0);
  const std::string name = name_;
  const pid_t child = mp_test::ForkChild([&] {
    auto opened = mp::Queue<int64_t>::Open(name);
    if (!opened.ok()) return 1;
    for (mp::Queue<int64_t>* h : {&*q, &*opened}) {  // inherited and opened
      absl::Status put = h->Put(2, mp::Deadline::Past());
      if (put.code() != absl::StatusCode::kFailedPrecondition ||
          put.message().find("SPSC and its producer is process") ==
              std::string::npos) {
        std::fprintf(stderr, "put: %s\n", put.ToString().c_str());
        return 2;
      }
    }
    absl::StatusOr<int64_t> got = opened->Get(mp::Deadline::Past());
    if (!got.ok() || *got != 1) return 3;  // the first consumer
    char c = 1;
    if (write(ready[1], &c, 1) != 1) return 4;
    if (read(release[0], &c, 1) < 0) return 5;  // until the parent says
    return 0;
  });
  close(ready[1]);  // so that a child that fails early gives EOF, not a hang
  close(release[0]);
  char c = 0;
  if (read(ready[0], &c, 1) != 1) {
    ADD_FAILURE() << mp_test::Watch(child, "second producer");
    close(ready[0]);
    close(release[1]);
    return;
  }
  auto taken = q->Get(mp::Deadline::Past());
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kFailedPrecondition)
      << taken.status();
  EXPECT_NE(taken.status().message().find("its consumer is process " +
                                          std::to_string(child)),
            std::string::npos)
      << taken.status();
  ASSERT_EQ(write(release[1], &c, 1), 1);
  EXPECT_EQ(mp_test::Watch(child, "second producer"), "");
  // The consumer is dead: its side is ours now.
  ASSERT_TRUE(q->Put(3).ok());
  auto got = q->Get(mp::Deadline::Past());
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, 3);
  close(ready[0]);
  close(release[1]);

  // MPMC: any number of each.
  const std::string mpmc_name = UniqueName("mpmc");
  auto m = mp::Queue<int64_t>::Create(mpmc_name, {.capacity_bytes = 4096});
  ASSERT_TRUE(m.ok()) << m.status();
  mp::SharedMemory::Unlink(mpmc_name).IgnoreError();
  ASSERT_TRUE(m->Put(1).ok());
  const pid_t other = mp_test::ForkChild([&] {
    return m->Put(2, mp::Deadline::Past()).ok() && m->Get().ok() ? 0 : 1;
  });
  EXPECT_EQ(mp_test::Watch(other, "MPMC producer"), "");
  EXPECT_TRUE(m->Get(mp::Deadline::Past()).ok());
}

}  // namespace

// Case 6: the segment's file truncated under live handles. A Get asleep on
// the queue, and a Put after the truncation, return DataLoss instead of
// dying of SIGBUS or sleeping for ever; a SIGBUS outside mp's segments still
// kills as it would without mp.
class TruncationTest
    : public HostileSegmentTest,
      public ::testing::WithParamInterface<mp::QueueMode> {};

void TruncateSegment(const std::string& name, off_t size) {
  const std::string path = "/dev/shm/" + name;
  const int fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(ftruncate(fd, size), 0);
  close(fd);
}

TEST_P(TruncationTest, WaitersAndLaterOperationsGetDataLoss) {
  // To nothing, and to the first page (the ring's header stays; head and
  // tail, 8 KiB into the data area, lie past the end).
  for (off_t to : {off_t{0}, off_t{4096}}) {
    SCOPED_TRACE(to);
    mp::SharedMemory::Unlink(name_).IgnoreError();
    auto q = mp::Queue<int64_t>::Create(
        name_, {.capacity_bytes = 1 << 16, .mode = GetParam()});
    ASSERT_TRUE(q.ok()) << q.status();
    // Moves head and tail 8 KiB in (a process of its own: in kSpsc each
    // side is one live process at a time; a dead one's side is taken over).
    const pid_t mover = mp_test::ForkChild([&] {
      for (int i = 0; i < 512; ++i) {
        if (!q->Put(i).ok() || !q->Get().ok()) return 1;
      }
      return 0;
    });
    ASSERT_EQ(mp_test::Watch(mover, "moving head"), "");
    // A consumer asleep in Get() with no deadline.
    const pid_t sleeper = mp_test::ForkChild([&] {
      absl::StatusOr<int64_t> got = q->Get();
      if (got.status().code() != absl::StatusCode::kDataLoss) {
        std::fprintf(stderr, "get: %s\n", got.status().ToString().c_str());
        return 1;
      }
      return q->Get(false).status().code() == absl::StatusCode::kDataLoss
                 ? 0 : 2;
    });
    ASSERT_TRUE(mp_test::AwaitAsleep(sleeper));
    TruncateSegment(name_, to);
    EXPECT_EQ(mp_test::Watch(sleeper, "get asleep on a truncated queue"), "");
    // A producer that writes after the truncation: DataLoss, not SIGBUS (its
    // message went nowhere), and so is every operation after it.
    const pid_t producer = mp_test::ForkChild([&] {
      if (q->Put(2).code() != absl::StatusCode::kDataLoss) return 1;
      if (q->Put(3).code() != absl::StatusCode::kDataLoss) return 2;
      return q->Get(false).status().code() == absl::StatusCode::kDataLoss
                 ? 0 : 3;
    });
    EXPECT_EQ(mp_test::Watch(producer, "put into a truncated queue"), "");
    // A new opener is refused (too small), never crashes.
    const pid_t opener = mp_test::ForkChild([&] {
      return mp::Queue<int64_t>::Open(name_).ok() ? 1 : 0;
    });
    EXPECT_EQ(mp_test::Watch(opener, "open of a truncated queue"), "");
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, TruncationTest,
                         ::testing::Values(mp::QueueMode::kSpsc,
                                           mp::QueueMode::kMpmc));

TEST_F(HostileSegmentTest, SigbusOutsideMpSegmentsStillKills) {
  auto q = mp::Queue<int64_t>::Create(name_);  // installs mp's handler
  ASSERT_TRUE(q.ok()) << q.status();
  const pid_t child = mp_test::ForkChild([&] {
    char path[] = "/tmp/mp-sigbus-XXXXXX";
    const int fd = mkstemp(path);
    if (fd < 0) return 3;
    unlink(path);
    if (ftruncate(fd, 4096) != 0) return 4;
    auto* p = static_cast<volatile char*>(
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (p == MAP_FAILED) return 5;
    if (ftruncate(fd, 0) != 0) return 6;
    p[0] = 1;  // SIGBUS: not an mp segment
    return 0;
  });
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The handler before mp's is the sanitizer's: it reports and exits.
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << mp_test::Describe(status);
#else
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS)
      << mp_test::Describe(status);
#endif
}
