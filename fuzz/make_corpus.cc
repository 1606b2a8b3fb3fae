// fuzz/make_corpus.cc
// -----------------------------------------------------------------------------
// Writes the seed corpora in fuzz/corpus/<target>/ with the library's own
// code: rings formatted and used by Ring, arenas by SharedArena, resident
// sync objects built by their constructors, messages by EncodeMessage and
// frames by Connection::SendBytes. Then a few corrupt variants of each, made
// by changing the bytes at the places the headers' layout comments name.
//
//   bazel run //fuzz:make_corpus -- "$PWD/fuzz/corpus"
//
// The output is deterministic (no TIDs or addresses end up in it), so a
// re-run changes nothing unless the code did. Regression inputs found by
// fuzzing are named regress-* and are kept by hand, not written here.

#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "fuzz/codec_types.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/sync_input.h"
#include "mp/core/futex.h"
#include "mp/core/segment_header.h"
#include "mp/core/shared_arena.h"
#include "mp/queue/codec.h"
#include "mp/queue/connection.h"
#include "mp/queue/queue.h"
#include "mp/queue/internal/ring.h"
#include "mp/queue/pipe_queue.h"
#include "mp/sync/barrier.h"
#include "mp/sync/condition.h"
#include "mp/sync/event.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"
#include "mp/sync/internal/snapshot.h"

namespace {

using mp::Deadline;
using mp::fuzz::AlignedBytes;
using mp::queue_internal::Ring;
using mp::queue_internal::RingMode;
using mp::queue_internal::RingView;

std::filesystem::path root;

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "make_corpus: %s\n", what);
    std::exit(1);
  }
}

void Write(const char* target, const std::string& name,
           const std::string& bytes) {
  const std::filesystem::path dir = root / target;
  std::filesystem::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  Check(f.good(), "write failed");
}

template <class T>
void Put(std::string& s, size_t at, T v) {
  Check(at + sizeof(T) <= s.size(), "patch out of range");
  std::memcpy(&s[at], &v, sizeof(T));
}

template <class T>
std::string BytesOf(const T& v) {
  return std::string(reinterpret_cast<const char*>(&v), sizeof(T));
}

// ---- ring_fuzz: ring segments -----------------------------------------------

// Offsets in a Ring, from ring.h's layout comments (line 0: magic, version,
// mode, capacity, mask; line 1: tail, head cache, records in;
// line 2: head alone; line 3: consumer lock; line 4: consumers sleep flag,
// producer lock; line 6: queue state; lines 7..22: task slots; the data
// area after them).
constexpr size_t kMagicAt = 0, kVersionAt = 8, kModeAt = 12, kCapacityAt = 16,
                 kMaskAt = 24, kTailAt = 64, kHeadCacheAt = 72,
                 kProducerLockAt = 264, kHeadAt = 128, kConsumerLockAt = 192,
                 kDataAt = 1472;
static_assert(sizeof(Ring) == kDataAt);
// A TID above any pid_max: a holder that is certainly dead.
constexpr uint32_t kDeadTid = 0x3ffffff0;

class RingSeed {
 public:
  RingSeed(size_t capacity, RingMode mode)
      : bytes_(nullptr, 0, Ring::BytesFor(capacity)),
        ring_(RingView::Format(bytes_.data(), capacity, mode)) {}
  void Push(const std::string& m) {
    Check(ring_.Push(m.data(), m.size(), Deadline::Past()).ok(), "push");
  }
  bool TryPush(const std::string& m) {
    return ring_.Push(m.data(), m.size(), Deadline::Past()).ok();
  }
  void Pop() {
    Check(ring_.Pop([](void*, const char*, size_t) { return absl::OkStatus(); },
                    nullptr, Deadline::Past())
              .ok(),
          "pop");
  }
  void Close() { ring_.Close(); }
  std::string bytes() const {
    return std::string(bytes_.data(), bytes_.size());
  }

 private:
  AlignedBytes bytes_;
  RingView ring_;
};

// open_fuzz: a setup byte, then a named queue's segment (queue.h): the
// common header for element type T and the ring.
template <class T>
std::string NamedSegment(const RingSeed& ring, RingMode mode) {
  const mp::queue_internal::ElementType t =
      mp::queue_internal::ElementTypeOf<T>();
  std::string header(mp::SegmentHeader::kSize, '\0');
  const std::string r = ring.bytes();
  mp::WriteSegmentHeader(header.data(), mp::SegmentKind::kQueue,
                         Ring::kVersion, static_cast<uint32_t>(mode), t.tag,
                         t.size, r.size());
  return header + r;
}

void OpenCorpus() {
  const char* t = "open_fuzz";
  RingSeed spsc(64, RingMode::kSpsc);
  RingSeed mpmc(128, RingMode::kMpmc);
  mpmc.Push("one");
  mpmc.Push(std::string(8, '\0'));
  // setup byte: perms 0600, no chown, no expected mode
  Write(t, "string-spsc-64", std::string(1, '\0') +
                                 NamedSegment<std::string>(spsc, RingMode::kSpsc));
  Write(t, "string-mpmc-128-two-records",
        std::string(1, '\0') + NamedSegment<std::string>(mpmc, RingMode::kMpmc));
  Write(t, "int64-mpmc-128-expect-mpmc",
        std::string(1, 2 << 3) + NamedSegment<int64_t>(mpmc, RingMode::kMpmc));
  Write(t, "string-mpmc-expect-spsc",
        std::string(1, 1 << 3) + NamedSegment<std::string>(mpmc, RingMode::kMpmc));
  Write(t, "string-spsc-0666-nobody",
        std::string(1, 3 | 4) + NamedSegment<std::string>(spsc, RingMode::kSpsc));
  std::string lying = NamedSegment<std::string>(mpmc, RingMode::kSpsc);
  Write(t, "header-mode-differs-from-ring", std::string(1, '\0') + lying);
  Write(t, "header-only", std::string(1, '\0') +
                              NamedSegment<std::string>(spsc, RingMode::kSpsc)
                                  .substr(0, mp::SegmentHeader::kSize));
}

void RingCorpus() {
  const char* t = "ring_fuzz";
  Write(t, "spsc-64-empty", RingSeed(64, RingMode::kSpsc).bytes());

  RingSeed three(128, RingMode::kMpmc);
  three.Push("a");
  three.Push("hello, ring");
  three.Push("");
  const std::string base = three.bytes();
  Write(t, "mpmc-128-three-records", base);

  // 48-byte records in a 128-byte ring: the third needs a pad record first.
  RingSeed pad(128, RingMode::kSpsc);
  const std::string forty(40, 'p');
  pad.Push(forty);
  pad.Push(forty);
  pad.Pop();
  pad.Pop();
  pad.Push(forty);
  Write(t, "spsc-128-pad-then-record", pad.bytes());

  RingSeed full(256, RingMode::kMpmc);
  for (int i = 0; full.TryPush(std::string(static_cast<size_t>(i % 30), 'f'));)
    ++i;
  Write(t, "mpmc-256-full", full.bytes());

  RingSeed closed(256, RingMode::kSpsc);
  closed.Push("last words");
  closed.Push("and more");
  closed.Close();
  Write(t, "spsc-256-closed-with-records", closed.bytes());

  // Many laps: head and tail far from zero.
  RingSeed laps(1024, RingMode::kMpmc);
  for (int i = 0; i < 500; ++i) {
    laps.Push(std::string(static_cast<size_t>(i % 50), 'l'));
    laps.Pop();
  }
  laps.Push("x");
  laps.Push(std::string(200, 'y'));
  laps.Push("z");
  Write(t, "mpmc-1024-after-500-laps", laps.bytes());

  // Locks left by dead holders.
  std::string dead = base;
  Put<uint32_t>(dead, kProducerLockAt, kDeadTid);
  Put<uint32_t>(dead, kConsumerLockAt, kDeadTid | 0x80000000u);
  Write(t, "mpmc-128-locks-of-dead-holders", dead);
  // A claim published by a producer that died before committing it: the
  // three records (48 bytes), then 16 claimed bytes; consumers skip them
  // and count one lost record.
  for (RingMode mode : {RingMode::kMpmc, RingMode::kSpsc}) {
    std::string claim = base;
    Put<uint32_t>(claim, kModeAt, static_cast<uint32_t>(mode));
    Put<uint64_t>(claim, kDataAt + 48,
                  mp::queue_internal::RecordHeader::Claim(kDeadTid, 5));
    Put<uint64_t>(claim, kTailAt, 64);
    Write(t,
          mode == RingMode::kMpmc ? "mpmc-128-claim-of-dead-producer"
                                  : "spsc-128-claim-of-dead-producer",
          claim);
  }
  // The same claim, by a live producer (pid 1 is always there), in a closed
  // ring: consumers wait for its commit until their deadline, and a close
  // must not turn that wait into a loop.
  for (RingMode mode : {RingMode::kMpmc, RingMode::kSpsc}) {
    RingSeed closed_three(128, mode);
    closed_three.Push("a");
    closed_three.Push("hello, ring");
    closed_three.Push("");
    closed_three.Close();
    std::string claim = closed_three.bytes();
    Put<uint64_t>(claim, kDataAt + 48,
                  mp::queue_internal::RecordHeader::Claim(1, 5));
    Put<uint64_t>(claim, kTailAt, 64);
    Write(t,
          mode == RingMode::kMpmc ? "mpmc-128-closed-claim-of-live-producer"
                                  : "spsc-128-closed-claim-of-live-producer",
          claim);
  }
  // Locks with the waiters bit and no holder: free locks.
  std::string waiters = base;
  Put<uint32_t>(waiters, kProducerLockAt, 0x80000000u);
  Put<uint32_t>(waiters, kConsumerLockAt, 0x80000000u);
  Write(t, "mpmc-128-locks-waiters-bit-no-holder", waiters);
  // Locks with the waiters flag up and no holder: the next unlock wakes.
  std::string flag = base;
  Put<uint32_t>(flag, kProducerLockAt + 4, 1);
  Put<uint32_t>(flag, kConsumerLockAt + 4, 1);
  Write(t, "mpmc-128-locks-waiters-flag-up", flag);

  // Corrupt headers and indices: Attach must refuse each.
  auto corrupt = [&](const char* name, auto patch) {
    std::string s = base;
    patch(s);
    Write(t, std::string("corrupt-") + name, s);
  };
  corrupt("magic", [](std::string& s) { s[kMagicAt] ^= 1; });
  corrupt("version", [](std::string& s) { Put<uint32_t>(s, kVersionAt, 2); });
  corrupt("mode", [](std::string& s) { Put<uint32_t>(s, kModeAt, 3); });
  corrupt("capacity-not-power-of-two",
          [](std::string& s) { Put<uint64_t>(s, kCapacityAt, 96); });
  corrupt("capacity-beyond-segment", [](std::string& s) {
    Put<uint64_t>(s, kCapacityAt, 256);
    Put<uint64_t>(s, kMaskAt, 255);
  });
  corrupt("mask", [](std::string& s) { Put<uint64_t>(s, kMaskAt, 63); });
  corrupt("head-after-tail",
          [](std::string& s) { Put<uint64_t>(s, kHeadAt, 200); });
  corrupt("tail-laps-head",
          [](std::string& s) { Put<uint64_t>(s, kTailAt, 136); });
  corrupt("tail-unaligned",
          [](std::string& s) { Put<uint64_t>(s, kTailAt, 41); });
  // A cached head ahead of the real one: a producer would overwrite unread
  // records.
  corrupt("head-cache-ahead",
          [](std::string& s) { Put<uint64_t>(s, kHeadCacheAt, 16); });
  // The first record's header (data area, offset 0): length and state.
  corrupt("record-length", [](std::string& s) {
    Put<uint32_t>(s, kDataAt, 0xfffffff0u);
  });
  corrupt("record-state", [](std::string& s) {
    Put<uint32_t>(s, kDataAt + 4, 0x12345678u);
  });
  corrupt("truncated", [](std::string& s) { s.resize(300); });
}

// ---- arena_fuzz: arena segments ---------------------------------------------

// Offsets in a SharedArena, from shared_arena.h: magic u64, version u32,
// reserved u32, size u64, bump u64, then the free-list heads (generation
// << 32 | block index); in a block header (shared_arena.cc), the free-list
// link is at +16.
constexpr size_t kArenaSizeAt = 16, kArenaBumpAt = 24, kArenaHeadsAt = 32,
                 kBlockNextAt = 16;

void ArenaCorpus() {
  const char* t = "arena_fuzz";
  {
    AlignedBytes b(nullptr, 0, 4096);
    Check(mp::SharedArena::Format(b.data(), b.size()).ok(), "format");
    Write(t, "arena-4096-fresh", std::string(b.data(), b.size()));
  }
  std::string used;
  uint64_t freed_block = 0;  // offset of the freed block's header
  {
    AlignedBytes b(nullptr, 0, 4096);
    mp::SharedArena* a = mp::SharedArena::Format(b.data(), b.size()).value();
    void* x = a->Allocate(100);
    void* y = a->Allocate(500);  // class 2: 512-byte blocks
    void* z = a->Allocate(64);
    Check(x && y && z, "allocate");
    a->Deallocate(y);
    freed_block = a->OffsetOf(y) - 64;
    used.assign(b.data(), b.size());
    Write(t, "arena-4096-three-blocks-one-freed", used);
  }
  {
    AlignedBytes b(nullptr, 0, 8192);
    mp::SharedArena* a = mp::SharedArena::Format(b.data(), b.size()).value();
    std::vector<void*> blocks;
    for (size_t s : {1, 64, 65, 200, 300, 1000, 10, 2000}) {
      void* p = a->Allocate(s);
      Check(p != nullptr, "allocate");
      blocks.push_back(p);
    }
    for (size_t i = 0; i < blocks.size(); i += 2) a->Deallocate(blocks[i]);
    Write(t, "arena-8192-free-lists", std::string(b.data(), b.size()));
  }
  auto corrupt = [&](const char* name, auto patch) {
    std::string s = used;
    patch(s);
    Write(t, std::string("corrupt-") + name, s);
  };
  corrupt("magic", [](std::string& s) { s[0] ^= 1; });
  corrupt("version", [](std::string& s) { Put<uint32_t>(s, 8, 9); });
  corrupt("size-beyond-mapping",
          [](std::string& s) { Put<uint64_t>(s, kArenaSizeAt, 1 << 20); });
  corrupt("bump-unaligned",
          [](std::string& s) { Put<uint64_t>(s, kArenaBumpAt, 1000); });
  corrupt("bump-beyond-size",
          [](std::string& s) { Put<uint64_t>(s, kArenaBumpAt, 8192); });
  // Free lists: a head outside the arena (Attach refuses it); links deeper
  // down that Attach cannot see: out of range, to the block itself, and a
  // head naming a block of another class (Allocate must refuse them).
  corrupt("free-head-out-of-range", [](std::string& s) {
    Put<uint64_t>(s, kArenaHeadsAt + 8 * 2, uint64_t{1} << 32 | 1000);
  });
  const uint64_t freed_index = freed_block / 64;
  corrupt("free-link-out-of-range", [&](std::string& s) {
    Put<uint64_t>(s, freed_block + kBlockNextAt, 1000);
  });
  corrupt("free-link-to-itself", [&](std::string& s) {
    Put<uint64_t>(s, freed_block + kBlockNextAt, freed_index);
  });
  corrupt("free-head-wrong-class", [&](std::string& s) {
    Put<uint64_t>(s, kArenaHeadsAt, uint64_t{1} << 32 | freed_index);
  });
}

// ---- sync_fuzz: resident sync objects and operations ------------------------

template <class T>
void SyncSeed(const char* name, uint8_t selector, const T& object,
              const std::string& ops) {
  std::string s(1, static_cast<char>(selector));
  s += BytesOf(object);
  s += ops;
  Write("sync_fuzz", name, s);
}

std::string Ops(std::initializer_list<int> ops) {
  std::string s;
  for (int o : ops) s.push_back(static_cast<char>(o));
  return s;
}

void SyncCorpus() {
  using namespace mp::fuzz;  // NOLINT: the selector names
  constexpr uint8_t kTiny = kTinyWait;
  // Lock ops (op % 4): 0 TryAcquire, 1 Acquire, 2 Release, 3 look.
  const mp::ResidentLock lock;
  const std::string lock_ops = Ops({0, 3, 2, 1 | kTiny, 0, 2, 2, 3});
  SyncSeed("lock-free", kLockType, lock, lock_ops);
  SyncSeed("lock-free-fallback", kLockType | kNoRobustList, lock, lock_ops);
  std::string died = BytesOf(lock);
  Put<uint32_t>(died, 0, mp::sync_internal::kOwnerDied);
  Write("sync_fuzz", "lock-owner-died",
        std::string(1, kLockType) + died + lock_ops);
  std::string dead = BytesOf(lock);
  Put<uint32_t>(dead, 0, kDeadTid | mp::sync_internal::kWaiters);
  Write("sync_fuzz", "lock-held-by-dead-tid",
        std::string(1, kLockType) + dead + lock_ops);
  Write("sync_fuzz", "lock-held-by-dead-tid-fallback",
        std::string(1, kLockType | kNoRobustList) + dead + lock_ops);

  // RLock ops (op % 3): 0 Acquire, 1 Release, 2 look.
  const mp::ResidentRLock rlock;
  SyncSeed("rlock-nested", kRLockType, rlock, Ops({0, 0, 0, 2, 1, 1, 1, 1}));

  // Condition ops (op % 5): 0 take the lock, 1 release it, 2 Notify(next
  // byte), 3 NotifyAll, 4 Wait.
  const mp::ResidentCondition cond;
  const std::string cond_ops = Ops({4, 0, 2, 1, 4, 4 | kTiny, 3, 1, 2, 3});
  SyncSeed("condition-over-lock", kConditionOverLock, cond, cond_ops);
  SyncSeed("condition-over-rlock", kConditionOverRLock, cond, cond_ops);
  std::string waited = BytesOf(cond);
  Put<uint32_t>(waited, 0, 0xffffffffu);  // seq about to wrap
  Put<uint32_t>(waited, 4, 2);            // two waiters (dead ones)
  Put<uint32_t>(waited, 8, 1);            // one signal not yet taken
  Write("sync_fuzz", "condition-stale-counts",
        std::string(1, kConditionOverLock) + waited + cond_ops);

  // Event ops (op % 4): 0 Set, 1 Clear, 2 Wait, 3 look.
  mp::ResidentEvent event;
  const std::string event_ops = Ops({2, 0, 2, 1, 2 | kTiny, 3, 0});
  SyncSeed("event-clear", kEventType, event, event_ops);
  event.Set();
  SyncSeed("event-set", kEventType, event, event_ops);

  // Semaphore ops (op % 3): 0 acquire (bit 6: TryAcquire), 1 Release(next
  // byte as int8), 2 look.
  const std::string sem_ops =
      Ops({0, 0x40, 0 | kTiny, 0, 1, 1, 1, 0xff, 1, 0, 1, 127, 2});
  SyncSeed("semaphore-2", kSemaphoreType, mp::ResidentSemaphore(2, INT_MAX),
           sem_ops);
  SyncSeed("bounded-semaphore-1", kSemaphoreType, mp::ResidentSemaphore(1, 1),
           sem_ops);
  SyncSeed("semaphore-near-max", kSemaphoreType,
           mp::ResidentSemaphore(INT_MAX - 3, INT_MAX), sem_ops);

  // Barrier ops (op % 4): 0 Wait, 1 Abort, 2 Reset, 3 look.
  const std::string barrier_ops = Ops({3, 0, 0 | kTiny, 2, 0, 1, 0, 2, 3});
  SyncSeed("barrier-1", kBarrierType, mp::ResidentBarrier(1), barrier_ops);
  SyncSeed("barrier-3", kBarrierType, mp::ResidentBarrier(3), barrier_ops);

  // PidLock ops (op % 2): 0 Lock, 1 Unlock.
  const mp::queue_internal::PidLock pid_lock;
  const std::string pid_ops = Ops({0, 1, 0 | kTiny, 0, 1, 1});
  SyncSeed("pidlock-free", kPidLockType, pid_lock, pid_ops);
  SyncSeed("pidlock-dead-holder", kPidLockType,
           mp::queue_internal::PidLock{kDeadTid}, pid_ops);
}

// ---- codec_fuzz: encodings of every type ------------------------------------

template <size_t I>
void CodecSeeds() {
  using T = std::tuple_element_t<I, mp::fuzz::CodecTypes>;
  int j = 0;
  for (const T& v : mp::fuzz::Samples<T>()) {
    std::string bytes;
    mp::EncodeMessage(v, &bytes);
    char name[64];
    std::snprintf(name, sizeof(name), "type%02zu-sample%d", I, j++);
    Write("codec_fuzz", name, std::string(1, static_cast<char>(I)) + bytes);
  }
}

template <size_t... I>
void AllCodecSeeds(std::index_sequence<I...>) {
  (CodecSeeds<I>(), ...);
}

void CodecCorpus() {
  AllCodecSeeds(std::make_index_sequence<mp::fuzz::kCodecTypes>{});
  // Malformed: a string longer than the message, a vector count far beyond
  // it, trailing bytes, a short integer.
  using mp::fuzz::CodecIndexOf;
  const char kString = static_cast<char>(CodecIndexOf<std::string>());
  const char kVectorOfStrings =
      static_cast<char>(CodecIndexOf<std::vector<std::string>>());
  const char kInt32 = static_cast<char>(CodecIndexOf<int32_t>());
  std::string s(1, kString);
  s += BytesOf<uint64_t>(1000) + "short";
  Write("codec_fuzz", "bad-string-length", s);
  std::string v(1, kVectorOfStrings);
  v += BytesOf<uint64_t>(uint64_t{1} << 60);
  Write("codec_fuzz", "bad-vector-count", v);
  std::string tr(1, kInt32);
  tr += BytesOf<int32_t>(5) + "x";
  Write("codec_fuzz", "trailing-byte", tr);
  Write("codec_fuzz", "short-int", std::string(1, kInt32) + "ab");
  // How an optional<int32_t> used to travel (its raw bytes) with a flag of
  // 2: a bool that is no bool, once accepted as is.
  std::string raw_optional(
      1, static_cast<char>(CodecIndexOf<std::optional<int32_t>>()));
  raw_optional += BytesOf<int32_t>(5) + std::string("\x02\0\0\0", 4);
  Write("codec_fuzz", "corrupt-raw-optional-flag-2", raw_optional);
}

// ---- frame_fuzz: byte streams of frames -------------------------------------

// What Connection::SendBytes puts on the wire for `messages`.
std::string Frames(const std::vector<std::string>& messages) {
  auto [reader, writer] = mp::Pipe();
  for (const std::string& m : messages) Check(writer.SendBytes(m).ok(), "send");
  writer.Close();
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t r = read(reader.fileno(), buf, sizeof(buf));
    Check(r >= 0, "read");
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

void FrameCorpus() {
  const char* t = "frame_fuzz";
  // The first byte: the receive buffer size (mode % 24) and the order of the
  // receive calls (mode / 24).
  auto seed = [&](const char* name, char mode, const std::string& stream) {
    Write(t, name, std::string(1, mode) + stream);
  };
  seed("empty-stream", 0, "");
  seed("one-frame", 8, Frames({"hello"}));
  seed("three-frames", 24 + 4, Frames({"a", "", std::string(40, 'b')}));
  std::string encoded;
  mp::EncodeMessage(std::string("a string message"), &encoded);
  seed("string-messages", 48, Frames({encoded, "not a string"}));
  const std::string two = Frames({"whole", "cut short"});
  seed("cut-in-body", 5, two.substr(0, two.size() - 3));
  seed("cut-in-length", 5, two.substr(0, 4 + 5 + 2));
  // PipeQueue's end-of-stream marker; over a Connection, a 4 GiB length
  // with nothing after it.
  std::string eos = Frames({"before the end"});
  eos += BytesOf<uint32_t>(mp::queue_internal::kEndOfStream);
  seed("end-of-stream-marker", 30, eos);
}

}  // namespace

// ---- segment_fuzz: whole /dev/shm files as mpctl reads them ---------------

// The common header for `kind`, with the creator fields zeroed (no pid or
// start time of this run ends up in a seed).
std::string SegmentHeaderFor(mp::SegmentKind kind, uint32_t version,
                             uint32_t flags, uint64_t tag, uint32_t type_size,
                             uint64_t data_bytes) {
  std::string h(mp::SegmentHeader::kSize, '\0');
  mp::WriteSegmentHeader(h.data(), kind, version, flags, tag, type_size,
                         data_bytes);
  Put<uint32_t>(h, offsetof(mp::SegmentHeader, creator_pid), 0);
  Put<uint64_t>(h, offsetof(mp::SegmentHeader, creator_start), 0);
  return h;
}

template <class T>
std::string SyncSegment(mp::SegmentKind kind, const T& object) {
  return SegmentHeaderFor(kind, mp::sync_internal::KnownSyncVersion(), 0, 0,
                          sizeof(T), sizeof(T)) +
         BytesOf(object);
}

void SegmentCorpus() {
  const char* t = "segment_fuzz";
  RingSeed spsc(256, RingMode::kSpsc);
  spsc.Push("one");
  spsc.Push(std::string(40, 'x'));
  const std::string q =
      SegmentHeaderFor(mp::SegmentKind::kQueue, Ring::kVersion,
                       static_cast<uint32_t>(RingMode::kSpsc), 0, 0,
                       Ring::BytesFor(256)) +
      spsc.bytes();
  Write(t, "queue-spsc-256-two-records", q);
  RingSeed mpmc(128, RingMode::kMpmc);
  mpmc.Push("abc");
  mpmc.Close();
  Write(t, "queue-mpmc-128-closed",
        SegmentHeaderFor(mp::SegmentKind::kQueue, Ring::kVersion,
                         static_cast<uint32_t>(RingMode::kMpmc), 0, 0,
                         Ring::BytesFor(128)) +
            mpmc.bytes());
  mp::ResidentLock lock;
  Write(t, "lock", SyncSegment(mp::SegmentKind::kLock, lock));
  mp::ResidentRLock rlock;
  Write(t, "rlock", SyncSegment(mp::SegmentKind::kLock, rlock));
  mp::ResidentEvent event;
  event.Set();
  Write(t, "event-set", SyncSegment(mp::SegmentKind::kEvent, event));
  mp::ResidentSemaphore sem(2, 5);
  Write(t, "semaphore-bounded", SyncSegment(mp::SegmentKind::kSemaphore, sem));
  Write(t, "condition",
        SegmentHeaderFor(mp::SegmentKind::kCondition,
                         mp::sync_internal::KnownSyncVersion(), 0, 0, 64, 64) +
            std::string(64, '\0'));

  // Corrupt variants, at the places segment_header.h and ring.h name.
  std::string s = q;
  Put<uint32_t>(s, offsetof(mp::SegmentHeader, header_size), 63);
  Write(t, "corrupt-header-size", s);
  s = q;
  Put<uint64_t>(s, offsetof(mp::SegmentHeader, data_bytes), ~uint64_t{0});
  Write(t, "corrupt-data-bytes", s);
  Write(t, "corrupt-truncated", q.substr(0, 100));
  s = q;
  Put<uint64_t>(s, mp::SegmentHeader::kSize + kHeadAt, 4096);
  Write(t, "corrupt-head-after-tail", s);
  s = q;
  Put<uint64_t>(s, mp::SegmentHeader::kSize + kCapacityAt, 1 << 20);
  Write(t, "corrupt-capacity", s);
  s = q;
  Put<uint64_t>(s, mp::SegmentHeader::kSize + kMagicAt, 0);
  Write(t, "corrupt-ring-magic", s);
  s = SyncSegment(mp::SegmentKind::kLock, lock);
  Put<uint32_t>(s, offsetof(mp::SegmentHeader, type_size), 41);
  Write(t, "corrupt-lock-size", s);
  Write(t, "foreign-text", "hello, not a segment\n");
  Write(t, "foreign-empty", "");
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR (fuzz/corpus)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  RingCorpus();
  OpenCorpus();
  ArenaCorpus();
  SyncCorpus();
  CodecCorpus();
  FrameCorpus();
  SegmentCorpus();
  std::printf("make_corpus: wrote the seed corpora under %s\n", argv[1]);
  return 0;
}
