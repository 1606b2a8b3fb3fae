// mp/queue/queue.h
// -----------------------------------------------------------------------------
// Queue<T>, JoinableQueue<T>, SimpleQueue<T>: multiprocessing's queues over a
// lock-free byte ring in shared memory (internal/ring.h).
//
//   mp::Queue<int> q;                       // 1 MiB ring, any number of
//   mp::Process p([q]() mutable {           //   producers and consumers
//     MP_CHECK_OK(q.Put(42));
//   });
//   MP_CHECK_OK(p.Start());
//   absl::StatusOr<int> v = q.Get();        // 42
//
// Handles: a Queue is a handle to a ring in a MAP_SHARED mapping. Copies share
// the ring; a queue made before Process::Start() is usable in the child as
// is. The mapping goes when the last handle in the last process goes.
//
// Size: `maxsize` counts messages, as Python's: Queue(2) is full() after
// two puts and a third Put blocks until a Get takes one (exact with any
// number of producers in any number of processes; see "Item limit" in
// internal/ring.h). maxsize <= 0: unbounded in messages (Python). The bytes
// are a separate option, QueueOptions::capacity_bytes: the ring's size
// (rounded up to a power of two in [64 B, 1 GiB]; 0: kDefaultCapacity,
// 1 MiB). A small message costs its encoded size plus an 8-byte header,
// rounded up to 8 bytes, and a Put also waits while the ring has no room
// for it.
//
// Messages of any size: a message whose encoding is larger than
// side_threshold() -- the largest record the ring takes (capacity - 8
// bytes), or a quarter of the ring if that is larger than 64 KiB -- does
// not go through the ring: the producer writes it to a segment of its own
// in /dev/shm, named
//     mp-msg-<queue id, 16 hex digits>-<record position, 16 hex digits>
// (kSideSegmentPrefix), created O_EXCL with the queue's permissions and
// starting with the common segment header (mp/core/segment_header.h: kind
// kMessage, the producer's pid and start time, the element type's tag,
// data_bytes the message's size), and the ring carries a 32-byte reference
// flagged as one (a record a plain message can never be mistaken for). The
// consumer opens the segment, unlinks it at once, reads it with pread (a
// file someone truncates cannot raise SIGBUS), checks every size against
// the file and the reference (a hostile segment is DataLoss for that
// message, counted in corrupt_records()) and decodes it. Why a quarter
// and 64 KiB: above that the copy costs more than the segment's few
// system calls, and a ring then still holds four such messages in flight;
// below, the ring is faster. So only the machine's memory limits a message.
// The segment is made after the record is claimed (its name is the claim's
// position) and before it is committed: a producer killed in between
// leaves a claim that the consumer which skips it (counted in
// lost_records()) also uses to unlink the segment. A segment outlives its
// message only (1) while a dead producer's claim waits to be skipped, (2)
// when a consumer is killed between opening and unlinking it (the next
// consumer finds the same record and unlinks it), or (3) when the queue is
// dropped with big messages unread: then it stays in /dev/shm, recognisable
// by its prefix and header, for `mpctl gc` or the user to remove.
//
// Status codes, the same for every queue in this package:
//   OK
//   DeadlineExceeded   Get: still empty at the timeout (block=false: at once)
//                      -- Python's queue.Empty.
//   ResourceExhausted  Put: still full at the timeout (maxsize messages, or
//                      no room in the ring) -- Python's queue.Full; also a
//                      big message that /dev/shm has no room for (the
//                      claim is then counted in lost_records()).
//   FailedPrecondition Put after Close() -- Python's "Queue is closed".
//   OutOfRange         Get on a closed queue once it is drained: the end of
//                      the stream (use it instead of poison pills).
//   InvalidArgument    Make / constructors: an option out of range (named in
//                      the message). Not returned for a message's size.
//   DataLoss           a message that does not decode (or whose side segment
//                      is missing or malformed), or a corrupt ring.
// IsEmpty(status) / IsFull(status) / IsClosed(status) name them.
//
// Construction: Make(options) returns StatusOr; the constructors throw
// mp::Error (mp/core/error.h) carrying the status Make would return.
//
// Timeouts (the library's rule): Put, Get and JoinableQueue::Join take an
// mp::Deadline, any std::chrono::duration, or Python's form (block, timeout
// seconds; Join: timeout seconds).
//
// Memory ordering: everything a producer did before Put happens-before the
// return of the Get that takes its message.
//
// Messages: see codec.h. A value is encoded on Put and a new value decoded on
// Get; the queue never holds T objects, so nothing is destroyed in the ring.
//
// Crash safety: a producer or consumer SIGKILLed at any point never exposes
// a torn message, and never blocks the others for long. See ring.h for the
// mechanism; lost_records() counts messages that died with their producer.
// The counts stay exact whoever dies where: qsize() reads 0 on an empty
// queue, and a poison message (see corrupt_records()) is handed out once,
// then dropped.
//
// Named queues and other writers: a process that can write a named queue's
// /dev/shm file can make its operations fail, never make another process
// crash, hang or write outside the queue's mapping: geometry and mode are
// read once at Open, indices are bounds-checked, every wait re-checks the
// ring at least every 100 ms, an inconsistent ring is DataLoss for every
// Get (recreate the queue), a record with no knowable extent is skipped,
// counted in corrupt_records() and reported once as DataLoss, and
// lost_records() / corrupt_records() are clamped to what is possible.
// Truncating the file after Open: the next access to the lost pages would
// raise SIGBUS; mp catches it, the pages read as zeros in this
// process only, and the Put or Get in progress, and every one after it,
// returns DataLoss (see "Hostile writers" in internal/ring.h). Open's
// ownership and mode checks (SegmentAccess) keep strangers from doing it.
//
// There is no feeder thread (puts write the ring directly), so JoinThread()
// and CancelJoinThread() are no-ops kept for parity with Python.

#ifndef MP_QUEUE_QUEUE_H_
#define MP_QUEUE_QUEUE_H_

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/error.h"
#include "mp/core/futex.h"
#include "mp/core/segment_header.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/codec.h"
#include "mp/queue/internal/fault_points.h"
#include "mp/queue/internal/ring.h"

namespace mp {

inline bool IsEmpty(const absl::Status& s) {
  return s.code() == absl::StatusCode::kDeadlineExceeded;
}
inline bool IsFull(const absl::Status& s) {
  return s.code() == absl::StatusCode::kResourceExhausted;
}
inline bool IsClosed(const absl::Status& s) {
  return s.code() == absl::StatusCode::kOutOfRange ||
         s.code() == absl::StatusCode::kFailedPrecondition;
}

// kMpmc (default): any number of producers and consumers, crash-safe as
// described in internal/ring.h. kSpsc: exactly one producer and one
// consumer at a time, no lock on either side. A named kSpsc queue checks it
// per process: the first Put (Get) of a process makes it the producer
// (consumer); a Put (Get) from another process while that one lives is
// FailedPrecondition, and a dead one's side is taken over. An anonymous
// queue's processes are the program's own: not checked.
enum class QueueMode : uint32_t { kSpsc = 1, kMpmc = 2 };

struct QueueOptions {
  // The most messages the queue holds (Python's maxsize); <= 0: unbounded.
  long maxsize = 0;
  // The ring's size in bytes; 0: kDefaultCapacity (1 MiB). Rounded up to a
  // power of two, at least 64; more than 1 GiB is InvalidArgument.
  size_t capacity_bytes = 0;
  QueueMode mode = QueueMode::kMpmc;
  // Permissions of a named queue's segment, and of every queue's side
  // segments (big messages).
  mode_t permissions = 0600;
};

// The name prefix of the segments that carry big messages (see "Messages of
// any size" above).
inline constexpr char kSideSegmentPrefix[] = "mp-msg-";

namespace queue_internal {

inline constexpr size_t kDefaultCapacity = size_t{1} << 20;
static_assert(static_cast<uint32_t>(QueueMode::kSpsc) ==
                  static_cast<uint32_t>(RingMode::kSpsc) &&
              static_cast<uint32_t>(QueueMode::kMpmc) ==
                  static_cast<uint32_t>(RingMode::kMpmc));

// The mapping and the ring in it, shared by every copy of a handle.
struct QueueState {
  SharedMemory memory;
  // This process's view of the ring: geometry copied at Create/Open.
  RingView ring;
  // Messages whose encoding is longer go through a side segment.
  size_t side_threshold = 0;
  // Permissions of the side segments this process creates.
  mode_t permissions = 0600;
  // Named kSpsc queues: each side is one process at a time (see
  // RingView::ClaimSpscSide), checked on the first Put / Get of each
  // process and thread: the process that holds the side, and the last
  // thread that passed the check (a forked child's threads have other
  // tids, so a copy of this state checks again there).
  struct SpscSide {
    std::atomic<uint32_t> pid{0};
    std::atomic<uint32_t> tid{0};
  };
  // JoinableQueue: this process's task slot in the ring, as
  // pid << 32 | (slot + 1); another pid (a forked child) claims its own.
  std::atomic<uint64_t> task_slot{0};
  bool check_spsc = false;
  // A JoinableQueue's state: every Get, through any handle, counts its
  // take in the process's task slot.
  bool joinable = false;
  // A named queue: its file can be truncated under us (see "Named queues"
  // above); Put and Get check the mapping's truncation mark afterwards.
  bool named = false;
  // named || joinable: the one flag Put and Get test on their fast path;
  // the checks above run out of line, behind it.
  bool guarded = false;
  SpscSide producer;
  SpscSide consumer;
};

// Named kSpsc queues only (state.check_spsc): OK when the calling process
// may use `producer`'s side of `state`'s ring, FailedPrecondition when
// another live process holds that side. A call, one thread-local load and
// a compare once this thread has passed. Out of line: Put and Get of every
// other queue keep only the test of check_spsc (inlined, the check measured
// slower on the small-message SPSC benchmark).
absl::Status CheckSpscSide(QueueState& state, bool producer);

// The calling process's task slot for `state` (Ring::kNoSlot when none).
uint32_t TaskSlotFor(QueueState& state);

// InvalidArgument, naming the option, for options no queue can have.
absl::Status CheckOptions(const QueueOptions& options);

absl::StatusOr<std::shared_ptr<QueueState>> MakeAnonymousQueue(
    const QueueOptions& options);
// A named queue's segment: the common SegmentHeader (mp/core/segment_header.h:
// kind kQueue, version Ring::kVersion, flags the QueueMode, type_tag and
// type_size the element type's), then the ring, 64-byte aligned.
inline constexpr size_t kNamedRingOffset = SegmentHeader::kSize;

// What a named queue holds: a tag of the element type's name and its size
// when copied as is (0 when it goes through a codec).
struct ElementType {
  uint64_t tag;
  uint32_t size;
  const char* name;
};
template <class T>
ElementType ElementTypeOf() {
  return ElementType{TypeTag(typeid(T).name()),
                     CodecCopiesBytes<T> ? static_cast<uint32_t>(sizeof(T))
                                         : 0u,
                     typeid(T).name()};
}

absl::StatusOr<std::shared_ptr<QueueState>> CreateNamedQueue(
    std::string_view name, const QueueOptions& options,
    const ElementType& type);
absl::StatusOr<std::shared_ptr<QueueState>> OpenNamedQueue(
    std::string_view name, const SegmentAccess& access,
    const ElementType& type, std::optional<QueueMode> mode);

// The side channel (see "Messages of any size" above). A side segment:
//   SegmentHeader (kind kMessage, version kSideVersion, data_bytes n) | n bytes
// and the ring record that refers to it, kSideRefBytes long:
//   magic u64 | queue id u64 | record position u64 | n u64
inline constexpr uint32_t kSideVersion = 1;
inline constexpr size_t kSideRefBytes = 32;
// "/mp-msg-<queue id>-<position>", both as 16 hex digits.
std::string SideSegmentName(uint64_t queue_id, uint64_t pos);
// Puts the `n` bytes at `bytes` through a side segment.
absl::Status PutSide(QueueState& state, const char* bytes, size_t n,
                     const ElementType& type, Deadline deadline);
// The consumer's half, called by the ring under the consumer lock with the
// reference record (`ref`, `n` bytes) at position `pos`: opens the segment,
// unlinks it, checks it and reads the message into `*out` (`*out_n` bytes).
// DataLoss for a malformed reference or segment, or a missing one; throws
// bad_alloc when the message cannot be allocated.
absl::Status ReadSideMessage(const QueueState& state, const char* ref,
                             size_t n, uint64_t pos, const ElementType& type,
                             std::unique_ptr<char[]>* out, size_t* out_n);

// Per-thread scratch for encoding and decoding.
std::string& EncodeBuffer();
std::string& DecodeBuffer();

}  // namespace queue_internal

template <class T>
class Queue {
 public:
  static constexpr size_t kDefaultCapacity = queue_internal::kDefaultCapacity;

  // A new anonymous queue (see "Size" above). InvalidArgument for options
  // out of range (named in the message); ResourceExhausted when the
  // mapping cannot be made.
  static absl::StatusOr<Queue> Make(const QueueOptions& options = {}) {
    auto st = queue_internal::MakeAnonymousQueue(options);
    if (!st.ok()) return st.status();
    return Queue(*std::move(st));
  }
  // As Make; throw mp::Error carrying Make's status.
  explicit Queue(long maxsize = 0) : Queue(QueueOptions{.maxsize = maxsize}) {}
  explicit Queue(const QueueOptions& options)
      : state_(ValueOrThrow(queue_internal::MakeAnonymousQueue(options))) {}

  // Named queues, reachable by unrelated processes. Create: AlreadyExists
  // when the name is taken (O_EXCL, mode options.permissions);
  // InvalidArgument as Make. Open:
  // NotFound; PermissionDenied when the segment is not owned by the caller
  // (or by access.owner) or is open to more than access.permissions (0600)
  // allow, so a name squatted by another user is never used unawares;
  // FailedPrecondition for a symlink in place of the name; InvalidArgument
  // when the segment is not a queue of this T (another kind of segment,
  // another ring layout version, another element type: its tag and size are
  // in the segment's header) or, given `mode`, was created in another mode;
  // DataLoss when the segment is not a sane queue (bad magic, capacity or
  // indices). Unlink removes the name; open handles stay valid.
  static absl::StatusOr<Queue> Create(std::string_view name,
                                      const QueueOptions& options = {}) {
    auto st = queue_internal::CreateNamedQueue(
        name, options, queue_internal::ElementTypeOf<T>());
    if (!st.ok()) return st.status();
    return Queue(*std::move(st));
  }
  static absl::StatusOr<Queue> Open(
      std::string_view name, const SegmentAccess& access = {},
      std::optional<QueueMode> mode = std::nullopt) {
    auto st = queue_internal::OpenNamedQueue(
        name, access, queue_internal::ElementTypeOf<T>(), mode);
    if (!st.ok()) return st.status();
    return Queue(*std::move(st));
  }
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }

  // Puts `value` at the tail, waiting while the queue is full (maxsize
  // messages, or no room in the ring). See the status table.
  absl::Status Put(const T& value, Deadline deadline) {
    if (__builtin_expect(state_->guarded, false)) {
      return PutGuarded(value, deadline);
    }
    return PutUnguarded(value, deadline);
  }
  template <class Rep, class Period>
  absl::Status Put(const T& value, std::chrono::duration<Rep, Period> timeout) {
    return Put(value, Deadline::After(timeout));
  }
  // Python's put(obj, block=True, timeout=None): timeout in seconds, nullopt
  // waits forever; block=false fails at once when full.
  absl::Status Put(const T& value, bool block = true,
                   std::optional<double> timeout_seconds = std::nullopt) {
    return Put(value, Deadline::FromPython(block, timeout_seconds));
  }
  absl::Status PutNowait(const T& value) { return Put(value, false); }

 private:
  // Named queues: the kSpsc side check before, the truncation mark after.
  __attribute__((noinline)) absl::Status PutGuarded(const T& value,
                                                     Deadline deadline) {
    if (state_->check_spsc) {
      if (absl::Status s = queue_internal::CheckSpscSide(*state_, true);
          !s.ok()) {
        return s;
      }
    }
    absl::Status s = PutUnguarded(value, deadline);
    if (state_->named && ring()->Truncated()) {
      return queue_internal::RingView::TruncatedError();
    }
    return s;
  }
  absl::Status PutUnguarded(const T& value, Deadline deadline) {
    absl::Status s;
    if constexpr (CodecCopiesBytes<T>) {
      // A T no larger than the smallest ring's largest record never goes
      // aside: no compare at all.
      bool aside = false;
      if constexpr (sizeof(T) > queue_internal::Ring::kMinCapacity -
                                    sizeof(queue_internal::RecordHeader)) {
        aside = sizeof(T) > state_->side_threshold;
      }
      s = aside ? queue_internal::PutSide(
                      *state_, reinterpret_cast<const char*>(&value),
                      sizeof(T), queue_internal::ElementTypeOf<T>(), deadline)
                : ring()->Push(&value, sizeof(T), deadline);
    } else {
      std::string& buf = queue_internal::EncodeBuffer();
      EncodeMessage(value, &buf);
      if (__builtin_expect(buf.size() > state_->side_threshold, false)) {
        s = queue_internal::PutSide(*state_, buf.data(), buf.size(),
                                    queue_internal::ElementTypeOf<T>(),
                                    deadline);
        std::string().swap(buf);  // a big message's buffer is not kept
      } else {
        s = ring()->Push(buf.data(), buf.size(), deadline);
      }
    }
    return s;
  }

 public:

  // Takes the message at the head, waiting while the queue is empty. On a
  // JoinableQueue (through any handle to it, a Queue<T>& included) the
  // message is then the calling process's task until TaskDone. See the
  // status table.
  absl::StatusOr<T> Get(Deadline deadline) {
    if (__builtin_expect(state_->guarded, false)) return GetGuarded(deadline);
    return Take(deadline, queue_internal::Ring::kNoSlot);
  }
  template <class Rep, class Period>
  absl::StatusOr<T> Get(std::chrono::duration<Rep, Period> timeout) {
    return Get(Deadline::After(timeout));
  }
  // Python's get(block=True, timeout=None).
  absl::StatusOr<T> Get(bool block = true,
                        std::optional<double> timeout_seconds = std::nullopt) {
    return Get(Deadline::FromPython(block, timeout_seconds));
  }
  absl::StatusOr<T> GetNowait() { return Get(false); }

  // Messages waiting: a racy snapshot (Python's qsize(), named honestly):
  // messages put (or being put) and not yet taken, lost or dropped. Exact
  // while nobody is putting or getting, whoever died where: 0 on an empty
  // queue.
  size_t ApproxSize() const { return ring()->RecordsApprox(); }
  size_t qsize() const { return ApproxSize(); }
  // Racy snapshots as well.
  bool empty() const { return ring()->BytesUsedApprox() == 0; }
  // Python's full(): qsize() >= maxsize() on a bounded queue; on any queue,
  // also true when fewer than a minimal record's bytes are free in the ring
  // (a Put would wait).
  bool full() const {
    const uint64_t max = ring()->maxsize();
    if (max != 0 && ring()->RecordsApprox() >= max) return true;
    return ring()->BytesUsedApprox() + sizeof(queue_internal::RecordHeader) >=
           ring()->capacity();
  }
  // The item limit (0: unbounded), as given at creation.
  size_t maxsize() const { return ring()->maxsize(); }

  // Ends the stream, for every handle in every process: later puts fail with
  // FailedPrecondition, gets drain what is left and then return OutOfRange;
  // sleepers on either side wake. Idempotent. (Unlike Python's close(), it
  // is not local to this handle: it is the end-of-stream marker.)
  void Close() { ring()->Close(); }
  bool closed() const { return ring()->closed(); }
  // No feeder thread: nothing to join or cancel.
  void JoinThread() {}
  void CancelJoinThread() {}

  // Messages lost because their producer was killed while writing them
  // (or, for a big message, could not write its side segment), counted when
  // a consumer skips them (exactly once, whoever dies when).
  uint64_t lost_records() const { return ring()->lost_records(); }
  // Poison messages: records of the wrong size for a trivially copyable T,
  // that the codec could not decode (an error or an exception other
  // than bad_alloc), or big messages whose side segment was missing or
  // malformed. Each is handed to one Get as DataLoss (or as the codec's
  // exception), then dropped: never left at the head of the queue.
  // Not counted in lost_records().
  uint64_t corrupt_records() const { return ring()->corrupt_records(); }
  // The ring's size in bytes.
  size_t capacity() const { return ring()->capacity(); }
  // The largest message that goes through the ring itself.
  size_t max_message_bytes() const { return ring()->max_message(); }
  // Messages whose encoding is longer go through a side segment.
  size_t side_threshold() const { return state_->side_threshold; }
  // The name prefix (without '/') of this queue's side segments:
  // kSideSegmentPrefix, its id in 16 hex digits, '-'.
  std::string side_segment_prefix() const {
    return queue_internal::SideSegmentName(ring()->queue_id(), 0)
        .substr(1, sizeof(kSideSegmentPrefix) - 1 + 17);
  }

 protected:
  explicit Queue(std::shared_ptr<queue_internal::QueueState> s)
      : state_(std::move(s)) {}
  queue_internal::RingView* ring() const { return &state_->ring; }
  queue_internal::QueueState& state() const { return *state_; }

 private:
  // Copied as is when T allows; else through the codec.
  static constexpr bool kRaw =
      CodecCopiesBytes<T> && std::is_default_constructible_v<T>;

  struct Taking {
    T* value;
    std::exception_ptr thrown;
    const queue_internal::QueueState* state;
  };
  // The ring's sinks: the record's bytes into *value. Decoded straight from
  // the ring, under the consumer lock: a record that does not decode is
  // dropped there and then (counted in corrupt_records()). A codec that
  // throws bad_alloc leaves the record for the next Get; any other
  // exception drops it as corrupt and is rethrown by Take. Either way the
  // lock is released.
  static absl::Status TakeBytes(void* ctx, const char* bytes, size_t n) {
    auto* t = static_cast<Taking*>(ctx);
    if constexpr (kRaw) {
      if (n != sizeof(T)) {  // dropped by the ring, counted corrupt
        return absl::DataLossError("queue: message of the wrong size");
      }
      std::memcpy(static_cast<void*>(t->value), bytes, n);
      return absl::OkStatus();
    } else {
      try {
        return DecodeMessage(bytes, n, t->value);
      } catch (const std::bad_alloc&) {
        throw;
      } catch (...) {
        t->thrown = std::current_exception();
        return absl::DataLossError("queue: the codec threw");
      }
    }
  }
  // A big message: its segment is unlinked once opened, so the record
  // cannot be read twice; every failure, bad_alloc included, drops it
  // (counted corrupt) and an exception is rethrown by Take.
  static absl::Status TakeSide(void* ctx, const char* ref, size_t n,
                               uint64_t pos) {
    auto* t = static_cast<Taking*>(ctx);
    try {
      std::unique_ptr<char[]> bytes;
      size_t size = 0;
      absl::Status s = queue_internal::ReadSideMessage(
          *t->state, ref, n, pos, queue_internal::ElementTypeOf<T>(), &bytes,
          &size);
      if (!s.ok()) return s;
      if constexpr (kRaw) {
        if (size != sizeof(T)) {
          return absl::DataLossError("queue: message of the wrong size");
        }
        std::memcpy(static_cast<void*>(t->value), bytes.get(), size);
        return absl::OkStatus();
      } else {
        return DecodeMessage(bytes.get(), size, t->value);
      }
    } catch (...) {
      t->thrown = std::current_exception();
      return absl::DataLossError("queue: reading a big message threw");
    }
  }
  // Named or joinable queues: the kSpsc side check and the task slot
  // before, the truncation mark after.
  __attribute__((noinline)) absl::StatusOr<T> GetGuarded(Deadline deadline) {
    uint32_t taker = queue_internal::Ring::kNoSlot;
    if (state_->check_spsc) {
      if (absl::Status s = queue_internal::CheckSpscSide(*state_, false);
          !s.ok()) {
        return s;
      }
    }
    if (state_->joinable) taker = queue_internal::TaskSlotFor(*state_);
    absl::StatusOr<T> v = Take(deadline, taker);
    if (state_->named && ring()->Truncated()) {
      return queue_internal::RingView::TruncatedError();
    }
    if (taker != queue_internal::Ring::kNoSlot && v.ok()) {
      MP_FAULT_POINT("queue.joinable.after_get");
    }
    return v;
  }
  absl::StatusOr<T> Take(Deadline deadline, uint32_t taker) {
    if constexpr (kRaw) {
      T value;
      Taking t{&value, nullptr, state_.get()};
      absl::Status s =
          ring()->Pop(&TakeBytes, &t, deadline, taker, &TakeSide);
      if (t.thrown) std::rethrow_exception(t.thrown);
      if (!s.ok()) return s;
      return value;
    } else {
      T value{};
      Taking t{&value, nullptr, state_.get()};
      absl::Status s =
          ring()->Pop(&TakeBytes, &t, deadline, taker, &TakeSide);
      if (t.thrown) std::rethrow_exception(t.thrown);
      if (!s.ok()) return s;
      return value;
    }
  }

  std::shared_ptr<queue_internal::QueueState> state_;
};

// A Queue whose consumers report each item done; Join() waits until every
// item put has been reported (Python's JoinableQueue).
//
// Safe through the base: a JoinableQueue<T> is a Queue<T> that adds
// TaskDone, Join and the task counts, and hides nothing. Puts are counted
// in the ring (every data record claimed is a task), and every Get, through
// this handle or any Queue<T>& / Queue<T> copy of it (the state says it is
// joinable), counts its take in the calling process's task slot, so a
// consumer that dies holding an item taken either way is seen (abandoned).
//
// Tasks: an item is unfinished from the moment its Put claims room in the
// ring (a Put still blocked on a full queue counts nothing, as in Python)
// until a TaskDone matches it. An item whose producer died while writing it
// is finished once a consumer skips it (lost_records()), a poison item once
// a Get has reported it (corrupt_records()).
//
// A consumer that dies between Get and TaskDone abandons its task: Join
// stops waiting for it and abandoned_tasks() counts it. (Takes and
// TaskDones are counted per process, in slots in the ring; a process is
// dead once its pid is gone, a zombie, or reused by a process of another
// start time. See "Tasks" in ring.h.) So Join returns once every task of a
// live process, and every item still in the queue, is done. TaskDone must
// come from the process that took the item.
// An item still in the queue is never abandoned: a poison pill put for a
// consumer that has died stays unfinished until another consumer takes it,
// and Join waits for it, as Python's would (the seed producer/consumer
// example hangs that way when a consumer is killed; end the stream with
// Close() instead of pills, or let the survivors drain the pills).
//
// Crash safety: the counts stay exact whoever is killed at any instruction
// (see "Exact counts" in ring.h). Join sleeps in slices (20 ms) and counts
// again, so a loss or an abandonment that wakes nobody is seen.
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  static absl::StatusOr<JoinableQueue> Make(const QueueOptions& options = {}) {
    auto st = queue_internal::MakeAnonymousQueue(options);
    if (!st.ok()) return st.status();
    return JoinableQueue(*std::move(st));
  }
  // As Make; throw mp::Error carrying Make's status.
  explicit JoinableQueue(long maxsize = 0)
      : JoinableQueue(QueueOptions{.maxsize = maxsize}) {}
  explicit JoinableQueue(const QueueOptions& options)
      : JoinableQueue(
            ValueOrThrow(queue_internal::MakeAnonymousQueue(options))) {}

  // Marks one item done. InvalidArgument ("task_done() called too many
  // times", Python's ValueError) when TaskDones already match every item
  // put (abandoned tasks aside). Release: what the caller did
  // happens-before the return of a Join it lets go.
  absl::Status TaskDone() {
    return this->ring()->TaskDone(queue_internal::TaskSlotFor(this->state()));
  }

  // Blocks until nothing is unfinished. OK, or DeadlineExceeded.
  absl::Status Join(Deadline deadline) {
    return this->ring()->JoinTasks(deadline);
  }
  template <class Rep, class Period>
  absl::Status Join(std::chrono::duration<Rep, Period> timeout) {
    return Join(Deadline::After(timeout));
  }
  // Python's join() (which takes no timeout; nullopt waits for ever).
  absl::Status Join(std::optional<double> timeout_seconds = std::nullopt) {
    return Join(timeout_seconds ? Deadline::AfterSeconds(*timeout_seconds)
                                : Deadline::Infinite());
  }

  // Items put and not yet done or abandoned: a racy snapshot.
  uint64_t unfinished_tasks() const { return this->ring()->UnfinishedTasks(); }
  // Tasks abandoned by consumers that died between Get and TaskDone.
  uint64_t abandoned_tasks() const { return this->ring()->AbandonedTasks(); }

 private:
  explicit JoinableQueue(std::shared_ptr<queue_internal::QueueState> s)
      : Queue<T>(std::move(s)) {
    this->state().joinable = true;
    this->state().guarded = true;
  }
};

// Python's SimpleQueue: put/get/empty/close, unbounded, messages of any
// size, no timeouts.
template <class T>
class SimpleQueue {
 public:
  static absl::StatusOr<SimpleQueue> Make(const QueueOptions& options = {}) {
    absl::StatusOr<Queue<T>> q = Queue<T>::Make(options);
    if (!q.ok()) return q.status();
    return SimpleQueue(*std::move(q));
  }
  // As Make; throws mp::Error carrying Make's status.
  SimpleQueue() : q_(QueueOptions{}) {}
  explicit SimpleQueue(const QueueOptions& options) : q_(options) {}

  // Blocks while the ring is full. FailedPrecondition after Close.
  absl::Status Put(const T& value) { return q_.Put(value); }
  // Blocks until a message arrives; OutOfRange once closed and drained.
  absl::StatusOr<T> Get() { return q_.Get(); }
  bool empty() const { return q_.empty(); }
  // Python 3.9's close(); here it ends the stream for every handle (see
  // Queue::Close). Idempotent.
  void Close() { q_.Close(); }
  // Whether Close() was called (through any handle, in any process).
  bool closed() const { return q_.closed(); }

 private:
  explicit SimpleQueue(Queue<T> q) : q_(std::move(q)) {}
  Queue<T> q_;
};

}  // namespace mp

#endif  // MP_QUEUE_QUEUE_H_
