// The codec, named queues, Pipe/Connection and PipeQueue.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <exception>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/error.h"
#include "mp/core/process.h"
#include "mp/core/shared_memory.h"
#include "mp/core/status_macros.h"
#include "mp/queue/codec.h"
#include "mp/queue/connection.h"
#include "mp/queue/pipe_queue.h"
#include "mp/queue/queue.h"
#include "tests/queue/element_type.h"

namespace {

struct Task {
  int a = 0;
  int b = 0;
  std::string label;
  std::vector<std::string> tags;
  bool operator==(const Task&) const = default;
};

}  // namespace

template <>
struct mp::Codec<Task> {
  static void Encode(const Task& t, mp::ByteWriter& out) {
    out.Put(t.a);
    out.Put(t.b);
    out.Put(t.label);
    out.Put(t.tags);
  }
  static absl::Status Decode(mp::ByteReader& in, Task* t) {
    MP_RETURN_IF_ERROR(in.Get(&t->a));
    MP_RETURN_IF_ERROR(in.Get(&t->b));
    MP_RETURN_IF_ERROR(in.Get(&t->label));
    return in.Get(&t->tags);
  }
};

namespace {

template <class T>
T RoundTrip(const T& v) {
  std::string bytes;
  mp::EncodeMessage(v, &bytes);
  T out{};
  EXPECT_TRUE(mp::DecodeMessage(bytes.data(), bytes.size(), &out).ok());
  return out;
}

TEST(CodecTest, RoundTrips) {
  EXPECT_EQ(RoundTrip(42), 42);
  EXPECT_EQ(RoundTrip(std::string("")), "");
  EXPECT_EQ(RoundTrip(std::string("hello\0world", 11)),
            std::string("hello\0world", 11));
  EXPECT_EQ(RoundTrip(std::vector<double>{1.5, -2}),
            (std::vector<double>{1.5, -2}));
  EXPECT_EQ(RoundTrip(std::vector<std::string>{"a", "", "ccc"}),
            (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_EQ(RoundTrip(std::optional<std::string>()), std::nullopt);
  EXPECT_EQ(RoundTrip(std::optional<std::string>("x")), "x");
  Task t{3, 4, "three by four", {"x", "y"}};
  EXPECT_EQ(RoundTrip(t), t);
  EXPECT_EQ(RoundTrip(std::make_pair(std::string("k"), 7)),
            std::make_pair(std::string("k"), 7));
}

TEST(CodecTest, MalformedBytesAreRejectedNeverOverread) {
  Task t{1, 2, "label", {"tag"}};
  std::string bytes;
  mp::EncodeMessage(t, &bytes);
  // Every truncation fails cleanly.
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string cut = bytes.substr(0, n);  // own allocation: ASan sees overreads
    Task out;
    EXPECT_EQ(mp::DecodeMessage(cut.data(), cut.size(), &out).code(),
              absl::StatusCode::kDataLoss)
        << n;
  }
  // Trailing bytes are an error.
  std::string longer = bytes + "z";
  Task out;
  EXPECT_EQ(mp::DecodeMessage(longer.data(), longer.size(), &out).code(),
            absl::StatusCode::kDataLoss);
  // Huge counts are rejected before any allocation.
  std::string evil(8, '\xff');
  std::vector<std::string> v;
  EXPECT_EQ(mp::DecodeMessage(evil.data(), evil.size(), &v).code(),
            absl::StatusCode::kDataLoss);
  std::string s;
  EXPECT_EQ(mp::DecodeMessage(evil.data(), evil.size(), &s).code(),
            absl::StatusCode::kDataLoss);
  std::string bad_opt("\x02", 1);
  std::optional<std::string> o;
  EXPECT_EQ(mp::DecodeMessage(bad_opt.data(), bad_opt.size(), &o).code(),
            absl::StatusCode::kDataLoss);
}

// What a peer sends as a bool, or as an optional's flag, is checked: a byte
// other than 0 or 1 is DataLoss, never a bool holding 2 (undefined
// behaviour to read). Found by fuzz/codec_fuzz.
TEST(CodecTest, BoolAndOptionalFlagsAcceptOnlyZeroAndOne) {
  bool b = false;
  for (unsigned char c : {2, 0x81, 0xff}) {
    const char byte = static_cast<char>(c);
    EXPECT_EQ(mp::DecodeMessage(&byte, 1, &b).code(),
              absl::StatusCode::kDataLoss);
  }
  EXPECT_TRUE(RoundTrip(true));
  EXPECT_FALSE(RoundTrip(false));
  // Optionals of trivially copyable types are tagged like the others (one
  // tag byte, then the value), not copied with their flag as raw bytes.
  std::string bytes;
  mp::EncodeMessage(std::optional<int32_t>(5), &bytes);
  EXPECT_EQ(bytes.size(), 1 + sizeof(int32_t));
  EXPECT_EQ(RoundTrip(std::optional<int32_t>(5)), 5);
  EXPECT_EQ(RoundTrip(std::optional<bool>()), std::nullopt);
  bytes[0] = 2;
  std::optional<int32_t> o;
  EXPECT_EQ(mp::DecodeMessage(bytes.data(), bytes.size(), &o).code(),
            absl::StatusCode::kDataLoss);
  std::pair<int32_t, bool> p;
  std::string pair_bytes(4, '\0');
  pair_bytes.push_back('\x07');
  EXPECT_EQ(mp::DecodeMessage(pair_bytes.data(), pair_bytes.size(), &p).code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(RoundTrip(std::vector<bool>{true, false, true}),
            (std::vector<bool>{true, false, true}));
}

TEST(CodecTest, UserTypeThroughQueueBetweenProcesses) {
  mp::Queue<Task> q;
  mp::Process child([q]() mutable {
    for (int i = 0; i < 100; ++i) {
      MP_CHECK_OK(q.Put(Task{i, i, "t" + std::to_string(i), {"a"}}));
    }
  });
  ASSERT_TRUE(child.Start().ok());
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<Task> t = q.Get();
    ASSERT_TRUE(t.ok());
    EXPECT_EQ(*t, (Task{i, i, "t" + std::to_string(i), {"a"}}));
  }
  ASSERT_TRUE(child.Join().ok());
  EXPECT_EQ(child.exitcode(), 0);
}

std::string UniqueName(const char* what) {
  return "/mp_queue_test_" + std::string(what) + "_" + std::to_string(getpid());
}

class NamedQueueTest : public ::testing::Test {
 protected:
  void TearDown() override { mp::SharedMemory::Unlink(name_).IgnoreError(); }
  std::string name_ = UniqueName("named");
};

TEST_F(NamedQueueTest, CreateOpenUnlink) {
  auto q = mp::Queue<int>::Create(name_, {.capacity_bytes = 4096});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(mp::Queue<int>::Create(name_).status().code(),
            absl::StatusCode::kAlreadyExists);
  // An unrelated process (here: a child that opens it by name).
  std::string name = name_;
  mp::Process child([name]() {
    auto q2 = mp::Queue<int>::Open(name);
    MP_CHECK_OK(q2.status());
    for (int i = 0; i < 1000; ++i) MP_CHECK_OK(q2->Put(i));
  });
  ASSERT_TRUE(child.Start().ok());
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(*q->Get(), i);
  ASSERT_TRUE(child.Join().ok());
  EXPECT_EQ(child.exitcode(), 0);
  struct stat st;
  std::string path = "/dev/shm" + name_;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(mp::Queue<int>::Unlink(name_).ok());
  EXPECT_EQ(mp::Queue<int>::Open(name_).status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(q->Put(7).ok());  // still mapped
  EXPECT_EQ(*q->Get(), 7);
}

using mp_test::RecordElementType;

// A Queue<bool> goes through bool's codec, not a raw copy: a record that
// holds no bool is DataLoss, and the queue goes on working.
TEST_F(NamedQueueTest, QueueOfBoolRejectsAByteThatIsNoBool) {
  auto bytes = mp::Queue<uint8_t>::Create(name_, {.capacity_bytes = 4096});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  ASSERT_TRUE(bytes->Put(2).ok());
  ASSERT_TRUE(bytes->Put(1).ok());
  RecordElementType<bool>(name_);
  auto bools = mp::Queue<bool>::Open(name_);
  ASSERT_TRUE(bools.ok()) << bools.status();
  EXPECT_EQ(bools->Get(false).status().code(), absl::StatusCode::kDataLoss);
  absl::StatusOr<bool> b = bools->Get(false);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE(*b);
}

TEST_F(NamedQueueTest, CorruptHeadersAreRejected) {
  // Too small, bad magic, then a valid queue with each field broken.
  {
    auto mem = mp::SharedMemory::Create(name_, 100);
    ASSERT_TRUE(mem.ok());
    EXPECT_FALSE(mp::Queue<int>::Open(name_).ok());
    ASSERT_TRUE(mp::SharedMemory::Unlink(name_).ok());
  }
  {
    auto mem = mp::SharedMemory::Create(name_, 8192);
    ASSERT_TRUE(mem.ok());
    std::memset(mem->data(), 0x5a, mem->size());
    EXPECT_EQ(mp::Queue<int>::Open(name_).status().code(),
              absl::StatusCode::kDataLoss);
    ASSERT_TRUE(mp::SharedMemory::Unlink(name_).ok());
  }
  // Byte offsets in the ring header: mode at 12, capacity at 16, tail at 64,
  // head at 128 (see ring.h), after the 64-byte segment header; and in the
  // segment header (segment_header.h): magic at 0, kind at 8, version at 12.
  struct Breakage {
    size_t offset;
    uint64_t value;
  };
  constexpr size_t R = mp::queue_internal::kNamedRingOffset;
  for (Breakage b :
       {Breakage{0, 99}, Breakage{8, 3}, Breakage{12, 99}, Breakage{R + 8, 99},
        Breakage{R + 12, 7}, Breakage{R + 16, 1 << 20}, Breakage{R + 16, 100},
        Breakage{R + 64, 8 * 1024 * 1024}, Breakage{R + 128, 64}}) {
    auto q = mp::Queue<int>::Create(name_, {.capacity_bytes = 4096});
    ASSERT_TRUE(q.ok());
    auto mem = mp::SharedMemory::Open(name_);
    ASSERT_TRUE(mem.ok());
    if (b.offset == 8 || b.offset == 12 || b.offset == R + 8 ||
        b.offset == R + 12) {
      uint32_t v = static_cast<uint32_t>(b.value);
      std::memcpy(static_cast<char*>(mem->data()) + b.offset, &v, 4);
    } else {
      std::memcpy(static_cast<char*>(mem->data()) + b.offset, &b.value, 8);
    }
    auto opened = mp::Queue<int>::Open(name_);
    EXPECT_FALSE(opened.ok()) << b.offset;
    ASSERT_TRUE(mp::SharedMemory::Unlink(name_).ok());
  }
}

TEST_F(NamedQueueTest, CorruptRecordIsDataLossNotACrash) {
  auto q = mp::Queue<int>::Create(name_, {.capacity_bytes = 4096});
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE(q->Put(1).ok());
  auto mem = mp::SharedMemory::Open(name_);
  ASSERT_TRUE(mem.ok());
  uint32_t huge = 1u << 30;  // record length far past the ring
  // The first record's header starts right after the ring header.
  std::memcpy(static_cast<char*>(mem->data()) +
                  mp::queue_internal::kNamedRingOffset +
                  mp::queue_internal::Ring::BytesFor(0),
              &huge, 4);
  EXPECT_EQ(q->Get(false).status().code(), absl::StatusCode::kDataLoss);
}

// The ring's tail in a named queue's segment (ring.h, line 1, after the
// 64-byte segment header).
constexpr size_t kTailAt = mp::queue_internal::kNamedRingOffset + 64;
constexpr size_t kRecordsInAt = mp::queue_internal::kNamedRingOffset + 80;
uint64_t TailOf(const mp::SharedMemory& mem) {
  uint64_t tail;
  std::memcpy(&tail, static_cast<char*>(mem.data()) + kTailAt, 8);
  return tail;
}

// What a producer does before it writes and commits, made by hand: the claim
// of a record of sizeof(int) bytes by `tid` at position `at` (the tail),
// and the tail moved past it.
void PublishIntClaim(const mp::SharedMemory& mem, uint64_t at, uint32_t tid) {
  using mp::queue_internal::RecordHeader;
  char* base = static_cast<char*>(mem.data());
  const uint64_t claim = RecordHeader::Claim(tid, sizeof(int));
  std::memcpy(base + mp::queue_internal::kNamedRingOffset +
                  mp::queue_internal::Ring::BytesFor(0) + at,
              &claim, 8);
  const uint64_t next = at + 16;
  std::memcpy(base + kTailAt, &next, 8);
  // And counted, as a producer counts its claim (records_in_, line 1):
  // lost_records() never reports more records than were claimed.
  uint64_t in;
  std::memcpy(&in, base + kRecordsInAt, 8);
  ++in;
  std::memcpy(base + kRecordsInAt, &in, 8);
}

// A producer that dies between its claim and its commit leaves a header that
// names it, with tail past it. The claim is made by hand here (a record of
// 4 bytes after the two put), naming a child that has exited and been
// reaped: Get skips it, counts it, and delivers what follows.
TEST_F(NamedQueueTest, DeadProducersClaimIsSkippedAndCounted) {
  using mp::QueueMode;
  pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(dead, &status, 0), dead);
  for (QueueMode mode : {QueueMode::kSpsc, QueueMode::kMpmc}) {
    auto q = mp::Queue<int>::Create(name_, {.capacity_bytes = 4096, .mode = mode});
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(q->Put(1).ok());
    ASSERT_TRUE(q->Put(2).ok());
    auto mem = mp::SharedMemory::Open(name_);
    ASSERT_TRUE(mem.ok());
    ASSERT_EQ(TailOf(*mem), 32u);  // two records of 8 + 4 bytes, 8-aligned
    PublishIntClaim(*mem, 32, static_cast<uint32_t>(dead));
    ASSERT_TRUE(q->Put(3).ok());
    EXPECT_EQ(*q->Get(true, 5.0), 1);
    EXPECT_EQ(*q->Get(true, 5.0), 2);
    EXPECT_EQ(q->lost_records(), 0u);
    EXPECT_EQ(*q->Get(true, 5.0), 3);
    EXPECT_EQ(q->lost_records(), 1u);
    EXPECT_EQ(q->Get(false).status().code(),
              absl::StatusCode::kDeadlineExceeded);
    ASSERT_TRUE(mp::SharedMemory::Unlink(name_).ok());
  }
}

// The same claim, naming a live task (this one), in a closed queue: the
// claimer may still commit, so Get waits for it until its deadline and then
// says empty; the close ends neither the wait early nor turns it into a
// loop (tools/fuzz once found Get(false) spinning there forever).
TEST_F(NamedQueueTest, LiveProducersClaimInClosedQueueWaitsUntilDeadline) {
  using mp::queue_internal::RecordHeader;
  using mp::queue_internal::Ring;
  using mp::QueueMode;
  for (QueueMode mode : {QueueMode::kSpsc, QueueMode::kMpmc}) {
    auto q = mp::Queue<int>::Create(name_, {.capacity_bytes = 4096, .mode = mode});
    ASSERT_TRUE(q.ok());
    ASSERT_TRUE(q->Put(1).ok());
    auto mem = mp::SharedMemory::Open(name_);
    ASSERT_TRUE(mem.ok());
    ASSERT_EQ(TailOf(*mem), 16u);
    PublishIntClaim(*mem, 16, static_cast<uint32_t>(getpid()));
    q->Close();
    EXPECT_EQ(*q->Get(false), 1);
    EXPECT_EQ(q->Get(false).status().code(),
              absl::StatusCode::kDeadlineExceeded);
    EXPECT_EQ(q->Get(true, 0.05).status().code(),
              absl::StatusCode::kDeadlineExceeded);
    // The claimer commits: the record is delivered, then the close is seen.
    char* data = static_cast<char*>(mem->data()) +
                 mp::queue_internal::kNamedRingOffset + Ring::BytesFor(0);
    const uint64_t committed =
        RecordHeader::Committed(16, sizeof(int), RecordHeader::kData);
    const int three = 3;
    std::memcpy(data + 16 + 8, &three, 4);
    std::memcpy(data + 16, &committed, 8);
    EXPECT_EQ(*q->Get(true, 5.0), 3);
    EXPECT_EQ(q->Get(true, 5.0).status().code(), absl::StatusCode::kOutOfRange);
    EXPECT_EQ(q->lost_records(), 0u);
    ASSERT_TRUE(mp::SharedMemory::Unlink(name_).ok());
  }
}

// Poll's answer in words; a failed poll is a third answer, never "empty".
std::string PollAnswer(const absl::StatusOr<bool>& r) {
  if (!r.ok()) return r.status().ToString();
  return *r ? "ready" : "empty";
}

TEST(PipeTest, DuplexSendRecv) {
  auto [a, b] = mp::Pipe();
  mp::Process child([b]() mutable {
    absl::StatusOr<std::string> s = b.Recv<std::string>();
    MP_CHECK_OK(s.status());
    MP_CHECK_OK(b.Send(*s + " back"));
    MP_CHECK_OK(b.Send(Task{1, 2, "task", {}}));
  });
  ASSERT_TRUE(child.Start().ok());
  b.Close();
  ASSERT_TRUE(a.Send(std::string("hello")).ok());
  EXPECT_EQ(PollAnswer(a.Poll(5.0)), "ready");
  EXPECT_EQ(*a.Recv<std::string>(), "hello back");
  EXPECT_EQ(*a.Recv<Task>(), (Task{1, 2, "task", {}}));
  ASSERT_TRUE(child.Join().ok());
  EXPECT_EQ(a.Recv<int>().status().code(), absl::StatusCode::kOutOfRange);
}

TEST(PipeTest, OneWayAndPoll) {
  auto [reader, writer] = mp::Pipe(false);
  EXPECT_EQ(PollAnswer(reader.Poll()), "empty");  // Python's default: no wait
  EXPECT_EQ(PollAnswer(reader.Poll(0.0)), "empty");
  EXPECT_EQ(PollAnswer(reader.Poll(0.01)), "empty");
  EXPECT_EQ(PollAnswer(reader.Poll(std::chrono::milliseconds(1))), "empty");
  EXPECT_EQ(PollAnswer(reader.Poll(mp::Deadline::Past())), "empty");
  EXPECT_FALSE(reader.writable());
  ASSERT_TRUE(writer.Send(5).ok());
  EXPECT_EQ(PollAnswer(reader.Poll(std::nullopt)),
            "ready");  // None: until it comes
  EXPECT_EQ(*reader.Recv<int>(), 5);
}

// Each cause of failure has its own code (connection.h's table).
TEST(PipeTest, WrongDirectionIsInvalidArgument) {
  auto [reader, writer] = mp::Pipe(false);
  absl::Status send = reader.Send(1);
  EXPECT_EQ(send.code(), absl::StatusCode::kInvalidArgument) << send;
  EXPECT_EQ(send.message(), "connection is read-only");
  absl::Status recv = writer.Recv<int>().status();
  EXPECT_EQ(recv.code(), absl::StatusCode::kInvalidArgument) << recv;
  EXPECT_EQ(recv.message(), "connection is write-only");
  absl::StatusOr<bool> poll = writer.Poll(0.0);
  EXPECT_EQ(poll.status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing was lost: the right direction still works.
  ASSERT_TRUE(writer.Send(7).ok());
  EXPECT_EQ(*reader.Recv<int>(), 7);
}

TEST(PipeTest, ClosedEndIsFailedPrecondition) {
  auto [a, b] = mp::Pipe();
  a.Close();
  a.Close();  // again: nothing
  EXPECT_TRUE(a.closed());
  EXPECT_EQ(a.fileno(), -1);
  for (absl::Status s :
       {a.Send(1), a.Recv<int>().status(), a.Poll(0.0).status(),
        a.RecvBytes().status(), a.SendBytes(std::string("x"))}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(s.message(), "connection is closed");
  }
  mp::Connection never_made;  // default-constructed: closed too
  EXPECT_EQ(never_made.Poll(0.0).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PipeTest, PeerGoneIsEndOfFileOnRecvAndAbortedOnSend) {
  auto [a, b] = mp::Pipe();
  ASSERT_TRUE(b.Send(3).ok());
  b.Close();
  // What the peer sent before it left still arrives, then the end.
  EXPECT_EQ(PollAnswer(a.Poll(0.0)), "ready");
  EXPECT_EQ(*a.Recv<int>(), 3);
  EXPECT_EQ(PollAnswer(a.Poll(0.0)), "ready");  // end of file is readable
  absl::Status eof = a.Recv<int>().status();
  EXPECT_EQ(eof.code(), absl::StatusCode::kOutOfRange) << eof;
  absl::Status broken = a.Send(4);
  EXPECT_EQ(broken.code(), absl::StatusCode::kAborted) << broken;
  EXPECT_EQ(broken.message(), "peer has closed the connection");
}

TEST(PipeTest, MakePipeReturnsTheErrorPipeThrows) {
  absl::StatusOr<std::pair<mp::Connection, mp::Connection>> ok =
      mp::MakePipe(false);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_TRUE(ok->first.readable());
  EXPECT_TRUE(ok->second.writable());

  // Out of descriptors: lower RLIMIT_NOFILE to what is open now.
  rlimit old{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old), 0);
  int highest = 0;
  for (int fd = 0; fd < 4096; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) highest = fd;
  }
  rlimit tight = old;
  tight.rlim_cur = static_cast<rlim_t>(highest + 1);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> holes;  // fill every free number below the limit
  for (int fd; (fd = dup(0)) >= 0;) holes.push_back(fd);
  absl::StatusOr<std::pair<mp::Connection, mp::Connection>> none =
      mp::MakePipe();
  // The exception is looked at once descriptors are back: UBSan's vptr
  // check needs one (it probes memory through a pipe).
  std::exception_ptr caught;
  try {
    mp::Pipe();
  } catch (...) {
    caught = std::current_exception();
  }
  absl::StatusOr<mp::PipeQueue<int>> no_queue = mp::PipeQueue<int>::Create();
  for (int fd : holes) close(fd);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old), 0);
  absl::StatusCode thrown = absl::StatusCode::kOk;
  try {
    if (caught) std::rethrow_exception(caught);
  } catch (const mp::Error& e) {
    thrown = e.code();
  }
  EXPECT_EQ(none.status().code(), absl::StatusCode::kResourceExhausted)
      << none.status();
  EXPECT_EQ(thrown, absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(no_queue.status().code(), absl::StatusCode::kResourceExhausted)
      << no_queue.status();
}

TEST(PipeTest, RecvBytesIntoTooSmallBufferKeepsTheMessage) {
  auto [a, b] = mp::Pipe();
  ASSERT_TRUE(a.SendBytes(std::string(100, 'q')).ok());
  char small[10];
  absl::StatusOr<size_t> n = b.RecvBytesInto(absl::MakeSpan(small));
  EXPECT_EQ(n.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(n.status().message().find("100"), absl::string_view::npos);
  EXPECT_EQ(PollAnswer(b.Poll(0.0)), "ready");
  char big[200];
  n = b.RecvBytesInto(absl::MakeSpan(big));
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 100u);
  EXPECT_EQ(std::string(big, 100), std::string(100, 'q'));
}

TEST(PipeQueueTest, SameInterfaceMultipleWritersAndClose) {
  mp::PipeQueue<std::string> q;
  std::vector<std::unique_ptr<mp::Process>> writers;
  for (int w = 0; w < 3; ++w) {
    writers.push_back(std::make_unique<mp::Process>([q, w]() mutable {
      for (int i = 0; i < 500; ++i) {
        MP_CHECK_OK(q.Put(std::to_string(w) + ":" + std::string(i % 50, 'x')));
      }
    }));
    ASSERT_TRUE(writers.back()->Start().ok());
  }
  std::map<char, int> per_writer;
  for (int i = 0; i < 1500; ++i) {
    absl::StatusOr<std::string> m = q.Get();
    ASSERT_TRUE(m.ok()) << m.status();
    ++per_writer[(*m)[0]];
  }
  for (auto& w : writers) ASSERT_TRUE(w->Join().ok());
  EXPECT_EQ(per_writer['0'], 500);
  EXPECT_EQ(per_writer['2'], 500);
  EXPECT_TRUE(mp::IsEmpty(q.Get(false).status()));
  q.Close();
  EXPECT_EQ(q.Put("x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(q.Get().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_EQ(q.Get().status().code(), absl::StatusCode::kOutOfRange);
}

}  // namespace
