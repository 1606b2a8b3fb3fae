// mp/pool/pool.cc: the parent's handler and the worker loop (see pool.h,
// "Design").
#include "mp/pool/pool.h"

#include <cxxabi.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <thread>

#include "absl/strings/cord.h"
#include "mp/core/fence.h"
#include "mp/core/process.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"

namespace mp {

namespace {
constexpr char kExceptionTypeUrl[] = "mp.pool/exception_type";
}  // namespace

std::optional<std::string> PoolExceptionType(const absl::Status& status) {
  auto p = status.GetPayload(kExceptionTypeUrl);
  if (!p) return std::nullopt;
  return std::string(*p);
}

// What a task message and a result message are on the rings: a fixed
// header copied in one piece, then the bytes (arguments or answers).
namespace pool_internal {
struct TaskHeader {
  uint64_t id = 0;
  FunctionRef invoker;
  FunctionRef fn;
  uint32_t count = 0;
  uint32_t args_size = 0;
  // A run (TaskSpec::isolated): items id .. id + count - 1, each run and
  // answered as its own task; packed: each item_size bytes of arguments.
  uint32_t flags = 0;
  uint32_t item_size = 0;
};
inline constexpr uint32_t kRun = 1;
inline constexpr uint32_t kRunPacked = 2;
static_assert(std::is_trivially_copyable_v<TaskHeader>);
// A batch: one or more tasks in one ring record, each [TaskHeader][args],
// so a handler pass that finds a worker's window with room for many tiny
// tasks pays one ring push for all of them. Each task keeps its own id and
// the worker names each in its slot before it starts it: batching changes
// how tasks travel, not who holds what.
struct TaskBatch {
  struct Out {
    TaskHeader head;
    const std::string* args;  // kept by the parent for a re-dispatch
  };
  std::vector<Out> send;  // sending
  std::string bytes;      // received, checked by Decode
};
struct ResultMsg {
  uint64_t id = 0;
  uint32_t count = 0;   // a run's answers: items from id on; else unused
  std::string payload;  // answers, each [tag][u32 len][bytes] (or packed)
};
}  // namespace pool_internal

template <>
struct Codec<pool_internal::TaskBatch> {
  static void Encode(const pool_internal::TaskBatch& b, ByteWriter& out) {
    for (const auto& t : b.send) {
      pool_internal::TaskHeader h = t.head;
      h.args_size = static_cast<uint32_t>(t.args->size());
      out.Write(&h, sizeof(h));
      out.Write(t.args->data(), t.args->size());
    }
  }
  // The bytes are kept whole; the walk checks that they are a sequence of
  // headers and arguments that ends exactly at the end (the parent's bytes,
  // but checked all the same before the worker trusts a length).
  static absl::Status Decode(ByteReader& in, pool_internal::TaskBatch* b) {
    b->bytes.resize(in.remaining());
    if (absl::Status s = in.Read(b->bytes.data(), b->bytes.size()); !s.ok()) {
      return s;
    }
    size_t left = b->bytes.size();
    const char* p = b->bytes.data();
    if (left == 0) return absl::DataLossError("pool: empty task batch");
    while (left > 0) {
      pool_internal::TaskHeader h;
      if (left < sizeof(h)) {
        return absl::DataLossError("pool: task batch cut inside a header");
      }
      std::memcpy(&h, p, sizeof(h));
      if (h.args_size > left - sizeof(h)) {
        return absl::DataLossError("pool: task arguments overrun the batch");
      }
      p += sizeof(h) + h.args_size;
      left -= sizeof(h) + h.args_size;
    }
    return absl::OkStatus();
  }
};
template <>
struct Codec<pool_internal::ResultMsg> {
  static void Encode(const pool_internal::ResultMsg& r, ByteWriter& out) {
    out.Write(&r.id, sizeof(r.id));
    out.Write(&r.count, sizeof(r.count));
    out.Write(r.payload.data(), r.payload.size());
  }
  static absl::Status Decode(ByteReader& in, pool_internal::ResultMsg* r) {
    if (absl::Status s = in.Read(&r->id, sizeof(r->id)); !s.ok()) return s;
    if (absl::Status s = in.Read(&r->count, sizeof(r->count)); !s.ok()) {
      return s;
    }
    r->payload.resize(in.remaining());
    return in.Read(r->payload.data(), r->payload.size());
  }
};

namespace pool_internal {

std::string Demangle(const char* name) {
  if (name == nullptr) return "unknown";
  int status = 0;
  char* d = abi::__cxa_demangle(name, nullptr, nullptr, &status);
  std::string out = status == 0 && d != nullptr ? d : name;
  std::free(d);
  return out;
}

absl::Status ForItem(const absl::Status& e, size_t index) {
  absl::Status s(e.code(), absl::StrCat("item ", index, ": ", e.message()));
  e.ForEachPayload([&s](absl::string_view url, const absl::Cord& payload) {
    s.SetPayload(url, payload);
  });
  return s;
}

namespace {
void PatchItem(std::string* out, size_t mark, uint8_t tag) {
  const uint32_t len = static_cast<uint32_t>(out->size() - mark - 5);
  (*out)[mark] = static_cast<char>(tag);
  std::memcpy(out->data() + mark + 1, &len, sizeof(len));
}
}  // namespace

void AppendRaised(std::string* out, size_t mark, const char* type,
                  const char* what) {
  out->resize(mark + 5);
  ByteWriter w(out);
  w.Put(type == nullptr ? std::string("unknown") : Demangle(type));
  w.Put(std::string(what == nullptr ? "" : what));
  PatchItem(out, mark, kItemRaised);
}

void AppendFailed(std::string* out, size_t mark, const absl::Status& s) {
  out->resize(mark + 5);
  ByteWriter w(out);
  w.Put(static_cast<uint32_t>(s.code()));
  w.Put(std::string(s.message()));
  PatchItem(out, mark, kItemFailed);
}

void EndPackedRun(std::string* out, size_t run) {
  const size_t len = out->size() - run - 1 - sizeof(uint32_t);
  if (len == 0) {
    out->resize(run);
    return;
  }
  (*out)[run] = static_cast<char>(kItemPacked);
  const uint32_t len32 = static_cast<uint32_t>(len);
  std::memcpy(out->data() + run + 1, &len32, sizeof(len32));
}

void FailItems(std::string* out, uint32_t from, uint32_t count,
               const absl::Status& s) {
  for (uint32_t i = from; i < count; ++i) {
    const size_t mark = out->size();
    out->append(1 + sizeof(uint32_t), '\0');
    AppendFailed(out, mark, s);
  }
}

absl::Status ItemError(uint8_t tag, const char* data, size_t n) {
  ByteReader in(data, n);
  if (tag == kItemRaised) {
    std::string type, what;
    if (in.Get(&type).ok() && in.Get(&what).ok()) {
      absl::Status s = absl::UnknownError(absl::StrCat(type, ": ", what));
      s.SetPayload(kExceptionTypeUrl, absl::Cord(type));
      return s;
    }
  } else if (tag == kItemFailed) {
    uint32_t code = 0;
    std::string msg;
    if (in.Get(&code).ok() && in.Get(&msg).ok() && code != 0 && code <= 16) {
      return absl::Status(static_cast<absl::StatusCode>(code), msg);
    }
  }
  return absl::DataLossError("pool: malformed result from a worker");
}

absl::StatusOr<FunctionRef> RefOfPointer(const void* fn) {
  thread_local const void* last_fn = nullptr;
  thread_local FunctionRef last_ref;
  if (fn != nullptr && fn == last_fn) return last_ref;
  absl::StatusOr<FunctionRef> r = FunctionRef::Of(fn);
  if (r.ok()) {
    last_fn = fn;
    last_ref = *r;
  }
  return r;
}

// ---- Shared state ----------------------------------------------------------

// The handler's wake-up word, shared with every worker.
struct Control {
  alignas(64) FutexWord epoch{0};
  alignas(64) std::atomic<uint32_t> handler_sleeping{0};
};
static_assert(std::is_standard_layout_v<Control>);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

// One worker's slot: "now running task X", written by the worker (release)
// after it pops X and before it decodes or calls anything. 0: none yet.
struct WorkerSlot {
  alignas(64) std::atomic<uint64_t> running{0};
};
static_assert(std::is_standard_layout_v<WorkerSlot>);

// A worker's answers to the run it is working through, kept where the
// parent can read them if the worker dies: the answer to each item is
// appended here, and `state` says so (release), before the worker names
// the next item in its slot. The answers travel to the parent as one
// result message when the run ends (or the area fills): one ring record
// per run instead of one per item. After a death the parent takes from
// here what no message brought (Reap), so a death still fails exactly the
// item held and loses no answer. Written by the worker only; read by the
// parent only once the worker is reaped.
inline constexpr size_t kAreaBytes = size_t{64} << 10;
struct AnswerArea {
  alignas(64) std::atomic<uint64_t> run_id{0};  // the run's first item id
  // first item held (16 bits) | items held (16 bits) | bytes used (32):
  // one word, so a kill never leaves a count that does not match its bytes.
  std::atomic<uint64_t> state{0};
  char bytes[kAreaBytes];
};
inline uint64_t PackArea(uint64_t first, uint64_t items, uint64_t used) {
  return first << 48 | items << 32 | used;
}
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// 1 MiB: a task or result up to 256 KiB (a chunk of ~30 k ints) goes through
// the ring; bigger ones take side segments. Pages are committed as used.
constexpr size_t kRingBytes = size_t{1} << 20;
constexpr auto kSlice = std::chrono::milliseconds(20);
// How long an Apply runs the handler's passes itself (ApplyDirect) before
// it hands its task to the handler thread and sleeps.
constexpr int64_t kDirectSpinNs = 20'000;
// A worker's window (PoolCore::Limit): about this much of its work in
// flight, and this many tasks before its speed is known.
constexpr double kInFlightNs = 2e6;
constexpr size_t kFirstWindow = 2;
inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
// Argument buffers kept for reuse (PoolCore::SpareArgs), at most.
constexpr size_t kSpareBytes = size_t{16} << 20;
// A batch's arguments stay under this (a bigger task travels alone).
constexpr size_t kBatchBytes = size_t{16} << 10;

// The handshake with the sleeping handler uses a full fence on both sides,
// not mp/core/fence.h's asymmetric pair: a wake-up check comes once per
// result (a fence is a few nanoseconds beside a task's hundreds), while the
// handler may go to sleep between any two tasks of a one-at-a-time caller,
// and a membarrier(2) there interrupts every core running a worker (a VM
// exit each on a virtual machine).
//
// `flag` is the sleeper's flag the waker goes by: the workers' one in
// shared memory (WakeHandler) or the callers' one in the parent
// (PoolCore::WakeFromParent).
void WakeIfSleeping(std::atomic<uint32_t>& flag, Control* c) {
  FullFence();
  if (flag.load(std::memory_order_relaxed) != 0 &&
      flag.exchange(0, std::memory_order_acq_rel) != 0) {
    c->epoch.fetch_add(1, std::memory_order_release);
    FutexWakeAll(&c->epoch);
  }
}
void WakeHandler(Control* c) { WakeIfSleeping(c->handler_sleeping, c); }

// ---- The worker -----------------------------------------------------------

struct WorkerArgs {
  Queue<TaskBatch> tasks;
  Queue<ResultMsg> results;
  Shared<WorkerSlot> slot;
  Shared<AnswerArea> area;
  Shared<Control> control;
  std::function<void()> initializer;
  int maxtasks;  // 0: no limit
};

const void* Cached(std::vector<std::pair<FunctionRef, const void*>>& cache,
                   const FunctionRef& ref, absl::Status* error) {
  for (const auto& e : cache) {
    if (e.first == ref) return e.second;
  }
  absl::StatusOr<const void*> p = ref.Resolve();
  if (!p.ok()) {
    *error = p.status();
    return nullptr;
  }
  if (cache.size() >= 64) cache.erase(cache.begin());
  cache.emplace_back(ref, *p);
  return *p;
}

// A worker's wait for its next batch: a short spin (kWorkerSpin), then up
// to kWorkerYields tries each after a sched_yield, then a sleep in the
// ring. The ring's own wait (50 us of PAUSE before sleeping) suits a
// queue's consumer with a core of its own; a pool's workers share the
// cores with the handler that feeds them and with the caller, and a worker
// spinning there holds the very core the handler needs to send its next
// batch. A yield hands that core to whoever can run on it at once, and a
// batch is still caught within microseconds when the core is free.
// Measured on 2 cores, interleaved A/B, 4 rounds: pool_map_tiny/mp 1.71 to
// 1.93 ms (before: 2.20 to 5.19), pool_imap_unordered_tiny/mp 8.5 to 13.9
// ms (9.1 to 20.8); pool_apply_async_tiny/mp 41.6 to 51.6 ms (33.7 to
// 48.3: within the noise or a little slower); the round trip unchanged.
constexpr auto kWorkerSpin = std::chrono::microseconds(2);
constexpr int kWorkerYields = 64;

absl::StatusOr<TaskBatch> NextBatch(Queue<TaskBatch>& tasks) {
  auto empty = [](const absl::StatusOr<TaskBatch>& b) {
    return !b.ok() && b.status().code() == absl::StatusCode::kDeadlineExceeded;
  };
  absl::StatusOr<TaskBatch> b = tasks.Get(Deadline::After(kWorkerSpin));
  for (int i = 0; i < kWorkerYields && empty(b); ++i) {
    sched_yield();
    b = tasks.Get(Deadline::Past());
  }
  if (empty(b)) b = tasks.Get();
  return b;
}

void WorkerMain(WorkerArgs& a) {
  if (a.initializer) a.initializer();
  std::vector<std::pair<FunctionRef, const void*>> cache;
  int done = 0;
  ResultMsg r;
  std::string item_answer;  // one item's answer, on its way to the area
  for (;;) {
    absl::StatusOr<TaskBatch> b = NextBatch(a.tasks);
    if (!b.ok()) {
      if (b.status().code() == absl::StatusCode::kOutOfRange) return;  // closed
      // A message that does not decode: our own parent's bytes, so the
      // ring is broken; leave, and the parent treats us as dead.
      std::fprintf(stderr, "mp::Pool worker: %s\n",
                   std::string(b.status().message()).c_str());
      std::fflush(stderr);
      _exit(70);
    }
    // Decode checked the walk: every header and its arguments are inside.
    const char* p = b->bytes.data();
    const char* const end = p + b->bytes.size();
    while (p < end) {
      TaskHeader h;
      std::memcpy(&h, p, sizeof(h));
      const char* args = p + sizeof(h);
      p = args + h.args_size;
      absl::Status error;
      const void* inv = Cached(cache, h.invoker, &error);
      const void* fn =
          h.fn == FunctionRef{} ? nullptr : Cached(cache, h.fn, &error);
      // Runs `count` items from [data, data + n) into *out; data null:
      // arguments that overran the task, answered as failed.
      auto answer = [&](const char* data, size_t n, uint32_t count,
                        std::string* out) {
        if (error.ok() && data != nullptr) {
          reinterpret_cast<Invoker>(const_cast<void*>(inv))(fn, data, n, count,
                                                            out);
        } else {
          FailItems(out, 0, count,
                    error.ok() ? absl::DataLossError(
                                     "pool: malformed task arguments")
                               : error);
        }
      };
      // Sends r; the fenced handshake with a sleeping handler once per
      // batch (`last`), in between a plain look at its flag.
      auto put = [&](bool last) {
        if (!a.results.Put(r).ok()) _exit(71);  // closed: terminating
        if (!last) {
          if (a.control->handler_sleeping.load(std::memory_order_relaxed) !=
              0) {
            WakeHandler(a.control.get());
          }
        } else {
          WakeHandler(a.control.get());
        }
      };
      // One task: named in the slot before anything of it runs, answered
      // with its own result message.
      auto run_one = [&](uint64_t id, const char* data, size_t n,
                         uint32_t count, bool last) {
        a.slot->running.store(id, std::memory_order_release);
        r.id = id;
        r.count = count;
        r.payload.clear();
        answer(data, n, count, &r.payload);
        put(last);
        // The parent never sends more than maxtasks, so a batch never
        // holds tasks past the last one.
        return a.maxtasks > 0 && ++done >= a.maxtasks;
      };
      if ((h.flags & kRun) == 0) {
        if (run_one(h.id, args, h.args_size, h.count, p >= end)) return;
        continue;
      }
      // A run: its items one by one, each named in the slot before it
      // runs and its answer put in the area before the next is named; the
      // area goes to the parent as one message when the run ends (or when
      // it fills). An item whose bytes overrun the run fails (DataLoss), as
      // do the rest.
      AnswerArea& area = *a.area;
      area.state.store(0, std::memory_order_relaxed);
      area.run_id.store(h.id, std::memory_order_release);
      uint32_t first = 0;  // the area's first item
      uint32_t items = 0;
      size_t used = 0;
      auto send = [&](uint32_t from, uint32_t n, const char* bytes,
                      size_t size, bool last) {
        r.id = h.id + from;
        r.count = n;
        r.payload.assign(bytes, size);
        put(last);
      };
      auto flush = [&](uint32_t next, bool last) {
        if (items > 0) send(first, items, area.bytes, used, last);
        first = next;
        items = 0;
        used = 0;
        area.state.store(PackArea(first, 0, 0), std::memory_order_release);
      };
      const char* q = args;
      const char* const q_end = p;
      bool stop = false;
      for (uint32_t j = 0; j < h.count && !stop; ++j) {
        size_t len = 0;
        bool ok = true;
        if ((h.flags & kRunPacked) != 0) {
          len = h.item_size;
          ok = static_cast<size_t>(q_end - q) >= len;
        } else {
          uint32_t ilen = 0;
          ok = q_end - q >= 4 && (std::memcpy(&ilen, q, 4),
                                  ilen <= static_cast<size_t>(q_end - q) - 4);
          len = 4 + size_t{ilen};
        }
        a.slot->running.store(h.id + j, std::memory_order_release);
        std::string& out = item_answer;
        out.clear();
        answer(ok ? q : nullptr, len, 1, &out);
        q = ok ? q + len : q_end;
        stop = a.maxtasks > 0 && ++done >= a.maxtasks;
        if (used + out.size() > kAreaBytes) flush(j, false);
        if (out.size() > kAreaBytes) {  // too big for the area: alone
          send(j, 1, out.data(), out.size(), false);
          flush(j + 1, false);
          continue;
        }
        std::memcpy(area.bytes + used, out.data(), out.size());
        used += out.size();
        ++items;
        area.state.store(PackArea(first, items, used),
                         std::memory_order_release);
      }
      flush(h.count, p >= end || stop);
      if (stop) return;
    }
  }
}

// ---- The parent -----------------------------------------------------------

// A FIFO of at most `capacity` elements in one allocation, made once: a
// worker's window churns an element per task, which a std::deque of these
// large elements paid for with a heap allocation every few tasks.
template <class T>
class Fifo {
 public:
  explicit Fifo(size_t capacity) : slots_(capacity) {}
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  size_t capacity() const { return slots_.size(); }
  T& front() { return slots_[head_]; }
  void pop_front() {
    slots_[head_] = T{};
    head_ = (head_ + 1) % slots_.size();
    --size_;
  }
  // The caller keeps size() below the capacity.
  template <class... A>
  void emplace_back(A&&... a) {
    slots_[(head_ + size_) % slots_.size()] = T(std::forward<A>(a)...);
    ++size_;
  }
  class iterator {
   public:
    iterator(Fifo* f, size_t i) : f_(f), i_(i) {}
    T& operator*() const {
      return f_->slots_[(f_->head_ + i_) % f_->slots_.size()];
    }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const iterator& o) const { return i_ != o.i_; }

   private:
    Fifo* f_;
    size_t i_;
  };
  iterator begin() { return iterator(this, 0); }
  iterator end() { return iterator(this, size_); }

 private:
  std::vector<T> slots_;
  size_t head_ = 0;
  size_t size_ = 0;
};

// What a task counts for in a window, in maxtasksperchild and in the ids
// it takes: a run's items each count; a chunk is one task.
inline size_t Units(const TaskSpec& t) { return t.isolated ? t.count : 1; }

// Byte offset of item k (k <= count) in a run's arguments; the parent's
// own bytes, so framed lengths are in range.
size_t ItemOffset(const TaskSpec& t, uint32_t k) {
  if (t.packed) return size_t{k} * t.item_size;
  size_t off = 0;
  for (uint32_t i = 0; i < k && off + 4 <= t.args.size(); ++i) {
    uint32_t len;
    std::memcpy(&len, t.args.data() + off, 4);
    off += 4 + size_t{len};
  }
  return std::min(off, t.args.size());
}

// Items [from, to) of run `t`, as a run of their own.
TaskSpec SubRun(const TaskSpec& t, uint32_t from, uint32_t to) {
  TaskSpec s;
  s.job = t.job;
  s.first = t.first + from;
  s.count = to - from;
  s.invoker = t.invoker;
  s.fn = t.fn;
  s.tries = t.tries;
  s.isolated = true;
  s.packed = t.packed;
  s.item_size = t.item_size;
  const size_t a = ItemOffset(t, from);
  s.args.assign(t.args, a, ItemOffset(t, to) - a);
  return s;
}

// One-at-a-time submissions (ApplyAsync) share blocks of this many tasks
// (reserved at once: a block grown by doubling cost a copy of every task
// in it); emptied ones go back to the callers, up to kKeptBlocks.
inline constexpr size_t kKeptBlock = 256;
inline constexpr size_t kKeptBlocks = 8;

// Tasks waiting to be sent, in order, kept in the blocks they were
// submitted in (a Map's whole input is one vector): a per-task deque node
// cost a heap allocation every few tasks on the caller's side.
class TaskQueue {
 public:
  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  size_t units() const { return units_; }  // see Units
  TaskSpec& front() { return blocks_.front()[head_]; }
  TaskSpec TakeFront() {
    TaskSpec t = std::move(front());
    units_ -= Units(t);
    --size_;
    if (++head_ == blocks_.front().size()) {
      if (blocks_.front().capacity() <= kKeptBlock &&
          emptied_.size() < kKeptBlocks) {
        emptied_.push_back(std::move(blocks_.front()));
        emptied_.back().clear();
      }
      blocks_.pop_front();
      head_ = 0;
    }
    return t;
  }
  // One task (a synchronous Apply): into an emptied block, so that no
  // allocation is made per call.
  void push_one(TaskSpec t) {
    units_ += Units(t);
    ++size_;
    std::vector<TaskSpec> b;
    if (!emptied_.empty()) {
      b = std::move(emptied_.back());
      emptied_.pop_back();
    }
    b.push_back(std::move(t));
    blocks_.push_back(std::move(b));
  }
  // Hands emptied blocks to `spare` (the callers' next blocks, see
  // PoolCore::SubmitOne), keeping one for push_one, up to kKeptBlocks.
  void GiveEmptied(std::vector<std::vector<TaskSpec>>& spare) {
    while (emptied_.size() > 1 && spare.size() < kKeptBlocks) {
      spare.push_back(std::move(emptied_.back()));
      emptied_.pop_back();
    }
  }
  // The first n items of the front task, a run of more than n, split off.
  TaskSpec CarveFront(uint32_t n) {
    TaskSpec& f = front();
    TaskSpec head = SubRun(f, 0, n);
    f.args.erase(0, ItemOffset(f, n));
    f.first += n;
    f.count -= n;
    units_ -= n;
    return head;
  }
  void push_back(std::vector<TaskSpec> block) {
    if (block.empty()) return;
    size_ += block.size();
    for (const auto& t : block) units_ += Units(t);
    blocks_.push_back(std::move(block));
  }
  // Re-queues `block` before everything waiting (a dead worker's window).
  void push_front(std::vector<TaskSpec> block) {
    if (block.empty()) return;
    if (head_ > 0) {  // the front block's sent part goes first
      auto& f = blocks_.front();
      f.erase(f.begin(), f.begin() + static_cast<long>(head_));
      head_ = 0;
    }
    size_ += block.size();
    for (const auto& t : block) units_ += Units(t);
    blocks_.push_front(std::move(block));
  }
  // Takes everything out, in order.
  std::vector<TaskSpec> TakeAll() {
    std::vector<TaskSpec> all;
    all.reserve(size_);
    size_t skip = head_;
    for (auto& b : blocks_) {
      for (size_t i = skip; i < b.size(); ++i) all.push_back(std::move(b[i]));
      skip = 0;
    }
    blocks_.clear();
    head_ = size_ = units_ = 0;
    return all;
  }

 private:
  std::deque<std::vector<TaskSpec>> blocks_;
  // Emptied blocks of at most kKeptBlock tasks, for reuse: an allocation
  // (and a vector's growth) saved per block, and no block freed on this
  // thread that a caller's thread allocated.
  std::vector<std::vector<TaskSpec>> emptied_;
  size_t head_ = 0;  // sent tasks at the front of blocks_.front()
  size_t size_ = 0;
  size_t units_ = 0;
};

// A task (or run) sent to a worker and not yet wholly answered.
struct Sent {
  uint64_t id = 0;        // its (first item's) id
  TaskSpec t;
  uint32_t answered = 0;  // a run's items answered so far, in order
};

struct Worker {
  std::unique_ptr<Process> process;
  Queue<TaskBatch> tasks;
  Queue<ResultMsg> results;
  Shared<WorkerSlot> slot;
  Shared<AnswerArea> area;
  Fifo<Sent> window;    // sent, not wholly answered, in order
  size_t inflight = 0;  // units (see Units) sent and unanswered
  int sent = 0;         // units ever sent (for maxtasksperchild)
  pid_t pid = 0;
  // How long its tasks take, as the handler sees results come back (an
  // average over recent collections; 0: not measured yet), and since when
  // it has had work (-1: its window is empty). See PoolCore::Limit.
  double task_ns = 0;
  int64_t busy_since_ns = -1;
};

std::string HowItDied(int code) {
  if (code < 0) {
    const char* abbrev = sigabbrev_np(-code);
    return absl::StrCat("killed by signal ", -code, " (SIG",
                        abbrev ? abbrev : "?", ")");
  }
  return absl::StrCat("exited with code ", code);
}

}  // namespace pool_internal

using pool_internal::Control;
using pool_internal::TaskSpec;
using pool_internal::Worker;

class pool_internal::PoolCore {
 public:
  explicit PoolCore(PoolOptions o) : options_(std::move(o)) {}

  absl::Status Start() {
    processes_ = *options_.processes;
    control_ = Shared<Control>::Make();
    auto started = std::make_shared<std::promise<absl::Status>>();
    std::future<absl::Status> f = started->get_future();
    thread_ = std::thread([this, started] {
      handler_id_.store(std::this_thread::get_id());
      absl::Status s;
      for (int i = 0; i < processes_ && s.ok(); ++i) s = StartWorker();
      if (!s.ok()) {
        KillAll();
        started->set_value(s);
        return;
      }
      started->set_value(absl::OkStatus());
      Run();
    });
    absl::Status s = f.get();
    if (!s.ok()) {
      thread_.join();
      std::lock_guard<std::mutex> l(mu_);
      state_ = State::kDone;
    }
    return s;
  }

  ~PoolCore() { (void)Terminate(); }

  // Apply's direct path (pool.h, "Apply's round trip").
  absl::Status ApplyDirect(TaskSpec task, const FutexWord& done) {
    // From a callback the handler thread holds the role already.
    if (OnHandlerThread()) return SubmitOne(std::move(task));
    std::unique_lock<std::mutex> role(role_mu_, std::try_to_lock);
    // Only an idle pool: nobody else's results (and callbacks) may come
    // in on this thread.
    if (!role.owns_lock() || has_submissions_.load(std::memory_order_acquire) ||
        Outstanding()) {
      if (role.owns_lock()) role.unlock();
      return SubmitOne(std::move(task));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      if (absl::Status s = TakesWorkLocked(false); !s.ok()) return s;
    }
    // The parked handler is not to be woken by the worker's answer: its
    // flag for the workers goes down (a store only when it is up, so that
    // back-to-back Applies leave the line the worker reads alone). Callers
    // still wake it through parked_ (WakeFromParent).
    Control* c = control_.get();
    if (c->handler_sleeping.load(std::memory_order_relaxed) != 0) {
      c->handler_sleeping.store(0, std::memory_order_relaxed);
    }
    pending_.push_one(std::move(task));
    int64_t until = 0;  // read the clock only once the answer is late
    for (unsigned pass = 1;; ++pass) {
      Dispatch();
      for (auto& w : workers_) Collect(w);
      if (done.load(std::memory_order_acquire) != 0) break;
      // Another caller's work, Close or Terminate: the handler's.
      if (has_submissions_.load(std::memory_order_acquire)) break;
      if (pass % 64 == 0) {
        if (until == 0) {
          until = NowNs() + kDirectSpinNs;
        } else if (NowNs() > until) {
          break;
        }
      }
      CpuRelax();
    }
    // Give the role back. Another caller's submission woke the handler
    // itself (WakeFromParent); what is left of ours is the handler's now,
    // so it is woken if it sleeps (one that does not will run a pass once
    // it has the role).
    const bool ours_left = Outstanding();
    role.unlock();
    if (ours_left) WakeFromParent();
    return absl::OkStatus();
  }

  absl::Status SubmitOne(TaskSpec task) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (absl::Status s = TakesWorkLocked(false); !s.ok()) return s;
      if (submitted_.empty() ||
          submitted_.back().size() >= pool_internal::kKeptBlock) {
        if (!spare_blocks_.empty()) {
          submitted_.push_back(std::move(spare_blocks_.back()));
          spare_blocks_.pop_back();
        } else {
          submitted_.emplace_back();
          submitted_.back().reserve(pool_internal::kKeptBlock);
        }
      }
      submitted_.back().push_back(std::move(task));
      has_submissions_.store(true, std::memory_order_release);
    }
    WakeFromParent();
    return absl::OkStatus();
  }

  absl::Status Submit(std::vector<TaskSpec> tasks, bool feeding) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (absl::Status s = TakesWorkLocked(feeding); !s.ok()) return s;
      // One-at-a-time submissions (ApplyAsync) share a block.
      if (!submitted_.empty() &&
          submitted_.back().size() + tasks.size() <=
              pool_internal::kKeptBlock &&
          tasks.size() < 16) {
        for (auto& t : tasks) submitted_.back().push_back(std::move(t));
      } else {
        submitted_.push_back(std::move(tasks));
      }
      has_submissions_.store(true, std::memory_order_release);
    }
    WakeFromParent();
    return absl::OkStatus();
  }

  // OK when the pool takes work now (`feeding`: an Imap refill, allowed
  // after Close); under mu_.
  absl::Status TakesWorkLocked(bool feeding) const {
    if (state_ == State::kTerminating || state_ == State::kDone) {
      return terminated_ ? absl::CancelledError("pool: terminated")
                         : absl::FailedPreconditionError("pool: not running");
    }
    if (state_ == State::kClosed && !feeding) {
      return absl::FailedPreconditionError("pool: Pool not running (closed)");
    }
    return absl::OkStatus();
  }

  bool AddFeeder(std::shared_ptr<pool_internal::Feeder> f) {
    std::lock_guard<std::mutex> l(mu_);
    if (state_ != State::kRunning) return false;
    feeders_.push_back(std::move(f));
    has_submissions_.store(true, std::memory_order_release);
    return true;
  }
  void RemoveFeeder(const pool_internal::Feeder* f) {
    {
      std::lock_guard<std::mutex> l(mu_);
      std::erase_if(feeders_, [f](const auto& p) { return p.get() == f; });
      has_submissions_.store(true, std::memory_order_release);
    }
    WakeFromParent();
  }

  void Close() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (state_ == State::kRunning) state_ = State::kClosed;
      has_submissions_.store(true, std::memory_order_release);
    }
    WakeFromParent();
  }

  absl::Status Terminate() {
    if (OnHandlerThread()) {
      return absl::FailedPreconditionError(
          "pool: Terminate from a callback (the handler thread)");
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      if (state_ != State::kDone) {
        state_ = State::kTerminating;
        terminated_ = true;
      }
      has_submissions_.store(true, std::memory_order_release);
    }
    WakeFromParent();
    std::lock_guard<std::mutex> jl(join_mu_);
    if (thread_.joinable()) thread_.join();
    return absl::OkStatus();
  }

  absl::Status Join(Deadline deadline) {
    if (OnHandlerThread()) {
      return absl::FailedPreconditionError(
          "pool: Join from a callback (the handler thread)");
    }
    std::vector<std::shared_ptr<pool_internal::Feeder>> feeders;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (state_ == State::kRunning) {
        return absl::FailedPreconditionError("pool: Pool is still running");
      }
      feeders = feeders_;
    }
    // Every Imap input left goes in now (see Feeder): Python's join does not
    // wait for its iterators to be read.
    for (auto& f : feeders) f->FeedAll();
    {
      std::unique_lock<std::mutex> l(mu_);
      while (state_ != State::kDone) {
        if (deadline.infinite()) {
          done_cv_.wait(l);
        } else if (done_cv_.wait_until(l, deadline.time_point()) ==
                       std::cv_status::timeout &&
                   state_ != State::kDone) {
          return absl::DeadlineExceededError(
              "pool: workers still running at the deadline");
        }
      }
    }
    std::lock_guard<std::mutex> jl(join_mu_);
    if (thread_.joinable()) thread_.join();
    return absl::OkStatus();
  }

  bool OnHandlerThread() const {
    return handler_id_.load() == std::this_thread::get_id();
  }

  std::vector<std::string> SpareArgs(size_t n) {
    std::vector<std::string> out;
    std::lock_guard<std::mutex> l(spare_mu_);
    while (n-- > 0 && !spare_.empty()) {
      spare_bytes_ -= spare_.back().capacity();
      out.push_back(std::move(spare_.back()));
      spare_.pop_back();
    }
    return out;
  }
  int processes() const { return processes_; }
  int workers_started() const { return started_count_.load(); }
  std::vector<pid_t> worker_pids() const {
    std::lock_guard<std::mutex> l(pids_mu_);
    return pids_;
  }

 private:
  enum class State { kRunning, kClosed, kTerminating, kDone };

  // ---- handler thread only ----
  absl::Status StartWorker() {
    auto tasks = Queue<TaskBatch>::Make(
        {.capacity_bytes = kRingBytes, .mode = QueueMode::kSpsc});
    if (!tasks.ok()) return tasks.status();
    auto results = Queue<ResultMsg>::Make(
        {.capacity_bytes = kRingBytes, .mode = QueueMode::kSpsc});
    if (!results.ok()) return results.status();
    Worker w{nullptr,
             *tasks,
             *results,
             Shared<pool_internal::WorkerSlot>::Make(),
             Shared<pool_internal::AnswerArea>::Make(),
             pool_internal::Fifo<pool_internal::Sent>(
                 static_cast<size_t>(options_.window)),
             0,
             0,
             0};
    const int n = started_count_.fetch_add(1) + 1;
    pool_internal::WorkerArgs args{*tasks, *results, w.slot, w.area, control_,
                                   options_.initializer,
                                   options_.maxtasksperchild.value_or(0)};
    w.process = std::make_unique<Process>(
        ProcessOptions{.name = absl::StrCat(options_.worker_name, "-", n),
                       .daemon = true},
        [args]() mutable { pool_internal::WorkerMain(args); });
    if (absl::Status s = w.process->Start(); !s.ok()) return s;
    w.pid = w.process->pid();
    workers_.push_back(std::move(w));
    RecordPids();
    return absl::OkStatus();
  }

  void RecordPids() {
    std::lock_guard<std::mutex> l(pids_mu_);
    pids_.clear();
    for (auto& w : workers_) pids_.push_back(w.pid);
  }

  void Deliver(const TaskSpec& t, const char* payload, size_t size) {
    t.job->OnResult(t.first, t.count, payload, size);
  }

  // Answers to single tasks that travelled as one run (Dispatch): `n`
  // items, each [tag][u32 len][bytes] from `p`, to the entries at the
  // front of `w`'s window, from id `id` on. False when they do not match
  // (not such entries, or bytes that overrun): the caller ends the worker.
  bool DeliverSingles(Worker& w, uint64_t id, uint32_t n, const char* p,
                      size_t size) {
    for (uint32_t j = 0; j < n; ++j, ++id) {
      if (w.window.empty() || w.window.front().id != id ||
          !w.window.front().t.single) {
        return false;
      }
      uint32_t len = 0;
      if (!pool_internal::AnswerLength(p, size, &len)) return false;
      TaskSpec t = std::move(w.window.front().t);
      w.window.pop_front();
      --w.inflight;
      Deliver(t, p, 5 + size_t{len});
      p += 5 + size_t{len};
      size -= 5 + size_t{len};
    }
    return true;
  }

  void Fail(const TaskSpec& t, const absl::Status& s) {
    for (uint32_t i = 0; i < t.count; ++i) t.job->OnFailure(t.first + i, s);
  }

  // Fails what `e` has not been answered for: a chunk's items, or a run's
  // items from its first unanswered one.
  void FailUnanswered(const pool_internal::Sent& e, const absl::Status& s) {
    for (uint32_t k = e.t.isolated ? e.answered : 0; k < e.t.count; ++k) {
      e.t.job->OnFailure(e.t.first + k, s);
    }
  }

  // Answers to `n` items of run `e`, from its first unanswered one.
  void TakeAnswers(Worker& w, pool_internal::Sent& e, uint32_t n,
                   const char* bytes, size_t size) {
    e.t.job->OnResult(e.t.first + e.answered, n, bytes, size);
    e.answered += n;
    w.inflight -= n;
  }

  // Ends a worker whose result was not what it was sent (our own worker's
  // bug): the death path sorts its window out.
  void Disown(Worker& w, const char* what) {
    std::fprintf(stderr, "mp::Pool: %s sent %s\n", w.process->name().c_str(),
                 what);
    (void)w.process->Kill();
  }

  // Takes every result ready in `w`'s ring; true when any.
  bool Collect(Worker& w) {
    bool any = false;
    int taken = 0;
    for (int k = 0; k < 256; ++k) {
      if (w.results.empty()) break;
      absl::StatusOr<pool_internal::ResultMsg> r = w.results.Get(Deadline::Past());
      if (!r.ok()) {
        // Empty, or a record skipped; a message that does not decode is
        // our own worker's bug: end it, the death path fails its task.
        if (r.status().code() == absl::StatusCode::kDataLoss) {
          (void)w.process->Kill();
        }
        break;
      }
      any = true;
      if (w.window.empty() ||
          w.window.front().id + w.window.front().answered != r->id) {
        // Not what this worker was sent: kill it and let the death path
        // sort its window out.
        Disown(w, "an unexpected result");
        break;
      }
      pool_internal::Sent& f = w.window.front();
      TaskSpec t;
      if (f.t.isolated) {  // answers to items of a run, from `answered` on
        if (r->count == 0 || r->count > f.t.count - f.answered) {
          Disown(w, "a malformed result");
          break;
        }
        TakeAnswers(w, f, r->count, r->payload.data(), r->payload.size());
        taken += static_cast<int>(r->count);
        if (f.answered < f.t.count) continue;
        t = std::move(f.t);
        w.window.pop_front();
      } else if (f.t.single && r->count > 1) {  // singles sent as a run
        if (!DeliverSingles(w, r->id, r->count, r->payload.data(),
                            r->payload.size())) {
          Disown(w, "a malformed result");
          break;
        }
        taken += static_cast<int>(r->count);
        continue;
      } else {
        --w.inflight;
        ++taken;
        t = std::move(f.t);
        w.window.pop_front();
        Deliver(t, r->payload.data(), r->payload.size());
      }
      if (t.args.capacity() > pool_internal::kSpareMin) {
        answered_args_.push_back(std::move(t.args));
      }
    }
    if (!answered_args_.empty()) KeepSpare();
    if (taken > 0) {
      const int64_t now = NowNs();
      if (w.busy_since_ns >= 0) {
        const double sample =
            static_cast<double>(now - w.busy_since_ns) / taken;
        w.task_ns = w.task_ns == 0 ? sample : 0.75 * w.task_ns + 0.25 * sample;
      }
      w.busy_since_ns = w.window.empty() ? -1 : now;
    }
    return any;
  }

  // How many tasks `w` may hold (sent, unanswered): about kInFlightNs of its
  // work, measured (Collect), between 2 and PoolOptions::window; before
  // the first measurement, kFirstWindow. Tiny tasks get the whole window
  // (a worker that runs dry between two handler passes sleeps, and waking
  // it costs more than the task); slow ones get 2, so they stay in the
  // parent and go to whichever worker frees up first, as from Python's
  // shared task queue, instead of waiting behind a busy worker.
  size_t Limit(const Worker& w) const {
    const size_t max = static_cast<size_t>(options_.window);
    if (w.task_ns == 0) return std::min(max, kFirstWindow);
    const double fit = kInFlightNs / w.task_ns;
    return std::clamp(fit >= static_cast<double>(max)
                          ? max
                          : static_cast<size_t>(fit),
                      std::min<size_t>(max, 2), max);
  }

  // How many more tasks `w` may be sent now: its window's room, and what
  // is left of its maxtasksperchild.
  size_t Room(const Worker& w) const {
    const size_t limit = Limit(w);
    if (w.inflight >= limit || w.window.size() >= w.window.capacity()) {
      return 0;
    }
    size_t room = limit - w.inflight;
    if (options_.maxtasksperchild) {
      room = std::min(room, static_cast<size_t>(std::max(
                                0, *options_.maxtasksperchild - w.sent)));
    }
    return room;
  }

  // Moves pending tasks into the workers' rings, a batch per worker per
  // pass: at most its room and its share of what is pending (two long
  // tasks go to two workers, not both to the first), a run split to fit,
  // and at most kBatchBytes of arguments unless a single task is bigger.
  bool Dispatch() {
    bool any = false;
    for (bool moved = true; moved && !pending_.empty();) {
      moved = false;
      size_t open = 0;
      for (const auto& w : workers_) open += Room(w) > 0 ? 1 : 0;
      if (open == 0) break;
      const size_t share = (pending_.units() + open - 1) / open;
      for (auto& w : workers_) {
        const size_t quota = std::min(Room(w), share);
        if (quota == 0) continue;
        const size_t run_cap = std::max<size_t>(1, Limit(w) / 2);
        out_.clear();
        size_t units = 0;
        size_t bytes = 0;
        while (!pending_.empty() && units < quota &&
               out_.size() + w.window.size() < w.window.capacity()) {
          TaskSpec& t = pending_.front();
          if (!out_.empty() && bytes + t.args.size() > kBatchBytes) break;
          // A run's answers come back when it ends: at most half the
          // worker's limit in one, so that the next is already there.
          const size_t u = pool_internal::Units(t);
          const size_t cap =
              t.isolated ? std::min(quota - units, run_cap) : quota - units;
          if (u <= cap) {
            out_.push_back(pending_.TakeFront());
          } else {  // a run bigger than the room: its first items go
            out_.push_back(pending_.CarveFront(static_cast<uint32_t>(cap)));
          }
          units += pool_internal::Units(out_.back());
          bytes += sizeof(pool_internal::TaskHeader) + out_.back().args.size();
        }
        if (out_.empty()) continue;
        batch_.send.clear();
        if (merged_.size() < out_.size()) merged_.resize(out_.size());
        uint64_t id = next_id_;
        size_t groups = 0;
        for (size_t k = 0; k < out_.size();) {
          const TaskSpec& t = out_[k];
          pool_internal::TaskHeader h{.id = id, .invoker = t.invoker,
                                      .fn = t.fn, .count = t.count};
          // Single tasks of one function in a row: one run on the wire
          // (framed items, ids id .. id + m - 1, as their window entries).
          size_t m = 1;
          if (t.single) {
            while (k + m < out_.size() && out_[k + m].single &&
                   out_[k + m].invoker == t.invoker && out_[k + m].fn == t.fn) {
              ++m;
            }
          }
          if (m > 1) {
            std::string& args = merged_[groups++];
            args.clear();
            for (size_t j = k; j < k + m; ++j) args += out_[j].args;
            h.count = static_cast<uint32_t>(m);
            h.flags = pool_internal::kRun;
            batch_.send.push_back({h, &args});
          } else {
            if (t.isolated) {
              h.flags = pool_internal::kRun |
                        (t.packed ? pool_internal::kRunPacked : 0);
              h.item_size = t.item_size;
            }
            batch_.send.push_back({h, &t.args});
          }
          for (size_t j = k; j < k + m; ++j) id += pool_internal::Units(out_[j]);
          k += m;
        }
        if (!w.tasks.Put(batch_, Deadline::Past()).ok()) {  // ring full
          pending_.push_front(std::move(out_));
          out_ = {};
          continue;
        }
        if (w.window.empty()) w.busy_since_ns = NowNs();
        for (TaskSpec& t : out_) {
          const size_t u = pool_internal::Units(t);
          w.window.emplace_back(
              pool_internal::Sent{.id = next_id_, .t = std::move(t)});
          next_id_ += u;
          w.inflight += u;
          w.sent += static_cast<int>(u);
        }
        any = moved = true;
        if (pending_.empty()) break;
      }
    }
    return any;
  }

  // Handles the workers that have exited; true when any did.
  bool Reap() {
    bool any = false;
    for (size_t i = 0; i < workers_.size();) {
      Worker& w = workers_[i];
      std::optional<int> code = w.process->exitcode();
      if (!code) {
        ++i;
        continue;
      }
      any = true;
      // 1. Every result it committed.
      for (;;) {
        const size_t before = w.inflight;
        Collect(w);
        if (w.inflight == before) break;
      }
      // ... and the answers its area holds that no message brought: those
      // to the items before the one it held, in the run it was in.
      {
        pool_internal::AnswerArea& area = *w.area;
        const uint64_t run = area.run_id.load(std::memory_order_acquire);
        const uint64_t st = area.state.load(std::memory_order_acquire);
        const uint32_t first = static_cast<uint32_t>(st >> 48);
        const uint32_t items = static_cast<uint32_t>(st >> 32) & 0xffff;
        const size_t used = static_cast<size_t>(st & 0xffffffff);
        for (pool_internal::Sent& e : w.window) {
          if (!e.t.isolated || e.id != run) continue;
          if (items > 0 && first == e.answered &&
              items <= e.t.count - e.answered &&
              used <= pool_internal::kAreaBytes) {
            TakeAnswers(w, e, items, area.bytes, used);
          }
          break;
        }
        // Single tasks sent as a run: the area's answers are those of the
        // entries at the front of the window (every message before them
        // was collected above). A mismatch leaves them to the rule below.
        if (items > 0 && used <= pool_internal::kAreaBytes &&
            !w.window.empty() && w.window.front().t.single &&
            w.window.front().id == run + first) {
          (void)DeliverSingles(w, run + first, items, area.bytes, used);
        }
      }
      // 2-3. The task it was running fails (or is retried); the rest were
      // never started. In a run, the items before the running one were
      // answered (a worker records an item's answer before it names the
      // next), the ones after it never started.
      const uint64_t running = w.slot->running.load(std::memory_order_acquire);
      const absl::Status died = absl::AbortedError(absl::StrCat(
          "pool: worker ", w.process->name(), " (pid ", w.pid, ") ",
          pool_internal::HowItDied(*code), " while running this task"));
      std::vector<TaskSpec> again;
      auto held = [&](TaskSpec t) {
        if (t.tries < options_.task_retries) {
          ++t.tries;
          again.push_back(std::move(t));
        } else {
          Fail(t, died);
        }
      };
      for (pool_internal::Sent& e : w.window) {
        TaskSpec& t = e.t;
        if (!t.isolated) {
          if (e.id == running) {
            held(std::move(t));
          } else if (t.single && e.id < running) {
            // Named before the one it held, so it ran (the ring is FIFO);
            // its answer, in a run's area, did not reach us. Not re-run.
            Fail(t, absl::DataLossError(absl::StrCat(
                        "pool: the answer of worker ", w.process->name(),
                        " was lost when it died")));
          } else {
            again.push_back(std::move(t));
          }
          continue;
        }
        const uint64_t lo = e.id + e.answered;
        const uint64_t hi = e.id + t.count;
        if (running < lo || running >= hi) {
          if (e.answered < t.count) {
            again.push_back(pool_internal::SubRun(t, e.answered, t.count));
          }
          continue;
        }
        const uint32_t j = static_cast<uint32_t>(running - e.id);
        for (uint32_t k = e.answered; k < j; ++k) {  // ran; answer lost
          t.job->OnFailure(t.first + k,
                           absl::DataLossError(absl::StrCat(
                               "pool: the answer of worker ",
                               w.process->name(), " was lost when it died")));
        }
        held(pool_internal::SubRun(t, j, j + 1));
        if (j + 1 < t.count) {
          again.push_back(pool_internal::SubRun(t, j + 1, t.count));
        }
      }
      pending_.push_front(std::move(again));
      // 4. Unlink what big messages its task ring still holds.
      DrainRing(w.tasks);
      workers_.erase(workers_.begin() + static_cast<long>(i));
      any = true;
    }
    if (any) RecordPids();
    return any;
  }

  // Empties a dead worker's ring, so that the side segments of the big
  // messages it still holds are unlinked. A record that fails to read is
  // dropped by its Get (DataLoss) and the drain goes on past it. It used
  // to stop there: a worker killed while it read a big argument has
  // unlinked that record's segment but not moved head past the record, so
  // the drain's first Get failed and every big message behind it stayed in
  // /dev/shm (TerminateWhileBusyLeavesNoProcessNoSegment failed 17 runs in
  // 150 under load).
  template <class T>
  static void DrainRing(Queue<T>& q) {
    for (;;) {
      const absl::Status s = q.Get(Deadline::Past()).status();
      if (!s.ok() && s.code() != absl::StatusCode::kDataLoss) return;
    }
  }

  void KillAll() {
    for (auto& w : workers_) (void)w.process->Kill();
    for (auto& w : workers_) {
      (void)w.process->Join();
      DrainRing(w.results);
      DrainRing(w.tasks);
    }
  }

  bool Outstanding() const {
    if (!pending_.empty()) return true;
    for (const auto& w : workers_) {
      if (!w.window.empty()) return true;
    }
    return false;
  }

  void Run() {
    // The handler's role: held for every pass, let go only while asleep
    // (Sleep), when an Apply may take it (ApplyDirect).
    std::unique_lock<std::mutex> role(role_mu_);
    unsigned spins = 0;
    unsigned passes = 0;
    // The shared state as last seen. Every change to it (a submission,
    // Close, Terminate, a feeder coming or going) raises has_submissions_,
    // so the lock is taken only then, not on every pass: callers submitting
    // one task at a time (ApplyAsync) contended with it.
    State state = State::kRunning;
    int feeders = 0;
    for (;;) {
      if (has_submissions_.load(std::memory_order_acquire)) {
        {
          // Only a swap under the lock: a caller submitting one task at a
          // time waits for it, and pending_ walks each block it takes.
          std::lock_guard<std::mutex> l(mu_);
          state = state_;
          feeders = static_cast<int>(feeders_.size());
          taken_.swap(submitted_);
          has_submissions_.store(false, std::memory_order_relaxed);
          pending_.GiveEmptied(spare_blocks_);
        }
        for (auto& b : taken_) pending_.push_back(std::move(b));
        taken_.clear();
      }
      if (state == State::kTerminating) {
        KillAll();
        const absl::Status c = absl::CancelledError("pool: terminated");
        for (auto& w : workers_) {
          for (pool_internal::Sent& e : w.window) FailUnanswered(e, c);
        }
        workers_.clear();
        RecordPids();
        for (auto& t : pending_.TakeAll()) Fail(t, c);
        std::vector<std::vector<TaskSpec>> late;
        {
          std::lock_guard<std::mutex> l(mu_);
          late.swap(submitted_);
        }
        for (auto& b : late) {
          for (auto& t : b) Fail(t, c);
        }
        Finish();
        return;
      }
      bool progress = false;
      for (auto& w : workers_) progress |= Collect(w);
      progress |= Dispatch();
      // Reaping costs system calls (a waitpid per worker): once when the
      // handler falls idle (and after each sleep), and every 64 busy
      // passes; not on every pass of the idle spin below, which made the
      // handler a busy loop of system calls that took a core from the
      // workers (pool_map_cpu with 2 workers ran no faster than 1).
      if (progress ? ++passes % 64 == 0 : spins == 0) {
        if (Reap()) progress = true;
        // Replace workers that left (death or maxtasksperchild), unless we
        // are winding down with nothing left to do.
        winding_ = winding_ || (state == State::kClosed && !Outstanding() &&
                                feeders == 0);
        const bool winding = winding_;
        while (!winding && static_cast<int>(workers_.size()) < processes_) {
          if (!StartWorker().ok()) break;
          progress = true;
        }
        if (winding) {
          for (auto& w : workers_) w.tasks.Close();
          if (workers_.empty()) {
            Finish();
            return;
          }
        }
      }
      if (progress) {
        spins = 0;
        continue;
      }
      // Spin briefly (a few microseconds) before sleeping. Longer spins
      // measured no better on 2 shared cores: the spinning handler takes
      // the core a worker needs.
      //
      // With nothing sent or waiting, only a new submission could end the
      // spin: sleep at once instead, which frees the role for the next
      // synchronous Apply (ApplyDirect) and costs a submitter one wake-up.
      if (++spins < 200 && Outstanding()) {
        CpuRelax();
        continue;
      }
      spins = 0;
      Sleep(role);
    }
  }

  // Keeps answered tasks' argument buffers for SpareArgs, up to kSpareBytes.
  void KeepSpare() {
    {
      std::lock_guard<std::mutex> l(spare_mu_);
      for (auto& a : answered_args_) {
        if (spare_bytes_ + a.capacity() > kSpareBytes) break;
        spare_bytes_ += a.capacity();
        spare_.push_back(std::move(a));
      }
    }
    answered_args_.clear();
  }

  void Sleep(std::unique_lock<std::mutex>& role) {
    Control* c = control_.get();
    const uint32_t e = c->epoch.load(std::memory_order_acquire);
    c->handler_sleeping.store(1, std::memory_order_relaxed);
    parked_.store(1, std::memory_order_relaxed);
    FullFence();  // see WakeHandler
    bool ready = has_submissions_.load(std::memory_order_acquire);
    for (auto& w : workers_) ready |= !w.results.empty();
    if (!ready) {
      role.unlock();
      FutexWait(&c->epoch, e, Deadline::After(kSlice));
      role.lock();
    }
    c->handler_sleeping.store(0, std::memory_order_relaxed);
    parked_.store(0, std::memory_order_relaxed);
  }

  // A caller's wake-up call (a submission, Close, Terminate): the Dekker
  // handshake of WakeHandler on parked_, the handler's flag for this
  // process, which a synchronous Apply holding the role leaves up (it puts
  // down only the workers' flag, see ApplyDirect).
  void WakeFromParent() {
    pool_internal::WakeIfSleeping(parked_, control_.get());
  }

  void Finish() {
    std::lock_guard<std::mutex> l(mu_);
    state_ = State::kDone;
    done_cv_.notify_all();
  }

  PoolOptions options_;
  int processes_ = 0;
  Shared<Control> control_;
  std::thread thread_;
  std::mutex join_mu_;
  std::atomic<std::thread::id> handler_id_{};
  // The handler's role: whoever holds it owns the state below "The
  // handler's" (workers_, pending_, ...). The handler thread, except while
  // it sleeps; an Apply on an idle pool (ApplyDirect).
  std::mutex role_mu_;
  // Up while the handler thread sleeps (Sleep): callers wake it by this.
  std::atomic<uint32_t> parked_{0};

  // Shared with the callers, under mu_.
  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  State state_ = State::kRunning;
  bool terminated_ = false;
  // Imap inputs that may still submit (the handler winds down at none).
  std::vector<std::shared_ptr<pool_internal::Feeder>> feeders_;
  std::vector<std::vector<TaskSpec>> submitted_;
  std::vector<std::vector<TaskSpec>> taken_;  // the handler's, swapped in
  std::vector<std::vector<TaskSpec>> spare_blocks_;  // emptied, for SubmitOne
  std::atomic<bool> has_submissions_{false};

  // Argument buffers of answered tasks (see SpareArgs).
  std::mutex spare_mu_;
  std::vector<std::string> spare_;
  size_t spare_bytes_ = 0;

  // The handler's own.
  std::vector<TaskSpec> out_;          // Dispatch's batch being built
  pool_internal::TaskBatch batch_;
  std::vector<std::string> answered_args_;
  std::vector<Worker> workers_;
  pool_internal::TaskQueue pending_;
  // Dispatch's arguments of single tasks merged into runs (kept for reuse).
  std::vector<std::string> merged_;
  uint64_t next_id_ = 1;
  bool winding_ = false;  // closed and idle: the task rings are closed
  std::atomic<int> started_count_{0};
  mutable std::mutex pids_mu_;
  std::vector<pid_t> pids_;
};

namespace pool_internal {
absl::Status Submit(PoolCore& core, std::vector<TaskSpec> tasks,
                    bool feeding) {
  return core.Submit(std::move(tasks), feeding);
}
absl::Status ApplyDirect(PoolCore& core, TaskSpec task, const FutexWord& done) {
  return core.ApplyDirect(std::move(task), done);
}
absl::Status SubmitOne(PoolCore& core, TaskSpec task) {
  return core.SubmitOne(std::move(task));
}
int Processes(const PoolCore& core) { return core.processes(); }
std::vector<std::string> SpareArgs(PoolCore& core, size_t n) {
  return core.SpareArgs(n);
}
bool OnHandlerThread(const PoolCore& core) { return core.OnHandlerThread(); }
bool AddFeeder(PoolCore& core, std::shared_ptr<Feeder> feeder) {
  return core.AddFeeder(std::move(feeder));
}
void RemoveFeeder(PoolCore& core, const Feeder* feeder) {
  core.RemoveFeeder(feeder);
}
}  // namespace pool_internal

// ---- Pool -------------------------------------------------------------------

absl::StatusOr<Pool> Pool::Make(PoolOptions options) {
  if (!options.processes) options.processes = cpu_count();
  if (*options.processes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool: processes must be at least 1 (got ", *options.processes, ")"));
  }
  if (options.maxtasksperchild && *options.maxtasksperchild < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool: maxtasksperchild must be a positive int or "
                     "unset (got ", *options.maxtasksperchild, ")"));
  }
  if (options.window < 1) {
    return absl::InvalidArgumentError("pool: window must be at least 1");
  }
  if (options.task_retries < 0) {
    return absl::InvalidArgumentError("pool: task_retries must be >= 0");
  }
  auto core = std::make_shared<pool_internal::PoolCore>(std::move(options));
  if (absl::Status s = core->Start(); !s.ok()) return s;
  return Pool(std::move(core));
}

Pool::Pool(PoolOptions options)
    : Pool(ValueOrThrow(Make(std::move(options)))) {}
Pool::Pool(std::shared_ptr<pool_internal::PoolCore> core)
    : core_(std::move(core)) {}
Pool::Pool(Pool&&) noexcept = default;
Pool& Pool::operator=(Pool&& other) noexcept {
  if (this != &other) {
    if (core_) (void)core_->Terminate();
    core_ = std::move(other.core_);
  }
  return *this;
}
Pool::~Pool() {
  if (core_) (void)core_->Terminate();
}

void Pool::Close() { core_->Close(); }
absl::Status Pool::Terminate() { return core_->Terminate(); }
absl::Status Pool::Join(Deadline deadline) { return core_->Join(deadline); }
int Pool::processes() const { return core_->processes(); }
int Pool::workers_started() const { return core_->workers_started(); }
std::vector<pid_t> Pool::worker_pids() const { return core_->worker_pids(); }

}  // namespace mp
