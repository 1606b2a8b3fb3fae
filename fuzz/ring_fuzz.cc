// fuzz/ring_fuzz.cc
// -----------------------------------------------------------------------------
// The input is a ring segment as another process left it: the Ring header
// (sizeof(Ring) bytes) and its data area, copied into a 64-byte aligned heap
// block of exactly the input's size. Properties checked:
//
//  * Ring::Attach accepts it or says InvalidArgument / DataLoss, and never
//    reads outside the block (AddressSanitizer).
//  * Opening the same bytes as a named queue (a /dev/shm segment, the path
//    an unrelated process takes: SharedMemory::Open, Ring::Attach, Get)
//    accepts exactly what Attach accepts, and its Gets return a clear status.
//  * Once attached, Pop hands out only bytes inside the data area, each
//    record at most max_message() long, and returns OK, DeadlineExceeded,
//    OutOfRange or DataLoss: never a crash, a hang or a read outside.
//  * When the drain ends with an empty, open ring, the ring works: messages
//    pushed come back whole and in order (a consumer lock held by a live
//    task may make an MPMC Pop wait, and a record claimed by a live task at
//    head, which the drain leaves in the ring, makes either mode's Pops
//    wait; nothing else may go wrong), a failed
//    Push means there was no room, a message of up to half the capacity
//    always fits the empty SPSC ring (a longer one may wait for a consumer
//    to skip a pad, as queue.h says), and the bytes in use never exceed the
//    capacity (the producer never laps the consumer).
//
// Every wait of those phases uses a past deadline: a hostile lock word
// naming a live task makes a timed wait last until its deadline, which is
// the contract.
//
//  * Then the hostile phase: a writer that keeps changing the segment while
//    it is in use. Between operations, 8-byte words anywhere in the segment
//    (geometry, indices, counts, locks, record headers, payload) are
//    overwritten with values drawn from the input, and Push and Pop run with
//    short FUTURE deadlines (0.1 ms: the waits run): each returns a status
//    (never another code than the contract's), never reads or writes outside
//    the data area (AddressSanitizer, CopyOut), never hangs (a watchdog
//    thread aborts after 10 s), and the view's capacity never changes. The
//    named path does the same through a second mapping of the segment.

#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

#include "absl/status/status.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/queue_status.h"
#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/internal/ring.h"
#include "mp/queue/queue.h"

namespace {

using mp::Deadline;
using mp::fuzz::AlignedBytes;
using mp::queue_internal::RecordHeader;
using mp::queue_internal::Ring;
using mp::queue_internal::RingMode;
using mp::queue_internal::RingView;

size_t Align8(size_t n) { return (n + 7) & ~size_t{7}; }

bool IsAttachError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kDataLoss;
}

struct PopTarget {
  const AlignedBytes* segment;
  size_t capacity;
  std::string got;
};

// The sink every Pop uses: the record must lie inside the data area.
absl::Status CopyOut(void* ctx, const char* bytes, size_t n) {
  auto* t = static_cast<PopTarget*>(ctx);
  FUZZ_CHECK(t->segment->Holds(bytes, n, sizeof(Ring)));
  FUZZ_CHECK(bytes + n <= t->segment->data() + sizeof(Ring) + t->capacity);
  t->got.assign(bytes, n);
  return absl::OkStatus();
}

// Aborts the run if it is not destroyed within 10 s: the hostile phases'
// waits all have deadlines of a few milliseconds and sliced sleeps.
class Watchdog {
 public:
  explicit Watchdog(const char* what)
      : thread_([this, what] {
          std::unique_lock<std::mutex> l(mu_);
          if (!cv_.wait_for(l, std::chrono::seconds(10),
                            [this] { return done_; })) {
            std::fprintf(stderr, "ring_fuzz: %s hung\n", what);
            std::abort();
          }
        }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

// A small deterministic generator seeded from the input.
struct Rng {
  uint64_t s;
  uint64_t Next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

uint64_t Seed(const uint8_t* data, size_t size) {
  uint64_t h = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i < size; i += 1 + size / 64) h = (h ^ data[i]) * 0x100000001b3ull;
  return h | 1;
}

// An 8-byte value a hostile writer might store: random, small, an index
// near the present ones, or a record header of some kind at some position.
uint64_t HostileValue(Rng& rng, uint64_t near) {
  const uint64_t r = rng.Next();
  switch (r % 6) {
    case 0:
      return rng.Next();
    case 1:
      return r >> 56;
    case 2:
      return near + ((r >> 8) % 64) * 8 - 256;
    case 3:
      return near + ((r >> 8) & 7);  // misaligned
    case 4:
      return RecordHeader::Committed(near, static_cast<uint32_t>(r >> 20),
                                     static_cast<uint32_t>(r >> 8) & 3);
    default:
      return RecordHeader::Claim(static_cast<uint32_t>(r >> 33) | 1,
                                 static_cast<uint32_t>(r >> 8) & 0xffff);
  }
}

using mp::fuzz::IsOperationStatus;

// The hostile phase over the attached ring in `segment` (see the banner).
void MutateBetweenOperations(const uint8_t* data, size_t size,
                             const AlignedBytes& segment, RingView* ring) {
  const size_t cap = ring->capacity();
  Watchdog watchdog("the hostile phase");
  Rng rng{Seed(data, size)};
  PopTarget target{&segment, cap, {}};
  uint64_t near = 0;
  for (int i = 0; i < 16; ++i) {
    for (int k = static_cast<int>(rng.Next() % 3); k > 0; --k) {
      const size_t at = (rng.Next() % (segment.size() / 8)) * 8;
      const uint64_t v = HostileValue(rng, near);
      std::memcpy(segment.data() + at, &v, 8);
    }
    const std::string msg(rng.Next() % (cap / 2), 'h');
    const Deadline soon = Deadline::After(std::chrono::microseconds(100));
    absl::Status put = ring->Push(msg.data(), msg.size(), soon);
    FUZZ_CHECK(IsOperationStatus(put));
    absl::Status got = ring->Pop(&CopyOut, &target, soon);
    FUZZ_CHECK(IsOperationStatus(got));
    if (got.ok()) FUZZ_CHECK(target.got.size() <= ring->max_message());
    FUZZ_CHECK(ring->capacity() == cap);
    FUZZ_CHECK(ring->BytesUsedApprox() <= cap);
    near += Align8(sizeof(RecordHeader) + msg.size());
  }
}

// The named path: the same bytes in a /dev/shm segment, opened by name as a
// Queue<std::string>. The name is unlinked as soon as it is opened, so a run
// leaves nothing behind in /dev/shm.
void OpenNamed(const uint8_t* data, size_t size, bool attach_ok) {
  if (size == 0) return;  // a segment cannot be empty
  static const std::string name = "/mp-fuzz-ring-" + std::to_string(getpid());
  (void)mp::SharedMemory::Unlink(name);  // a crashed earlier run's leftover
  // A named queue's segment: the common header a Queue<std::string> of the
  // input's mode would have, then the input (the ring).
  constexpr size_t kAt = mp::queue_internal::kNamedRingOffset;
  absl::StatusOr<mp::SharedMemory> mem =
      mp::SharedMemory::Create(name, kAt + size);
  FUZZ_CHECK(mem.ok());
  uint32_t mode = 0;
  if (size >= 16) std::memcpy(&mode, data + 12, 4);
  const mp::queue_internal::ElementType type =
      mp::queue_internal::ElementTypeOf<std::string>();
  mp::WriteSegmentHeader(mem->data(), mp::SegmentKind::kQueue, Ring::kVersion,
                         mode, type.tag, type.size, size);
  std::memcpy(static_cast<char*>(mem->data()) + kAt, data, size);
  absl::StatusOr<mp::Queue<std::string>> q = mp::Queue<std::string>::Open(name);
  FUZZ_CHECK(mp::SharedMemory::Unlink(name).ok());
  FUZZ_CHECK(q.ok() == attach_ok);
  if (!q.ok()) {
    FUZZ_CHECK(IsAttachError(q.status()));
    return;
  }
  for (int i = 0; i < 4; ++i) {
    absl::StatusOr<std::string> v = q->Get(/*block=*/false);
    if (v.ok()) continue;
    const absl::StatusCode c = v.status().code();
    // FailedPrecondition: an SPSC ring whose consumer-owner word names a
    // live process (RingView::ClaimSpscSide).
    FUZZ_CHECK(c == absl::StatusCode::kDeadlineExceeded ||
               c == absl::StatusCode::kOutOfRange ||
               c == absl::StatusCode::kDataLoss ||
               c == absl::StatusCode::kFailedPrecondition);
    break;
  }
  // A second mapping (the creator's, `mem`; the queue maps its own)
  // rewrites words of the ring between operations with future deadlines
  // (see the banner).
  Watchdog watchdog("the named hostile phase");
  Rng rng{Seed(data, size) ^ 0x5bd1e995u};
  const size_t cap = q->capacity();
  char* bytes = static_cast<char*>(mem->data()) + kAt;
  for (int i = 0; i < 6; ++i) {
    const size_t at = (rng.Next() % (size / 8 + 1)) * 8;
    const uint64_t v = HostileValue(rng, rng.Next() % 4096);
    if (at + 8 <= size) std::memcpy(bytes + at, &v, 8);
    const Deadline soon = Deadline::After(std::chrono::microseconds(100));
    // A message over the ring's maximum (a 64-byte ring) goes through a
    // side segment.
    const absl::Status put = q->Put(std::string(rng.Next() % 64, 'n'), soon);
    FUZZ_CHECK(IsOperationStatus(put));
    absl::StatusOr<std::string> v2 = q->Get(soon);
    FUZZ_CHECK(IsOperationStatus(v2.status()));
    // Bytes of the data area, or one of the messages put (under 64 bytes).
    if (v2.ok()) {
      FUZZ_CHECK(v2->size() <= std::max<size_t>(q->max_message_bytes(), 63));
    }
    FUZZ_CHECK(q->capacity() == cap);
  }
  mp::fuzz::RemoveSideSegments(q->side_segment_prefix());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  AlignedBytes segment(data, size, size);
  absl::StatusOr<RingView> attached = RingView::Attach(segment.data(), size);
  OpenNamed(data, size, attached.ok());
  if (!attached.ok()) {
    FUZZ_CHECK(IsAttachError(attached.status()));
    return 0;
  }
  RingView* ring = &*attached;
  const size_t cap = ring->capacity();
  FUZZ_CHECK(static_cast<void*>(ring->shared()) == segment.data());
  FUZZ_CHECK(cap >= Ring::kMinCapacity && (cap & (cap - 1)) == 0);
  FUZZ_CHECK(cap <= size - sizeof(Ring));
  const bool mpmc = ring->mode() == RingMode::kMpmc;

  // Drain what the other process left. Every record or pad takes at least
  // 8 bytes of a ring holding at most `cap`, so this many Pops must end it.
  PopTarget target{&segment, cap, {}};
  absl::Status last;
  for (size_t i = 0; i <= cap / 8 + 1; ++i) {
    last = ring->Pop(&CopyOut, &target, Deadline::Past());
    if (!last.ok()) break;
    FUZZ_CHECK(target.got.size() <= ring->max_message());
  }
  FUZZ_CHECK(!last.ok());
  FUZZ_CHECK(last.code() == absl::StatusCode::kDeadlineExceeded ||
             last.code() == absl::StatusCode::kOutOfRange ||
             last.code() == absl::StatusCode::kDataLoss);
  FUZZ_CHECK(ring->BytesUsedApprox() <= cap);
  if (last.code() != absl::StatusCode::kDeadlineExceeded || ring->closed()) {
    MutateBetweenOperations(data, size, segment, ring);
    return 0;
  }

  // The ring is empty (or, in kMpmc, its consumer lock is held by a live
  // task, or a live task's claim at head is left): fill it with messages
  // cut from the input, then drain them.
  const bool blocked = ring->BytesUsedApprox() != 0;
  std::deque<std::string> pushed;
  size_t at = 0;
  for (size_t i = 0; i <= cap / 8 + 1; ++i) {
    const size_t want = size == 0 ? 0 : data[(i * 7) % size] % 97;
    const size_t len = want < ring->max_message() ? want : ring->max_message();
    std::string msg;
    for (size_t k = 0; k < len; ++k) {
      msg.push_back(static_cast<char>(size == 0 ? k : data[(at + k) % size]));
    }
    at += len + 1;
    const size_t rec = Align8(sizeof(RecordHeader) + msg.size());
    absl::Status s = ring->Push(msg.data(), msg.size(), Deadline::Past());
    if (!s.ok()) {
      FUZZ_CHECK(s.code() == absl::StatusCode::kResourceExhausted);
      // Without a lock in the way, "full" means the record did not fit,
      // and into the empty ring, one of up to half the capacity always fits;
      // unless the ring has an item limit (a bounded queue), which counts
      // the records the shared counts say are in it (what the input wrote).
      const bool item_limit =
          ring->maxsize() != 0 &&
          s.message().find("maxsize") != absl::string_view::npos;
      if (!mpmc && !blocked && !item_limit) {
        FUZZ_CHECK(ring->BytesUsedApprox() + rec > cap);
        FUZZ_CHECK(!pushed.empty() || rec > cap / 2);
      }
      break;
    }
    FUZZ_CHECK(ring->BytesUsedApprox() <= cap);
    pushed.push_back(std::move(msg));
  }

  for (size_t i = 0; i <= cap / 8 + 1; ++i) {
    absl::Status s = ring->Pop(&CopyOut, &target, Deadline::Past());
    if (s.ok()) {
      FUZZ_CHECK(!pushed.empty());
      FUZZ_CHECK(target.got == pushed.front());
      pushed.pop_front();
      continue;
    }
    FUZZ_CHECK(s.code() == absl::StatusCode::kDeadlineExceeded);
    // Only a held consumer lock or a live claim may keep what was pushed
    // from coming back.
    FUZZ_CHECK(pushed.empty() || mpmc || blocked);
    break;
  }
  FUZZ_CHECK(ring->BytesUsedApprox() <= cap);
  MutateBetweenOperations(data, size, segment, ring);
  return 0;
}
