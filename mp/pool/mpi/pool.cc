// mp/pool/mpi/pool.cc: Init, the serving ranks' loop, rank 0's dispatcher.
// See pool.h ("Design").
//
// Wire format (one MPI message per line; integers in the host's byte order:
// every rank runs the same binary on the same architecture):
//   kOpen      0->r  u64 pool, i32 processes (0: default), i32 maxtasks (0:
//                    none), i32 task_retries, i32 window, ref initializer
//                    ({0,0}: none), str worker_name
//   kOpened    r->0  u64 pool, u32 status code, str message, i32 processes
//   kTasks     0->r  u64 pool, u32 n, n x {u64 id, ref invoker, ref fn,
//                    u32 count, str args}
//   kResults   r->0  u64 pool, u32 n, n x {u64 id, u32 count, str items}
//                    (items: count x [u8 tag][u32 len][bytes], pool.h's)
//   kClose     0->r  u64 pool        kClosed  r->0  u64 pool
//   kTerminate 0->r  u64 pool        kExit    0->r  u8 finalize (0: _exit)
//   kHeartbeat r->0  (nothing), every 100 ms while a pool is open and
//                    nothing else was sent
// (ref: FunctionRef's 16 bytes; str: u32 length + bytes.) Every message is
// parsed with bounds checks; a serving rank that gets a malformed message
// from rank 0 leaves (exit 70), and rank 0 fails that rank's tasks.

#include "mp/pool/mpi/pool.h"

#include <mpi.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <list>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "mp/core/error.h"
#include "mp/core/process.h"

namespace mp::mpi {
namespace {

using pool_internal::FunctionRef;
using pool_internal::TaskSpec;
using Clock = std::chrono::steady_clock;

enum Tag : int {
  kOpen = 101,
  kOpened,
  kTasks,
  kResults,
  kClose,
  kClosed,
  kTerminate,
  kExit,
  kHeartbeat,
};

constexpr auto kHeartbeatEvery = std::chrono::milliseconds(100);
// How long a waiting side keeps polling MPI (each poll after a sched_yield,
// which hands the core to whoever else wants it) after its last activity
// before it sleeps in growing slices (up to 0.5 ms). Rank 0 while chunks are
// in flight: a result is usually due within a round trip; a serving rank
// with a pool open: its local pool holds queued work (the window), so it
// polls briefly. Measured on 2 loaded vCPUs: sleeping at once made a round
// trip ~1.5 ms, polling ~0.3 ms.
constexpr auto kDispatcherPoll = std::chrono::microseconds(2000);
constexpr auto kRankPoll = std::chrono::microseconds(200);

// ---- wire ------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  template <class T>
  void Pod(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>);
    out_->append(reinterpret_cast<const char*>(&v), sizeof(v));
  }
  void Str(std::string_view s) {
    Pod(static_cast<uint32_t>(s.size()));
    out_->append(s.data(), s.size());
  }

 private:
  std::string* out_;
};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), left_(n) {}
  explicit Reader(const std::string& s) : Reader(s.data(), s.size()) {}
  template <class T>
  bool Pod(T* v) {
    if (left_ < sizeof(T)) return false;
    std::memcpy(v, p_, sizeof(T));
    p_ += sizeof(T);
    left_ -= sizeof(T);
    return true;
  }
  // A view into the message.
  bool Str(std::string_view* s) {
    uint32_t n = 0;
    if (!Pod(&n) || n > left_) return false;
    *s = std::string_view(p_, n);
    p_ += n;
    left_ -= n;
    return true;
  }
  size_t left() const { return left_; }
  void Skip(size_t n) {
    n = std::min(n, left_);
    p_ += n;
    left_ -= n;
  }

 private:
  const char* p_;
  size_t left_;
};

// ---- process-wide state -----------------------------------------------------

enum class Mode { kNone, kFallback, kMpi };
Mode g_mode = Mode::kNone;
MPI_Comm g_comm = MPI_COMM_NULL;
int g_rank = 0;
std::vector<RankInfo> g_serving;  // rank 0: every other rank
std::set<int> g_pids_visible;     // rank 0: ranks whose pid it can check
std::string g_host;
std::atomic<bool> g_pool_open{false};
std::atomic<uint64_t> g_next_pool{1};
std::atomic<uint64_t> g_next_task{1};  // task ids, unique across pools
// Set once rank 0 has taken a rank for dead: the job then ends without
// MPI_Finalize, whose fence over every rank (the dead one too) can hang in
// OpenMPI 4.1.
std::atomic<bool> g_rank_died{false};

std::string MpiError(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int n = 0;
  if (MPI_Error_string(code, buf, &n) != MPI_SUCCESS) return "MPI error";
  return std::string(buf, static_cast<size_t>(n));
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "?";
  return buf;
}

// Non-blocking sends whose buffers live until MPI is done with them.
class Sends {
 public:
  // MPI's error, if the send could not start.
  int Send(int dest, int tag, std::string bytes) {
    items_.emplace_back();
    Item& it = items_.back();
    it.bytes = std::move(bytes);
    it.dest = dest;
    const int rc = MPI_Isend(it.bytes.data(), static_cast<int>(it.bytes.size()),
                             MPI_BYTE, dest, tag, g_comm, &it.req);
    if (rc != MPI_SUCCESS) items_.pop_back();
    return rc;
  }
  void Reap() {
    for (auto it = items_.begin(); it != items_.end();) {
      int done = 0;
      if (MPI_Test(&it->req, &done, MPI_STATUS_IGNORE) != MPI_SUCCESS || done) {
        it = items_.erase(it);
      } else {
        ++it;
      }
    }
  }
  // Waits (polling) until every send is done or `until`; the rest are
  // cancelled and freed (their peer is gone).
  void Drain(Clock::time_point until) {
    while (!items_.empty() && Clock::now() < until) {
      Reap();
      if (!items_.empty()) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    for (Item& it : items_) {
      MPI_Cancel(&it.req);
      MPI_Request_free(&it.req);
    }
    items_.clear();
  }
  bool empty() const { return items_.empty(); }

 private:
  struct Item {
    std::string bytes;
    int dest = 0;
    MPI_Request req = MPI_REQUEST_NULL;
  };
  std::list<Item> items_;
};

// One received message.
struct Msg {
  int source = 0;
  int tag = 0;
  std::string bytes;
};

// The next message from `source` (MPI_ANY_SOURCE), if one is there.
std::optional<Msg> Poll(int source) {
  int flag = 0;
  MPI_Status st;
  if (MPI_Iprobe(source, MPI_ANY_TAG, g_comm, &flag, &st) != MPI_SUCCESS ||
      !flag) {
    return std::nullopt;
  }
  int n = 0;
  MPI_Get_count(&st, MPI_BYTE, &n);
  Msg m;
  m.source = st.MPI_SOURCE;
  m.tag = st.MPI_TAG;
  m.bytes.resize(static_cast<size_t>(std::max(n, 0)));
  if (MPI_Recv(m.bytes.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, g_comm,
               MPI_STATUS_IGNORE) != MPI_SUCCESS) {
    return std::nullopt;
  }
  return m;
}

void WriteRef(Writer& w, const FunctionRef& r) {
  w.Pod(r.object);
  w.Pod(r.offset);
}
bool ReadRef(Reader& r, FunctionRef* f) {
  return r.Pod(&f->object) && r.Pod(&f->offset);
}

// Appends one failed item ([tag][len][code, message], pool.h's format).
void AppendFailedItem(std::string* out, const absl::Status& s) {
  const size_t mark = out->size();
  out->append(5, '\0');
  pool_internal::AppendFailed(out, mark, s);
}

absl::Status Prefixed(const absl::Status& s, const std::string& prefix) {
  absl::Status r(s.code(), absl::StrCat(prefix, s.message()));
  s.ForEachPayload([&r](absl::string_view url, const absl::Cord& payload) {
    r.SetPayload(url, payload);
  });
  return r;
}

// ---- serving ranks ------------------------------------------------------------

// Results ready to go to rank 0; filled by the local pool's handler thread.
struct Outbox {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t pool = 0;
  uint32_t n = 0;
  std::string records;  // n x {u64 id, u32 count, str items}

  void Add(uint64_t for_pool, uint64_t id, uint32_t count,
           const std::string& items) {
    std::lock_guard<std::mutex> l(mu);
    if (for_pool != pool) return;  // a pool that ended
    Writer w(&records);
    w.Pod(id);
    w.Pod(count);
    w.Str(items);
    ++n;
    cv.notify_one();
  }
};

// One task (chunk) run by the local pool: gathers its items' results and
// hands the chunk to the outbox when the last one is in. Called on the local
// pool's handler thread only.
class RankJob : public pool_internal::JobBase {
 public:
  RankJob(std::shared_ptr<Outbox> outbox, uint64_t pool, uint64_t id,
          uint32_t count, const std::string* prefix)
      : outbox_(std::move(outbox)),
        pool_(pool),
        id_(id),
        items_(count),
        left_(count),
        prefix_(prefix) {}
  void OnItem(size_t i, uint8_t tag, const char* data, size_t n) override {
    if (i >= items_.size()) return;
    pool_internal::AppendItem(&items_[i], tag, data, n);
    Done();
  }
  void OnFailure(size_t i, const absl::Status& s) override {
    if (i >= items_.size()) return;
    AppendFailedItem(&items_[i], Prefixed(s, *prefix_));
    Done();
  }
  void OnResult(size_t first, uint32_t count, const char* payload,
                size_t size) override {
    pool_internal::DeliverItems(*this, first, count, payload, size);
  }

 private:
  void Done() {
    if (--left_ != 0) return;
    std::string all;
    for (const std::string& s : items_) all += s;
    outbox_->Add(pool_, id_, static_cast<uint32_t>(items_.size()), all);
  }
  std::shared_ptr<Outbox> outbox_;
  uint64_t pool_;
  uint64_t id_;
  std::vector<std::string> items_;
  size_t left_;
  const std::string* prefix_;
};

[[noreturn]] void Serve(int serving_on_host) {
  const std::string prefix = absl::StrCat("rank ", g_rank, " on host ", g_host, ": ");
  auto outbox = std::make_shared<Outbox>();
  std::unique_ptr<mp::Pool> local;
  uint64_t pool = 0;
  std::map<std::pair<uint64_t, uint64_t>, absl::Status> resolved;
  auto check_ref = [&](const FunctionRef& ref) -> absl::Status {
    if (ref == FunctionRef{}) return absl::OkStatus();
    auto key = std::make_pair(ref.object, ref.offset);
    auto it = resolved.find(key);
    if (it == resolved.end()) {
      absl::StatusOr<const void*> p = ref.Resolve();
      absl::Status s = p.status();
      if (!s.ok()) {
        s = absl::Status(
            s.code(),
            absl::StrCat(prefix, "the task's function is not in this program: ",
                         s.message(),
                         " (not the same build of the program as rank 0?)"));
      }
      if (resolved.size() > 256) resolved.clear();
      it = resolved.emplace(key, s).first;
    }
    return it->second;
  };
  auto malformed = [&](const char* what) {
    std::fprintf(stderr, "mp::mpi rank %d: malformed %s message from rank 0\n",
                 g_rank, what);
    std::fflush(stderr);
    if (local) (void)local->Terminate();
    _exit(70);
  };

  Sends sends;
  auto last_sent = Clock::now();
  auto backoff = std::chrono::microseconds(20);
  auto last_busy = Clock::now();
  bool exit = false;
  bool skip_finalize = false;
  while (!exit) {
    bool busy = false;
    if (std::optional<Msg> m = Poll(0)) {
      busy = true;
      Reader r(m->bytes);
      switch (m->tag) {
        case kOpen: {
          uint64_t id = 0;
          int32_t processes = 0, maxtasks = 0, retries = 0, window = 0;
          FunctionRef init;
          std::string_view name;
          if (!r.Pod(&id) || !r.Pod(&processes) || !r.Pod(&maxtasks) ||
              !r.Pod(&retries) || !r.Pod(&window) || !ReadRef(r, &init) ||
              !r.Str(&name)) {
            malformed("open");
          }
          if (local) (void)local->Terminate();
          local.reset();
          absl::Status status;
          PoolOptions o;
          o.processes = processes > 0
                            ? processes
                            : std::max(1, cpu_count() / std::max(1, serving_on_host));
          if (maxtasks > 0) o.maxtasksperchild = maxtasks;
          o.task_retries = retries;
          o.window = window;
          o.worker_name = std::string(name);
          if (init != FunctionRef{}) {
            absl::StatusOr<const void*> p = init.Resolve();
            if (!p.ok()) {
              status = Prefixed(p.status(), prefix);
            } else {
              auto fn = reinterpret_cast<void (*)()>(const_cast<void*>(*p));
              o.initializer = [fn] { fn(); };
            }
          }
          int32_t got = 0;
          if (status.ok()) {
            absl::StatusOr<mp::Pool> p = mp::Pool::Make(o);
            if (p.ok()) {
              local = std::make_unique<mp::Pool>(*std::move(p));
              got = local->processes();
              pool = id;
              std::lock_guard<std::mutex> l(outbox->mu);
              outbox->pool = id;
              outbox->n = 0;
              outbox->records.clear();
            } else {
              status = Prefixed(p.status(), prefix);
            }
          }
          std::string out;
          Writer w(&out);
          w.Pod(id);
          w.Pod(static_cast<uint32_t>(status.code()));
          w.Str(std::string(status.message()));
          w.Pod(got);
          sends.Send(0, kOpened, std::move(out));
          break;
        }
        case kTasks: {
          uint64_t id = 0;
          uint32_t n = 0;
          if (!r.Pod(&id) || !r.Pod(&n)) malformed("tasks");
          std::vector<TaskSpec> specs;
          for (uint32_t i = 0; i < n; ++i) {
            uint64_t task = 0;
            FunctionRef inv, fn;
            uint32_t count = 0;
            std::string_view args;
            if (!r.Pod(&task) || !ReadRef(r, &inv) || !ReadRef(r, &fn) ||
                !r.Pod(&count) || !r.Str(&args) || count == 0) {
              malformed("tasks");
            }
            absl::Status s = check_ref(inv);
            if (s.ok()) s = check_ref(fn);
            if (s.ok() && (!local || id != pool)) {
              s = absl::FailedPreconditionError(
                  absl::StrCat(prefix, "no pool open for this task"));
            }
            if (!s.ok()) {
              std::string items;
              for (uint32_t k = 0; k < count; ++k) AppendFailedItem(&items, s);
              outbox->Add(id, task, count, items);  // dropped unless id is open
              continue;
            }
            TaskSpec t;
            t.job = std::make_shared<RankJob>(outbox, id, task, count, &prefix);
            t.count = count;
            t.invoker = inv;
            t.fn = fn;
            t.args = std::string(args);
            specs.push_back(std::move(t));
          }
          if (!specs.empty()) {
            std::vector<std::shared_ptr<pool_internal::JobBase>> jobs;
            for (const TaskSpec& t : specs) jobs.push_back(t.job);
            std::vector<uint32_t> counts;
            for (const TaskSpec& t : specs) counts.push_back(t.count);
            absl::Status s =
                pool_internal::PoolAccess::Submit(*local, std::move(specs));
            if (!s.ok()) {
              for (size_t j = 0; j < jobs.size(); ++j) {
                for (uint32_t k = 0; k < counts[j]; ++k) jobs[j]->OnFailure(k, s);
              }
            }
          }
          break;
        }
        case kClose:
        case kTerminate: {
          uint64_t id = 0;
          if (!r.Pod(&id)) malformed("close");
          if (local && id == pool) {
            if (m->tag == kClose) {
              local->Close();
              (void)local->Join();
            } else {
              (void)local->Terminate();
            }
            local.reset();
          }
          {
            std::lock_guard<std::mutex> l(outbox->mu);
            if (m->tag == kTerminate) {
              outbox->n = 0;
              outbox->records.clear();
              outbox->pool = 0;
            }
          }
          if (m->tag == kClose) {
            // Results first (the local pool answered everything before
            // Join returned), then the ack.
            std::string out;
            {
              std::lock_guard<std::mutex> l(outbox->mu);
              if (outbox->n != 0) {
                Writer w(&out);
                w.Pod(outbox->pool);
                w.Pod(outbox->n);
                out += outbox->records;
                outbox->n = 0;
                outbox->records.clear();
              }
              outbox->pool = 0;
            }
            if (!out.empty()) sends.Send(0, kResults, std::move(out));
            std::string ack;
            Writer(&ack).Pod(id);
            sends.Send(0, kClosed, std::move(ack));
          }
          break;
        }
        case kExit: {
          uint8_t finalize = 1;
          (void)r.Pod(&finalize);
          skip_finalize = finalize == 0;
          exit = true;
          break;
        }
        default:
          malformed("unknown");
      }
    }
    std::string out;
    {
      std::lock_guard<std::mutex> l(outbox->mu);
      if (outbox->n != 0) {
        Writer w(&out);
        w.Pod(outbox->pool);
        w.Pod(outbox->n);
        out += outbox->records;
        outbox->n = 0;
        outbox->records.clear();
      }
    }
    const auto now = Clock::now();
    if (!out.empty()) {
      sends.Send(0, kResults, std::move(out));
      busy = true;
      last_sent = now;
    } else if (local && now - last_sent >= kHeartbeatEvery) {
      // Only while a pool is open: rank 0 reads them only then.
      sends.Send(0, kHeartbeat, std::string());
      last_sent = now;
    }
    sends.Reap();
    if (busy) {
      backoff = std::chrono::microseconds(20);
      last_busy = now;
    } else if (local && now - last_busy < kRankPoll) {
      sched_yield();
    } else {
      std::unique_lock<std::mutex> l(outbox->mu);
      outbox->cv.wait_for(l, backoff, [&] { return outbox->n != 0; });
      // Polls MPI at most every 0.5 ms while a pool is open, 5 ms otherwise.
      backoff = std::min(backoff * 2, std::chrono::microseconds(local ? 500 : 5000));
    }
  }
  if (local) (void)local->Terminate();
  local.reset();
  sends.Drain(Clock::now() + std::chrono::seconds(2));
  std::fflush(nullptr);
  if (skip_finalize) _exit(0);
  MPI_Comm_free(&g_comm);
  MPI_Finalize();
  std::exit(0);
}

// ---- rank 0: shutdown ---------------------------------------------------------

void Shutdown(int status, void*) {
  if (g_mode != Mode::kMpi) return;
  const bool finalize = !g_rank_died.load();
  if (g_rank == 0) {
    Sends sends;
    std::string exit;
    Writer(&exit).Pod(static_cast<uint8_t>(finalize ? 1 : 0));
    for (const RankInfo& r : g_serving) sends.Send(r.rank, kExit, exit);
    sends.Drain(Clock::now() + std::chrono::seconds(2));
  }
  if (!finalize) {
    std::fflush(nullptr);
    _exit(status);  // see the header ("Failures") for why not MPI_Finalize
  }
  MPI_Comm_free(&g_comm);
  MPI_Finalize();
  g_mode = Mode::kNone;
}

// The kernel instance and pid namespace this process lives in ("<boot id>
// <pid ns>"): two processes with the same one see each other's pids, which a
// host name alone does not promise (containers, namespaces). Empty when
// unknown.
std::string PidSpace() {
  std::ifstream f("/proc/sys/kernel/random/boot_id");
  std::string boot;
  if (!std::getline(f, boot) || boot.empty()) return "";
  char ns[128];
  const ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
  if (n <= 0) return "";
  return boot + " " + std::string(ns, static_cast<size_t>(n));
}

bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) == -1 && errno == ESRCH) return true;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return true;
  const size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() &&
         line[close + 2] == 'Z';
}

}  // namespace

// ---- Init ---------------------------------------------------------------------

absl::Status Init(int& argc, char**& argv, InitOptions options) {
  if (g_mode != Mode::kNone) {
    return absl::FailedPreconditionError("mp::mpi::Init: called twice");
  }
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr) {
    if (options.allow_without_mpirun) {
      g_mode = Mode::kFallback;
      return absl::OkStatus();
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "mp::mpi: this program runs its pool over MPI and must be started by "
        "mpirun, e.g.\n  mpirun -n 3 ",
        argc > 0 ? argv[0] : "<program>",
        "\n(rank 0 runs main; ranks 1.. serve the pool; add "
        "--enable-recovery to survive a dead rank)"));
  }
  int provided = 0;
  int rc = MPI_Init_thread(&argc, &argv, MPI_THREAD_SERIALIZED, &provided);
  if (rc != MPI_SUCCESS) {
    return absl::InternalError(absl::StrCat("MPI_Init_thread: ", MpiError(rc)));
  }
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    return absl::InternalError(
        "mp::mpi: this MPI does not provide MPI_THREAD_SERIALIZED");
  }
  MPI_Comm_dup(MPI_COMM_WORLD, &g_comm);
  MPI_Comm_set_errhandler(g_comm, MPI_ERRORS_RETURN);
  int size = 1;
  MPI_Comm_rank(g_comm, &g_rank);
  MPI_Comm_size(g_comm, &size);
  g_host = HostName();

  // Serving ranks on this host (rank 0 dispatches only).
  MPI_Comm node;
  MPI_Comm_split_type(g_comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int node_size = 1;
  MPI_Comm_size(node, &node_size);
  int has_rank0 = g_rank == 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &has_rank0, 1, MPI_INT, MPI_MAX, node);
  MPI_Comm_free(&node);
  const int serving_on_host = node_size - has_rank0;

  struct Hello {
    int32_t pid;
    char host[64];
    char pid_space[96];  // PidSpace()
  };
  Hello me{};
  me.pid = static_cast<int32_t>(getpid());
  std::strncpy(me.host, g_host.c_str(), sizeof(me.host) - 1);
  const std::string space = PidSpace();
  std::strncpy(me.pid_space, space.c_str(), sizeof(me.pid_space) - 1);
  std::vector<Hello> all(g_rank == 0 ? static_cast<size_t>(size) : 0);
  MPI_Gather(&me, sizeof(Hello), MPI_BYTE, all.data(), sizeof(Hello), MPI_BYTE,
             0, g_comm);
  g_mode = Mode::kMpi;
  if (g_rank != 0) Serve(serving_on_host);
  for (int r = 1; r < size; ++r) {
    Hello h = all[static_cast<size_t>(r)];
    h.host[sizeof(h.host) - 1] = '\0';
    h.pid_space[sizeof(h.pid_space) - 1] = '\0';
    g_serving.push_back(RankInfo{r, h.host, static_cast<pid_t>(h.pid)});
    if (!space.empty() && space == h.pid_space) g_pids_visible.insert(r);
  }
  on_exit(Shutdown, nullptr);  // glibc: like atexit, with exit's status
  return absl::OkStatus();
}

bool Running() { return g_mode == Mode::kMpi; }
std::vector<RankInfo> ServingRanks() { return g_serving; }

// ---- rank 0: the core -------------------------------------------------------------

namespace internal {

class Core {
 public:
  ~Core() {
    if (thread_.joinable()) {
      {
        std::lock_guard<std::mutex> l(mu_);
        terminate_ = true;
      }
      wake_.notify_all();
      thread_.join();
    }
    if (open_) g_pool_open = false;
  }

  // The one-host fallback: everything goes to a local mp::Pool.
  absl::Status StartLocal(const PoolOptions& options) {
    absl::StatusOr<mp::Pool> p = mp::Pool::Make(options);
    if (!p.ok()) return p.status();
    local_ = std::make_unique<mp::Pool>(*std::move(p));
    processes_ = local_->processes();
    return absl::OkStatus();
  }

  absl::Status StartMpi(const PoolOptions& options, const MpiOptions& mpi,
                        FunctionRef init) {
    bool expected = false;
    if (!g_pool_open.compare_exchange_strong(expected, true)) {
      return absl::FailedPreconditionError(
          "mp::mpi::Pool: another MPI pool is open (one at a time)");
    }
    open_ = true;
    mpi_ = mpi;
    retries_ = options.task_retries;
    id_ = g_next_pool.fetch_add(1);
    for (const RankInfo& info : g_serving) {
      if (mpi.max_ranks > 0 && static_cast<int>(ranks_.size()) >= mpi.max_ranks) {
        break;
      }
      Rank r;
      r.info = info;
      r.heard = Clock::now();
      r.same_host = g_pids_visible.count(info.rank) != 0;
      ranks_.push_back(std::move(r));
    }
    if (ranks_.empty()) {
      return absl::UnavailableError("mp::mpi::Pool: no serving ranks");
    }
    std::string open;
    Writer w(&open);
    w.Pod(id_);
    w.Pod(static_cast<int32_t>(options.processes.value_or(0)));
    w.Pod(static_cast<int32_t>(options.maxtasksperchild.value_or(0)));
    w.Pod(static_cast<int32_t>(options.task_retries));
    w.Pod(static_cast<int32_t>(options.window));
    WriteRef(w, init);
    w.Str(options.worker_name);
    for (Rank& r : ranks_) {
      const int rc = sends_.Send(r.info.rank, kOpen, open);
      if (rc != MPI_SUCCESS) Died(r, absl::StrCat("(MPI_Isend: ", MpiError(rc), ")"));
    }
    // Every live rank answers kOpened (or dies).
    absl::Status error;
    for (;;) {
      bool waiting = false;
      for (Rank& r : ranks_) waiting |= r.alive && !r.opened;
      if (!waiting) break;
      if (!PollOnce()) {
        CheckLiveness();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      for (Rank& r : ranks_) {
        if (r.alive && !r.open_error.ok() && error.ok()) error = r.open_error;
      }
    }
    if (!error.ok()) {
      for (Rank& r : ranks_) {
        if (!r.alive) continue;
        std::string m;
        Writer(&m).Pod(id_);
        sends_.Send(r.info.rank, kTerminate, std::move(m));
      }
      sends_.Drain(Clock::now() + std::chrono::seconds(1));
      return error;
    }
    int live = 0;
    for (const Rank& r : ranks_) {
      if (r.alive) {
        processes_ += r.procs;
        ++live;
      }
    }
    if (live == 0) {
      return absl::UnavailableError(absl::StrCat(
          "mp::mpi::Pool: no serving rank answered: ", last_death_));
    }
    live_ = live;
    thread_ = std::thread([this] { Run(); });
    return absl::OkStatus();
  }

  absl::Status Submit(std::vector<TaskSpec> tasks, bool feeding) {
    if (local_) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (terminate_ || (closed_ && !(feeding && feeders_ > 0))) {
          return absl::FailedPreconditionError("pool: Pool not running");
        }
      }
      return pool_internal::PoolAccess::Submit(*local_, std::move(tasks));
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      if (terminate_) return absl::FailedPreconditionError("pool: Pool terminated");
      if (closed_ && !(feeding && feeders_ > 0)) {
        return absl::FailedPreconditionError("pool: Pool not running (closed)");
      }
      outstanding_ += tasks.size();
      ++submits_;
      for (TaskSpec& t : tasks) queue_.push_back(std::move(t));
    }
    wake_.notify_one();
    return absl::OkStatus();
  }

  bool AddFeeder(std::shared_ptr<pool_internal::Feeder> feeder) {
    {
      std::lock_guard<std::mutex> l(mu_);
      if (closed_ || terminate_) return false;
      feeder_list_.push_back(std::move(feeder));
      feeders_ = static_cast<int>(feeder_list_.size());
    }
    wake_.notify_all();
    return true;
  }
  void RemoveFeeder(const pool_internal::Feeder* feeder) {
    bool close_local = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      std::erase_if(feeder_list_,
                    [feeder](const auto& f) { return f.get() == feeder; });
      feeders_ = static_cast<int>(feeder_list_.size());
      close_local = local_ && closed_ && feeders_ == 0;
    }
    if (close_local) local_->Close();
    wake_.notify_all();
    done_.notify_all();
  }

  void Close() {
    bool close_local = false;
    {
      std::lock_guard<std::mutex> l(mu_);
      closed_ = true;
      close_local = local_ && feeders_ == 0;
    }
    if (close_local) local_->Close();
    wake_.notify_all();
  }

  absl::Status Terminate() {
    if (OnDispatcher()) {
      return absl::FailedPreconditionError(
          "pool: Terminate from a callback would deadlock");
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      terminate_ = true;
    }
    if (local_) return local_->Terminate();
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    done_.notify_all();
    return absl::OkStatus();
  }

  absl::Status Join(Deadline deadline) {
    if (OnDispatcher()) {
      return absl::FailedPreconditionError(
          "pool: Join from a callback would deadlock");
    }
    std::vector<std::shared_ptr<pool_internal::Feeder>> feeders;
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!closed_ && !terminate_) {
        return absl::FailedPreconditionError("pool: Pool is still running");
      }
      feeders = feeder_list_;
    }
    // Every Imap input left goes in now, as mp::Pool's Join does.
    for (auto& f : feeders) f->FeedAll();
    std::unique_lock<std::mutex> l(mu_);
    if (local_) {
      auto ready = [&] { return feeders_ == 0 || terminate_; };
      if (deadline.infinite()) {
        done_.wait(l, ready);
      } else if (!done_.wait_until(l, deadline.time_point(), ready)) {
        return absl::DeadlineExceededError("pool: Join timed out");
      }
      l.unlock();
      return local_->Join(deadline);
    }
    auto ready = [&] { return finished_; };
    if (deadline.infinite()) {
      done_.wait(l, ready);
    } else if (!done_.wait_until(l, deadline.time_point(), ready)) {
      return absl::DeadlineExceededError("pool: Join timed out");
    }
    l.unlock();
    if (thread_.joinable()) thread_.join();
    return absl::OkStatus();
  }

  int processes() const { return std::max(processes_, 1); }
  int live_ranks() const { return live_.load(); }

 private:
  struct Rank {
    RankInfo info;
    bool same_host = false;
    bool alive = true;
    bool opened = false;
    bool closed = false;
    absl::Status open_error;
    int procs = 0;
    size_t capacity = 1;
    std::map<uint64_t, TaskSpec> inflight;
    Clock::time_point heard;
  };

  bool OnDispatcher() const {
    return thread_.joinable() && std::this_thread::get_id() == thread_.get_id();
  }

  Rank* Find(int rank) {
    for (Rank& r : ranks_) {
      if (r.info.rank == rank) return &r;
    }
    return nullptr;
  }

  // Handles one message if one is there.
  bool PollOnce() {
    std::optional<Msg> m = Poll(MPI_ANY_SOURCE);
    if (!m) return false;
    Rank* r = Find(m->source);
    if (r == nullptr || !r->alive) return true;  // late words of a dead rank
    r->heard = Clock::now();
    Reader in(m->bytes);
    uint64_t id = 0;
    switch (m->tag) {
      case kHeartbeat:
        break;
      case kOpened: {
        uint32_t code = 0;
        std::string_view msg;
        int32_t procs = 0;
        if (!in.Pod(&id) || !in.Pod(&code) || !in.Str(&msg) || !in.Pod(&procs) ||
            code > 16 || procs < 0) {
          Died(*r, "(sent a malformed reply)");
          break;
        }
        if (id != id_) break;
        r->opened = true;
        r->procs = procs;
        r->capacity = mpi_.chunks_in_flight > 0
                          ? static_cast<size_t>(mpi_.chunks_in_flight)
                          : 16 * static_cast<size_t>(std::max(procs, 1));
        if (code != 0) {
          r->open_error = absl::Status(static_cast<absl::StatusCode>(code),
                                       std::string(msg));
        }
        break;
      }
      case kResults:
        OnResults(*r, in);
        break;
      case kClosed:
        if (in.Pod(&id) && id == id_) r->closed = true;
        break;
      default:
        Died(*r, "(sent an unknown message)");
    }
    return true;
  }

  void OnResults(Rank& r, Reader& in) {
    uint64_t pool = 0;
    uint32_t n = 0;
    if (!in.Pod(&pool) || !in.Pod(&n)) {
      Died(r, "(sent a malformed result)");
      return;
    }
    if (pool != id_) return;  // an earlier pool's
    for (uint32_t i = 0; i < n; ++i) {
      uint64_t task = 0;
      uint32_t count = 0;
      std::string_view items;
      if (!in.Pod(&task) || !in.Pod(&count) || !in.Str(&items)) {
        Died(r, "(sent a malformed result)");
        return;
      }
      auto it = r.inflight.find(task);
      if (it == r.inflight.end()) continue;
      TaskSpec t = std::move(it->second);
      r.inflight.erase(it);
      // One call per chunk; the job checks every item's bounds (a malformed
      // one fails with the rest as DataLoss). Each index exactly once.
      if (count == t.count) {
        t.job->OnResult(t.first, t.count, items.data(), items.size());
      } else {
        for (uint32_t k = 0; k < t.count; ++k) {
          t.job->OnFailure(
              t.first + k,
              absl::DataLossError(absl::StrCat(
                  "rank ", r.info.rank, " on host ", r.info.host,
                  ": a result with the wrong number of items")));
        }
      }
      Answered(1);
    }
  }

  void Answered(size_t n) {
    std::lock_guard<std::mutex> l(mu_);
    outstanding_ -= n;
    done_.notify_all();
  }

  // Takes the rank out of the rotation; its chunks fail or are re-queued.
  void Died(Rank& r, const std::string& how) {
    if (!r.alive) return;
    r.alive = false;
    g_rank_died = true;
    live_ = live_.load() - 1;
    const absl::Status s = absl::AbortedError(absl::StrCat(
        "rank ", r.info.rank, " on host ", r.info.host, " (pid ", r.info.pid,
        ") died ", how, "; the task was in flight there"));
    last_death_ = std::string(s.message());
    std::vector<TaskSpec> again;
    size_t failed = 0;
    for (auto& [id, t] : r.inflight) {
      if (t.tries < retries_) {
        ++t.tries;
        again.push_back(std::move(t));
      } else {
        for (uint32_t k = 0; k < t.count; ++k) t.job->OnFailure(t.first + k, s);
        ++failed;
      }
    }
    r.inflight.clear();
    {
      std::lock_guard<std::mutex> l(mu_);
      for (auto it = again.rbegin(); it != again.rend(); ++it) {
        queue_.push_front(std::move(*it));
      }
    }
    if (failed) Answered(failed);
  }

  void CheckLiveness() {
    const auto now = Clock::now();
    for (Rank& r : ranks_) {
      if (!r.alive) continue;
      if (r.same_host && ProcessGone(r.info.pid)) {
        Died(r, "(its process is gone)");
      } else if (now - r.heard > mpi_.rank_timeout) {
        Died(r, absl::StrCat("(silent for ",
                             std::chrono::duration_cast<std::chrono::milliseconds>(
                                 now - r.heard)
                                 .count(),
                             " ms)"));
      }
    }
  }

  // Sends queued chunks to ranks with room. Whether anything went.
  bool Dispatch() {
    std::vector<std::pair<Rank*, std::vector<std::pair<uint64_t, TaskSpec>>>> plan;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (queue_.empty()) return false;
      // Most room first.
      std::vector<Rank*> order;
      for (Rank& r : ranks_) {
        if (r.alive && r.inflight.size() < r.capacity) order.push_back(&r);
      }
      std::sort(order.begin(), order.end(), [](Rank* a, Rank* b) {
        return a->capacity - a->inflight.size() > b->capacity - b->inflight.size();
      });
      for (Rank* r : order) {
        const size_t room = r->capacity - r->inflight.size();
        // Batch: wait for a quarter of the room unless the rank is idle.
        if (!r->inflight.empty() && room < std::max<size_t>(1, r->capacity / 4)) {
          continue;
        }
        std::vector<std::pair<uint64_t, TaskSpec>> batch;
        while (batch.size() < room && !queue_.empty()) {
          batch.emplace_back(g_next_task.fetch_add(1), std::move(queue_.front()));
          queue_.pop_front();
        }
        if (!batch.empty()) plan.emplace_back(r, std::move(batch));
        if (queue_.empty()) break;
      }
    }
    for (auto& [r, batch] : plan) {
      std::string out;
      Writer w(&out);
      w.Pod(id_);
      w.Pod(static_cast<uint32_t>(batch.size()));
      for (auto& [id, t] : batch) {
        w.Pod(id);
        WriteRef(w, t.invoker);
        WriteRef(w, t.fn);
        w.Pod(t.count);
        w.Str(t.args);
      }
      for (auto& [id, t] : batch) r->inflight.emplace(id, std::move(t));
      const int rc = sends_.Send(r->info.rank, kTasks, std::move(out));
      if (rc != MPI_SUCCESS) {
        Died(*r, absl::StrCat("(MPI_Isend: ", MpiError(rc), ")"));
      }
    }
    return !plan.empty();
  }

  // No rank left: every waiting chunk fails.
  void FailQueue(const absl::Status& s) {
    std::deque<TaskSpec> q;
    {
      std::lock_guard<std::mutex> l(mu_);
      q.swap(queue_);
    }
    for (TaskSpec& t : q) {
      for (uint32_t k = 0; k < t.count; ++k) t.job->OnFailure(t.first + k, s);
    }
    if (!q.empty()) Answered(q.size());
  }

  void Run() {
    auto backoff = std::chrono::microseconds(20);
    auto last_busy = Clock::now();
    auto last_check = Clock::now();
    bool closing = false;
    for (;;) {
      bool busy = false;
      for (int i = 0; i < 64 && PollOnce(); ++i) busy = true;
      const auto now = Clock::now();
      if (now - last_check > std::chrono::milliseconds(50)) {
        CheckLiveness();
        last_check = now;
      }
      if (live_.load() == 0) {
        FailQueue(absl::UnavailableError(absl::StrCat(
            "mp::mpi::Pool: no serving rank left; last: ", last_death_)));
      }
      busy |= Dispatch();
      sends_.Reap();

      bool terminate, close_now;
      size_t inflight = 0;
      for (const Rank& r : ranks_) inflight += r.inflight.size();
      {
        std::lock_guard<std::mutex> l(mu_);
        terminate = terminate_;
        close_now = closed_ && feeders_ == 0 && outstanding_ == 0;
      }
      if (terminate) {
        const absl::Status s =
            absl::CancelledError("pool: the pool was terminated");
        FailQueue(s);
        size_t n = 0;
        for (Rank& r : ranks_) {
          for (auto& [id, t] : r.inflight) {
            for (uint32_t k = 0; k < t.count; ++k) t.job->OnFailure(t.first + k, s);
            ++n;
          }
          r.inflight.clear();
          if (!r.alive) continue;
          std::string m;
          Writer(&m).Pod(id_);
          sends_.Send(r.info.rank, kTerminate, std::move(m));
        }
        if (n) Answered(n);
        break;
      }
      if (close_now && !closing) {
        closing = true;
        for (Rank& r : ranks_) {
          if (!r.alive) continue;
          std::string m;
          Writer(&m).Pod(id_);
          sends_.Send(r.info.rank, kClose, std::move(m));
        }
      }
      if (closing) {
        bool all = true;
        for (const Rank& r : ranks_) all &= !r.alive || r.closed;
        if (all) break;
      }
      if (busy) {
        backoff = std::chrono::microseconds(20);
        last_busy = now;
        continue;
      }
      const bool idle = inflight == 0 && !closing;
      if (!idle && Clock::now() - last_busy < kDispatcherPoll) {
        sched_yield();
        continue;
      }
      std::unique_lock<std::mutex> l(mu_);
      const uint64_t seen = submits_;
      // Woken by a submission, Terminate, or Close with nothing left; else
      // the timeout polls MPI (results, heartbeats, deaths).
      wake_.wait_for(l, idle ? std::chrono::microseconds(50000) : backoff, [&] {
        return terminate_ || submits_ != seen ||
               (!closing && closed_ && feeders_ == 0 && outstanding_ == 0);
      });
      backoff = std::min(backoff * 2, std::chrono::microseconds(500));
    }
    sends_.Drain(Clock::now() + std::chrono::seconds(2));
    // Every rank has closed or terminated this pool: the next may open.
    open_ = false;
    g_pool_open = false;
    std::lock_guard<std::mutex> l(mu_);
    finished_ = true;
    done_.notify_all();
  }

  std::unique_ptr<mp::Pool> local_;
  MpiOptions mpi_;
  int retries_ = 0;
  uint64_t id_ = 0;
  bool open_ = false;
  int processes_ = 0;
  std::atomic<int> live_{0};
  std::vector<Rank> ranks_;  // dispatcher only (Make's thread before it)
  Sends sends_;

  std::string last_death_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::deque<TaskSpec> queue_;
  size_t outstanding_ = 0;
  uint64_t submits_ = 0;
  int feeders_ = 0;  // feeder_list_.size()
  // Imap inputs that may still submit (Join feeds them).
  std::vector<std::shared_ptr<pool_internal::Feeder>> feeder_list_;
  bool closed_ = false;
  bool terminate_ = false;
  bool finished_ = false;
  std::thread thread_;
};

absl::Status Submit(Core& core, std::vector<TaskSpec> tasks, bool feeding) {
  return core.Submit(std::move(tasks), feeding);
}
int Processes(const Core& core) { return core.processes(); }
bool AddFeeder(Core& core, std::shared_ptr<pool_internal::Feeder> feeder) {
  return core.AddFeeder(std::move(feeder));
}
void RemoveFeeder(Core& core, const pool_internal::Feeder* feeder) {
  core.RemoveFeeder(feeder);
}
Core& CoreOf(Pool& pool) { return *pool.core_; }

}  // namespace internal

// ---- Pool ------------------------------------------------------------------------

absl::StatusOr<Pool> Pool::Make(PoolOptions options, MpiOptions mpi) {
  if (options.processes && *options.processes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool: processes must be at least 1 (got ", *options.processes, ")"));
  }
  if (options.maxtasksperchild && *options.maxtasksperchild < 1) {
    return absl::InvalidArgumentError("pool: maxtasksperchild must be at least 1");
  }
  if (options.window < 1) {
    return absl::InvalidArgumentError("pool: window must be at least 1");
  }
  if (options.task_retries < 0) {
    return absl::InvalidArgumentError("pool: task_retries must be at least 0");
  }
  if (mpi.chunks_in_flight < 0 || mpi.max_ranks < 0) {
    return absl::InvalidArgumentError(
        "mp::mpi::Pool: chunks_in_flight and max_ranks must be at least 0");
  }
  auto core = std::make_shared<internal::Core>();
  if (g_mode != Mode::kMpi) {
    if (g_mode == Mode::kNone) {
      return absl::FailedPreconditionError(
          "mp::mpi::Pool: call mp::mpi::Init(argc, argv) first, early in main");
    }
    if (absl::Status s = core->StartLocal(options); !s.ok()) return s;
    return Pool(core);
  }
  FunctionRef init;
  if (options.initializer) {
    auto* const* fn = options.initializer.target<void (*)()>();
    if (fn == nullptr) {
      return absl::InvalidArgumentError(
          "mp::mpi::Pool: the initializer must be a plain function (void()): "
          "it travels to other hosts as a function reference, so captured "
          "initargs cannot go with it");
    }
    absl::StatusOr<FunctionRef> ref = pool_internal::RefOf(*fn);
    if (!ref.ok()) return ref.status();
    init = *ref;
  }
  if (absl::Status s = core->StartMpi(options, mpi, init); !s.ok()) return s;
  return Pool(core);
}

Pool::Pool(PoolOptions options, MpiOptions mpi)
    : Pool(ValueOrThrow(Make(std::move(options), mpi))) {}
Pool::Pool(std::shared_ptr<internal::Core> core) : core_(std::move(core)) {}
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
int Pool::live_ranks() const { return core_->live_ranks(); }

}  // namespace mp::mpi
