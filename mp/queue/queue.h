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
// Capacity: `maxsize` is the ring's capacity in BYTES (rounded up to a power
// of two, at least 64), not in messages: messages vary in size. Each message
// costs its encoded size plus an 8-byte header, rounded up to 8 bytes; the
// largest message is capacity - 8 bytes, and it fits whenever the queue
// holds no messages (except in kSpsc mode, where a message over half the
// capacity may first need the consumer to skip the end of the ring's lap: a
// Put with no consumer running then waits for one). maxsize <= 0 (Python's
// "unbounded") gives kDefaultCapacity (1 MiB): a put then blocks only when
// 1 MiB of messages is waiting.
//
// Status codes, the same for every queue in this package:
//   OK
//   DeadlineExceeded   Get: still empty at the timeout (block=false: at once)
//                      -- Python's queue.Empty.
//   ResourceExhausted  Put: still full at the timeout -- Python's queue.Full.
//   FailedPrecondition Put after Close() -- Python's "Queue is closed".
//   OutOfRange         Get on a closed queue once it is drained: the end of
//                      the stream (use it instead of poison pills).
//   InvalidArgument    a message larger than the ring; the queue is unchanged.
//   DataLoss           a message that does not decode, or a corrupt ring.
// IsEmpty(status) / IsFull(status) / IsClosed(status) name them.
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

struct QueueOptions {
  // Ring capacity in bytes; <= 0: kDefaultCapacity.
  long maxsize = 0;
  // kMpmc (default): any number of producers and consumers, crash-safe as
  // described in ring.h. kSpsc: exactly one producer and one consumer at a
  // time, no lock on either side. A named kSpsc queue checks it per process:
  // the first Put (Get) of a process makes it the producer (consumer); a
  // Put (Get) from another process while that one lives is
  // FailedPrecondition, and a dead one's side is taken over. An anonymous
  // queue's processes are the program's own: not checked.
  queue_internal::RingMode mode = queue_internal::RingMode::kMpmc;
  // Permissions of a named queue's segment.
  mode_t permissions = 0600;
};

namespace queue_internal {

inline constexpr size_t kDefaultCapacity = size_t{1} << 20;

// The mapping and the ring in it, shared by every copy of a handle.
struct QueueState {
  SharedMemory memory;
  // This process's view of the ring: geometry copied at Create/Open.
  RingView ring;
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
  // A named queue: its file can be truncated under us (see "Named queues"
  // above); Put and Get check the mapping's truncation mark afterwards.
  bool named = false;
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

absl::StatusOr<std::shared_ptr<QueueState>> MakeAnonymousQueue(
    const QueueOptions& options);
// A named queue's segment: the common SegmentHeader (mp/core/segment_header.h:
// kind kQueue, version Ring::kVersion, flags the RingMode, type_tag and
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
    const ElementType& type, std::optional<RingMode> mode);

// Per-thread scratch for encoding and decoding.
std::string& EncodeBuffer();
std::string& DecodeBuffer();

inline Deadline ToDeadline(bool block, std::optional<double> timeout) {
  if (!block) return Deadline::Past();
  if (!timeout) return Deadline::Infinite();
  return Deadline::AfterSeconds(*timeout);
}

}  // namespace queue_internal

template <class T>
class Queue {
 public:
  static constexpr size_t kDefaultCapacity = queue_internal::kDefaultCapacity;

  // A new anonymous queue whose ring holds `maxsize` bytes (see above).
  // Throws std::bad_alloc if the mapping cannot be made.
  explicit Queue(long maxsize = 0) : Queue(QueueOptions{.maxsize = maxsize}) {}
  explicit Queue(const QueueOptions& options) {
    auto st = queue_internal::MakeAnonymousQueue(options);
    if (!st.ok()) throw std::bad_alloc();
    state_ = *std::move(st);
  }

  // Named queues, reachable by unrelated processes. Create: AlreadyExists
  // when the name is taken (O_EXCL, mode options.permissions). Open:
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
      std::optional<queue_internal::RingMode> mode = std::nullopt) {
    auto st = queue_internal::OpenNamedQueue(
        name, access, queue_internal::ElementTypeOf<T>(), mode);
    if (!st.ok()) return st.status();
    return Queue(*std::move(st));
  }
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }

  // Python's put(obj, block=True, timeout=None): timeout in seconds, nullopt
  // waits forever; block=false fails at once when full. See the status table.
  absl::Status Put(const T& value, bool block = true,
                   std::optional<double> timeout = std::nullopt) {
    return Put(value, queue_internal::ToDeadline(block, timeout));
  }
  absl::Status Put(const T& value, Deadline deadline) {
    if (__builtin_expect(state_->check_spsc, false)) {
      if (absl::Status s = queue_internal::CheckSpscSide(*state_, true);
          !s.ok()) {
        return s;
      }
    }
    absl::Status s;
    if constexpr (CodecCopiesBytes<T>) {
      s = ring()->Push(&value, sizeof(T), deadline);
    } else {
      std::string& buf = queue_internal::EncodeBuffer();
      EncodeMessage(value, &buf);
      s = ring()->Push(buf.data(), buf.size(), deadline);
    }
    if (__builtin_expect(state_->named, false) && ring()->Truncated()) {
      return queue_internal::RingView::TruncatedError();
    }
    return s;
  }
  absl::Status PutNowait(const T& value) { return Put(value, false); }

  // Python's get(block=True, timeout=None). See the status table.
  absl::StatusOr<T> Get(bool block = true,
                        std::optional<double> timeout = std::nullopt) {
    return Get(queue_internal::ToDeadline(block, timeout));
  }
  absl::StatusOr<T> Get(Deadline deadline) {
    return GetFor(deadline, queue_internal::Ring::kNoSlot);
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
  // True when fewer than a minimal record's bytes are free.
  bool full() const {
    return ring()->BytesUsedApprox() + sizeof(queue_internal::RecordHeader) >=
           ring()->capacity();
  }

  // Ends the stream, for every handle in every process: later puts fail with
  // FailedPrecondition, gets drain what is left and then return OutOfRange;
  // sleepers on either side wake. Idempotent. (Unlike Python's close(), it
  // is not local to this handle: it is the end-of-stream marker.)
  void Close() { ring()->Close(); }
  bool closed() const { return ring()->closed(); }
  // No feeder thread: nothing to join or cancel.
  void JoinThread() {}
  void CancelJoinThread() {}

  // Messages lost because their producer was killed while writing them,
  // counted when a consumer skips them (exactly once, whoever dies when).
  uint64_t lost_records() const { return ring()->lost_records(); }
  // Poison messages: records of the wrong size for a trivially copyable T,
  // or that the codec could not decode (an error or an exception other
  // than bad_alloc). Each is handed to one Get as DataLoss (or as the
  // codec's exception), then dropped: never left at the head of the queue.
  // Not counted in lost_records().
  uint64_t corrupt_records() const { return ring()->corrupt_records(); }
  size_t capacity() const { return ring()->capacity(); }
  size_t max_message_bytes() const { return ring()->max_message(); }

 protected:
  explicit Queue(std::shared_ptr<queue_internal::QueueState> s)
      : state_(std::move(s)) {}
  queue_internal::RingView* ring() const { return &state_->ring; }
  queue_internal::QueueState& state() const { return *state_; }

  // Get, the record counted as taken by task slot `taker` (JoinableQueue).
  absl::StatusOr<T> GetFor(Deadline deadline, uint32_t taker) {
    absl::StatusOr<T> v = GetUnchecked(deadline, taker);
    if (__builtin_expect(state_->named, false) && ring()->Truncated()) {
      return queue_internal::RingView::TruncatedError();
    }
    return v;
  }
  absl::StatusOr<T> GetUnchecked(Deadline deadline, uint32_t taker) {
    if (__builtin_expect(state_->check_spsc, false)) {
      if (absl::Status s = queue_internal::CheckSpscSide(*state_, false);
          !s.ok()) {
        return s;
      }
    }
    if constexpr (CodecCopiesBytes<T> && std::is_default_constructible_v<T>) {
      T value;
      absl::Status s = ring()->Pop(
          [](void* ctx, const char* bytes, size_t n) -> absl::Status {
            if (n != sizeof(T)) {  // dropped by the ring, counted corrupt
              return absl::DataLossError("queue: message of the wrong size");
            }
            std::memcpy(ctx, bytes, n);
            return absl::OkStatus();
          },
          &value, deadline, taker);
      if (!s.ok()) return s;
      return value;
    } else {
      // Decoded straight from the ring, under the consumer lock: a record
      // that does not decode is dropped there and then (counted in
      // corrupt_records()). A codec that throws bad_alloc leaves the record
      // for the next Get; any other exception drops it as corrupt and is
      // rethrown here. Either way the lock is released.
      struct Decoding {
        T* value;
        std::exception_ptr thrown;
      };
      T value{};
      Decoding d{&value, nullptr};
      absl::Status s = ring()->Pop(
          [](void* ctx, const char* bytes, size_t n) -> absl::Status {
            auto* d = static_cast<Decoding*>(ctx);
            try {
              return DecodeMessage(bytes, n, d->value);
            } catch (const std::bad_alloc&) {
              throw;
            } catch (...) {
              d->thrown = std::current_exception();
              return absl::DataLossError("queue: the codec threw");
            }
          },
          &d, deadline, taker);
      if (d.thrown) std::rethrow_exception(d.thrown);
      if (!s.ok()) return s;
      return value;
    }
  }

 private:
  std::shared_ptr<queue_internal::QueueState> state_;
};

// A Queue whose consumers report each item done; Join() waits until every
// item put has been reported (Python's JoinableQueue).
//
// Tasks: an item is unfinished from the moment its Put claims room in the
// ring (a Put still blocked on a full queue counts nothing, as in Python)
// until a TaskDone matches it. An item whose producer died while writing it
// is finished once a consumer skips it (lost_records()), a poison item once
// a Get has reported it (corrupt_records()). The count lives in the ring,
// so a Put through a Queue<T>& that refers to this queue counts like any
// other.
//
// A consumer that dies between Get and TaskDone abandons its task: Join
// stops waiting for it and abandoned_tasks() counts it. (Takes and
// TaskDones are counted per process, in slots in the ring; a process is
// dead once its pid is gone, a zombie, or reused by a process of another
// start time. See "Tasks" in ring.h.) So Join returns once every task of a
// live process, and every item still in the queue, is done. TaskDone must
// come from the process that took the item, and the take must go through
// this JoinableQueue (a Get through a Queue<T>& is never abandoned).
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
  explicit JoinableQueue(long maxsize = 0) : Queue<T>(maxsize) {}
  explicit JoinableQueue(const QueueOptions& options) : Queue<T>(options) {}

  // As Queue::Get; the item is then this process's task until TaskDone.
  absl::StatusOr<T> Get(bool block = true,
                        std::optional<double> timeout = std::nullopt) {
    return Get(queue_internal::ToDeadline(block, timeout));
  }
  absl::StatusOr<T> Get(Deadline deadline) {
    absl::StatusOr<T> v =
        this->GetFor(deadline, queue_internal::TaskSlotFor(this->state()));
    if (v.ok()) MP_FAULT_POINT("queue.joinable.after_get");
    return v;
  }
  absl::StatusOr<T> GetNowait() { return Get(false); }

  // Marks one item done. InvalidArgument ("task_done() called too many
  // times", Python's ValueError) when TaskDones already match every item
  // put (abandoned tasks aside). Release: what the caller did
  // happens-before the return of a Join it lets go.
  absl::Status TaskDone() {
    return this->ring()->TaskDone(queue_internal::TaskSlotFor(this->state()));
  }

  // Blocks until nothing is unfinished. OK, or DeadlineExceeded.
  absl::Status Join(Deadline deadline = Deadline::Infinite()) {
    return this->ring()->JoinTasks(deadline);
  }

  // Items put and not yet done or abandoned: a racy snapshot.
  uint64_t unfinished_tasks() const { return this->ring()->UnfinishedTasks(); }
  // Tasks abandoned by consumers that died between Get and TaskDone.
  uint64_t abandoned_tasks() const { return this->ring()->AbandonedTasks(); }
};

// Python's SimpleQueue: put/get/empty/close, no size bound to speak of, no
// timeouts.
template <class T>
class SimpleQueue {
 public:
  SimpleQueue() = default;
  // Blocks while full. FailedPrecondition after Close; InvalidArgument when
  // the message is larger than the ring.
  absl::Status Put(const T& value) { return q_.Put(value); }
  // Blocks until a message arrives; OutOfRange once closed and drained.
  absl::StatusOr<T> Get() { return q_.Get(); }
  bool empty() const { return q_.empty(); }
  void Close() { q_.Close(); }

 private:
  Queue<T> q_;
};

}  // namespace mp

#endif  // MP_QUEUE_QUEUE_H_
