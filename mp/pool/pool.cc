// mp/pool/pool.cc: the parent's handler and the worker loop (see pool.h,
// "Design").
#include "mp/pool/pool.h"

#include <cxxabi.h>
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
};
static_assert(std::is_trivially_copyable_v<TaskHeader>);
struct TaskMsg {
  TaskHeader head;
  std::string args;
  // Sending: the task's arguments are encoded from here (the parent keeps
  // them for a re-dispatch), not copied into `args` first.
  const std::string* send_args = nullptr;
};
struct ResultMsg {
  uint64_t id = 0;
  std::string payload;  // count x [tag][u32 len][bytes]
};
}  // namespace pool_internal

template <>
struct Codec<pool_internal::TaskMsg> {
  static void Encode(const pool_internal::TaskMsg& t, ByteWriter& out) {
    const std::string& args = t.send_args != nullptr ? *t.send_args : t.args;
    pool_internal::TaskHeader h = t.head;
    h.args_size = static_cast<uint32_t>(args.size());
    out.Write(&h, sizeof(h));
    out.Write(args.data(), args.size());
  }
  static absl::Status Decode(ByteReader& in, pool_internal::TaskMsg* t) {
    if (absl::Status s = in.Read(&t->head, sizeof(t->head)); !s.ok()) {
      return s;
    }
    if (t->head.args_size != in.remaining()) {
      return absl::DataLossError("pool: task message of the wrong size");
    }
    t->args.resize(t->head.args_size);
    return in.Read(t->args.data(), t->args.size());
  }
};
template <>
struct Codec<pool_internal::ResultMsg> {
  static void Encode(const pool_internal::ResultMsg& r, ByteWriter& out) {
    out.Write(&r.id, sizeof(r.id));
    out.Write(r.payload.data(), r.payload.size());
  }
  static absl::Status Decode(ByteReader& in, pool_internal::ResultMsg* r) {
    if (absl::Status s = in.Read(&r->id, sizeof(r->id)); !s.ok()) return s;
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
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// 1 MiB: a task or result up to 256 KiB (a chunk of ~30 k ints) goes through
// the ring; bigger ones take side segments. Pages are committed as used.
constexpr size_t kRingBytes = size_t{1} << 20;
constexpr auto kSlice = std::chrono::milliseconds(20);

// The handshake with the sleeping handler uses a full fence on both sides,
// not mp/core/fence.h's asymmetric pair: a wake-up check comes once per
// result (a fence is a few nanoseconds beside a task's hundreds), while the
// handler may go to sleep between any two tasks of a one-at-a-time caller,
// and a membarrier(2) there interrupts every core running a worker (a VM
// exit each on a virtual machine).
void WakeHandler(Control* c) {
  FullFence();
  if (c->handler_sleeping.load(std::memory_order_relaxed) != 0 &&
      c->handler_sleeping.exchange(0, std::memory_order_acq_rel) != 0) {
    c->epoch.fetch_add(1, std::memory_order_release);
    FutexWakeAll(&c->epoch);
  }
}

// ---- The worker -----------------------------------------------------------

struct WorkerArgs {
  Queue<TaskMsg> tasks;
  Queue<ResultMsg> results;
  Shared<WorkerSlot> slot;
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

void WorkerMain(WorkerArgs& a) {
  if (a.initializer) a.initializer();
  std::vector<std::pair<FunctionRef, const void*>> cache;
  int done = 0;
  for (;;) {
    absl::StatusOr<TaskMsg> t = a.tasks.Get();
    if (!t.ok()) {
      if (t.status().code() == absl::StatusCode::kOutOfRange) return;  // closed
      // A message that does not decode: our own parent's bytes, so the
      // ring is broken; leave, and the parent treats us as dead.
      std::fprintf(stderr, "mp::Pool worker: %s\n",
                   std::string(t.status().message()).c_str());
      std::fflush(stderr);
      _exit(70);
    }
    a.slot->running.store(t->head.id, std::memory_order_release);
    ResultMsg r;
    r.id = t->head.id;
    absl::Status error;
    const void* inv = Cached(cache, t->head.invoker, &error);
    const void* fn = t->head.fn == FunctionRef{}
                         ? nullptr
                         : Cached(cache, t->head.fn, &error);
    if (error.ok()) {
      reinterpret_cast<Invoker>(const_cast<void*>(inv))(
          fn, t->args.data(), t->args.size(), t->head.count, &r.payload);
    } else {
      FailItems(&r.payload, 0, t->head.count, error);
    }
    absl::Status s = a.results.Put(r);
    if (!s.ok()) _exit(71);  // the parent closed our ring: terminating
    WakeHandler(a.control.get());
    if (a.maxtasks > 0 && ++done >= a.maxtasks) return;
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

struct Worker {
  std::unique_ptr<Process> process;
  Queue<TaskMsg> tasks;
  Queue<ResultMsg> results;
  Shared<WorkerSlot> slot;
  Fifo<std::pair<uint64_t, TaskSpec>> window;  // sent, unanswered
  int sent = 0;  // tasks ever sent (for maxtasksperchild)
  pid_t pid = 0;
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

  absl::Status Submit(std::vector<TaskSpec> tasks, bool feeding) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (state_ == State::kTerminating || state_ == State::kDone) {
        return terminated_ ? absl::CancelledError("pool: terminated")
                           : absl::FailedPreconditionError("pool: not running");
      }
      if (state_ == State::kClosed && !feeding) {
        return absl::FailedPreconditionError("pool: Pool not running (closed)");
      }
      for (auto& t : tasks) submitted_.push_back(std::move(t));
      has_submissions_.store(true, std::memory_order_release);
    }
    pool_internal::WakeHandler(control_.get());
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
    pool_internal::WakeHandler(control_.get());
  }

  void Close() {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (state_ == State::kRunning) state_ = State::kClosed;
      has_submissions_.store(true, std::memory_order_release);
    }
    pool_internal::WakeHandler(control_.get());
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
    pool_internal::WakeHandler(control_.get());
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
    auto tasks = Queue<TaskMsg>::Make(
        {.capacity_bytes = kRingBytes, .mode = QueueMode::kSpsc});
    if (!tasks.ok()) return tasks.status();
    auto results = Queue<ResultMsg>::Make(
        {.capacity_bytes = kRingBytes, .mode = QueueMode::kSpsc});
    if (!results.ok()) return results.status();
    Worker w{nullptr,
             *tasks,
             *results,
             Shared<pool_internal::WorkerSlot>::Make(),
             pool_internal::Fifo<std::pair<uint64_t, TaskSpec>>(
                 static_cast<size_t>(options_.window)),
             0,
             0};
    const int n = started_count_.fetch_add(1) + 1;
    pool_internal::WorkerArgs args{*tasks, *results, w.slot, control_,
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

  void Deliver(const TaskSpec& t, const std::string& payload) {
    t.job->OnResult(t.first, t.count, payload.data(), payload.size());
  }

  void Fail(const TaskSpec& t, const absl::Status& s) {
    for (uint32_t i = 0; i < t.count; ++i) t.job->OnFailure(t.first + i, s);
  }

  // Takes every result ready in `w`'s ring; true when any.
  bool Collect(Worker& w) {
    bool any = false;
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
      if (w.window.empty() || w.window.front().first != r->id) {
        // Not what this worker was sent: kill it and let the death path
        // sort its window out.
        std::fprintf(stderr, "mp::Pool: %s sent an unexpected result\n",
                     w.process->name().c_str());
        (void)w.process->Kill();
        break;
      }
      TaskSpec t = std::move(w.window.front().second);
      w.window.pop_front();
      Deliver(t, r->payload);
    }
    return any;
  }

  bool Dispatch() {
    bool any = false;
    bool room = true;
    while (!pending_.empty() && room) {
      room = false;
      for (auto& w : workers_) {
        if (pending_.empty()) break;
        if (static_cast<int>(w.window.size()) >= options_.window) continue;
        if (options_.maxtasksperchild && w.sent >= *options_.maxtasksperchild) {
          continue;
        }
        TaskSpec& t = pending_.front();
        pool_internal::TaskMsg m;
        m.head.id = next_id_;
        m.head.invoker = t.invoker;
        m.head.fn = t.fn;
        m.head.count = t.count;
        // The parent keeps the arguments for a re-dispatch: encoded from
        // where they are.
        m.send_args = &t.args;
        if (!w.tasks.Put(m, Deadline::Past()).ok()) continue;  // ring full
        ++next_id_;
        ++w.sent;
        w.window.emplace_back(m.head.id, std::move(t));
        pending_.pop_front();
        any = room = true;
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
        const size_t before = w.window.size();
        Collect(w);
        if (w.window.size() == before) break;
      }
      // 2-3. The task it was running fails (or is retried); the rest were
      // never started.
      const uint64_t running = w.slot->running.load(std::memory_order_acquire);
      std::deque<TaskSpec> again;
      for (auto& [id, t] : w.window) {
        if (id == running) {
          if (t.tries < options_.task_retries) {
            ++t.tries;
            again.push_back(std::move(t));
          } else {
            Fail(t, absl::AbortedError(absl::StrCat(
                        "pool: worker ", w.process->name(), " (pid ", w.pid,
                        ") ", pool_internal::HowItDied(*code),
                        " while running this task")));
          }
        } else {
          again.push_back(std::move(t));
        }
      }
      for (auto it = again.rbegin(); it != again.rend(); ++it) {
        pending_.push_front(std::move(*it));
      }
      // 4. Unlink what big messages its task ring still holds.
      while (w.tasks.Get(Deadline::Past()).ok()) {
      }
      workers_.erase(workers_.begin() + static_cast<long>(i));
      any = true;
    }
    if (any) RecordPids();
    return any;
  }

  void KillAll() {
    for (auto& w : workers_) (void)w.process->Kill();
    for (auto& w : workers_) {
      (void)w.process->Join();
      while (w.results.Get(Deadline::Past()).ok()) {
      }
      while (w.tasks.Get(Deadline::Past()).ok()) {
      }
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
        std::lock_guard<std::mutex> l(mu_);
        state = state_;
        feeders = static_cast<int>(feeders_.size());
        if (pending_.empty()) {
          pending_.swap(submitted_);  // a Map's whole input, not moved
        } else {
          for (auto& t : submitted_) pending_.push_back(std::move(t));
          submitted_.clear();
        }
        has_submissions_.store(false, std::memory_order_relaxed);
      }
      if (state == State::kTerminating) {
        KillAll();
        const absl::Status c = absl::CancelledError("pool: terminated");
        for (auto& w : workers_) {
          for (auto& [id, t] : w.window) Fail(t, c);
        }
        workers_.clear();
        RecordPids();
        for (auto& t : pending_) Fail(t, c);
        pending_.clear();
        std::vector<TaskSpec> late;
        {
          std::lock_guard<std::mutex> l(mu_);
          for (auto& t : submitted_) late.push_back(std::move(t));
          submitted_.clear();
        }
        for (auto& t : late) Fail(t, c);
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
      if (++spins < 200) {
        CpuRelax();
        continue;
      }
      spins = 0;
      Sleep();
    }
  }

  void Sleep() {
    Control* c = control_.get();
    const uint32_t e = c->epoch.load(std::memory_order_acquire);
    c->handler_sleeping.store(1, std::memory_order_relaxed);
    FullFence();  // see WakeHandler
    bool ready = has_submissions_.load(std::memory_order_acquire);
    for (auto& w : workers_) ready |= !w.results.empty();
    if (!ready) FutexWait(&c->epoch, e, Deadline::After(kSlice));
    c->handler_sleeping.store(0, std::memory_order_relaxed);
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

  // Shared with the callers, under mu_.
  mutable std::mutex mu_;
  std::condition_variable done_cv_;
  State state_ = State::kRunning;
  bool terminated_ = false;
  // Imap inputs that may still submit (the handler winds down at none).
  std::vector<std::shared_ptr<pool_internal::Feeder>> feeders_;
  std::deque<TaskSpec> submitted_;
  std::atomic<bool> has_submissions_{false};

  // The handler's own.
  std::vector<Worker> workers_;
  std::deque<TaskSpec> pending_;
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
int Processes(const PoolCore& core) { return core.processes(); }
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
