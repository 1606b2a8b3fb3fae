// pool_bench: mp::Pool against the ways a C++ program runs tasks in other
// processes. Names are `case/impl`, peers in the same run.
//
//   pool_map_tiny            100 k tasks x*2, chunksize 1
//   pool_map_tiny_chunked    the same, Python's automatic chunksize
//   pool_apply_async_tiny    100 k ApplyAsync, then every Get
//   pool_apply_roundtrip     one Apply at a time (latency, submit to result)
//   pool_imap_unordered_tiny 100 k items through ImapUnordered
//   pool_map_cpu/W           tasks of ~100 us of arithmetic over W workers,
//                            against `serial` (the speed-up is the ratio)
//
// impls: mp (mp::Pool); pipe_pool (the same pool design over PipeQueue:
// workers forked once, a task PipeQueue per worker and a result PipeQueue,
// a task = a function index + its arguments through mp::Codec, a bounded
// window per worker, a feeder and a collector thread in the parent);
// raw_pipe (that shape over bare pipes with fixed 4-byte tasks and results
// and no threads: a ceiling for any pipe-based pool, the honest plain
// reference); fork_per_task (a process forked per task, the result through
// its pipe; 1/100th of the tasks);
// zmq_pool (the ZeroMQ ventilator: PUSH tasks over ipc:// to forked PULL
// workers, results PUSHed to a sink PULL in the parent; the chunked case
// sends Python's automatic chunksize of items per message).
// CPython's Pool: bench/peers/python_pool.py prints the same case names.
//
//   bazel run -c opt //bench:pool_bench -- --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "benchmark/benchmark.h"
#include "mp/core/process.h"
#include "mp/pool/pool.h"
#include "mp/queue/codec.h"
#include "mp/queue/pipe_queue.h"

namespace {

constexpr int kTiny = 100000;
int Workers() { return std::max(2, mp::cpu_count()); }

int Twice(int x) { return x * 2; }

// About 100 us of arithmetic on this kind of machine.
int Spin(int seed) {
  uint64_t x = static_cast<uint64_t>(seed) + 1;
  for (int i = 0; i < 60000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<int>(x >> 33);
}

std::vector<int> Inputs(int n) {
  std::vector<int> v(n);
  for (int i = 0; i < n; ++i) v[i] = i;
  return v;
}

// ---- mp ---------------------------------------------------------------------

void BM_MapTinyMp(benchmark::State& state, std::optional<size_t> chunksize) {
  mp::Pool pool(Workers());
  const std::vector<int> in = Inputs(kTiny);
  for (auto _ : state) {
    auto out = pool.Map(Twice, in, chunksize);
    if (!out.ok() || (*out)[kTiny - 1] != 2 * (kTiny - 1)) {
      state.SkipWithError("bad result");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_ApplyAsyncTinyMp(benchmark::State& state) {
  mp::Pool pool(Workers());
  for (auto _ : state) {
    std::vector<mp::AsyncResult<int>> rs;
    rs.reserve(kTiny);
    for (int i = 0; i < kTiny; ++i) rs.push_back(pool.ApplyAsync(Twice, std::make_tuple(i)));
    for (auto& r : rs) benchmark::DoNotOptimize(r.Get());
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_ApplyRoundtripMp(benchmark::State& state) {
  mp::Pool pool(1);
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(pool.Apply(Twice, ++i));
  state.SetItemsProcessed(state.iterations());
}

void BM_ImapUnorderedTinyMp(benchmark::State& state) {
  mp::Pool pool(Workers());
  for (auto _ : state) {
    long sum = 0;
    for (auto& r : pool.ImapUnordered(Twice, std::views::iota(0, kTiny),
                                      {.chunksize = 1, .max_in_flight = 1024})) {
      sum += *r;
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_MapCpuMp(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  mp::Pool pool(workers);
  const std::vector<int> in = Inputs(200 * workers);
  for (auto _ : state) benchmark::DoNotOptimize(pool.Map(Spin, in, 1));
  state.SetItemsProcessed(state.iterations() * in.size());
}

void BM_MapCpuSerial(benchmark::State& state) {
  const std::vector<int> in = Inputs(200 * static_cast<int>(state.range(0)));
  for (auto _ : state) {
    for (int x : in) benchmark::DoNotOptimize(Spin(x));
  }
  state.SetItemsProcessed(state.iterations() * in.size());
}

// ---- raw_pipe ---------------------------------------------------------------

struct RawPipePool {
  struct W {
    pid_t pid;
    int task_fd;    // parent writes
    int result_fd;  // parent reads
    int inflight = 0;
  };
  std::vector<W> workers;
  explicit RawPipePool(int n) {
    for (int i = 0; i < n; ++i) {
      int t[2], r[2];
      if (pipe(t) != 0 || pipe(r) != 0) std::abort();
      const pid_t pid = fork();
      if (pid == 0) {
        close(t[1]);
        close(r[0]);
        for (auto& w : workers) {  // the earlier workers' ends: theirs only
          close(w.task_fd);
          close(w.result_fd);
        }
        int x;
        while (read(t[0], &x, sizeof x) == sizeof x) {
          const int y = Twice(x);
          if (write(r[1], &y, sizeof y) != sizeof y) break;
        }
        _exit(0);
      }
      close(t[0]);
      close(r[1]);
      workers.push_back({pid, t[1], r[0]});
    }
  }
  ~RawPipePool() {
    for (auto& w : workers) {
      close(w.task_fd);
      close(w.result_fd);
      int st;
      waitpid(w.pid, &st, 0);
    }
  }
  // Maps Twice over n items, `chunk` items per write, a window of 16 chunks.
  long Map(int n, int chunk) {
    long sum = 0;
    int next = 0, done = 0;
    std::vector<int> buf(chunk);
    std::vector<pollfd> fds(workers.size());
    while (done < n) {
      for (auto& w : workers) {
        while (next < n && w.inflight < 16 * chunk) {
          const int k = std::min(chunk, n - next);
          for (int j = 0; j < k; ++j) buf[j] = next + j;
          if (write(w.task_fd, buf.data(), k * sizeof(int)) < 0) std::abort();
          next += k;
          w.inflight += k;
        }
      }
      for (size_t i = 0; i < workers.size(); ++i) fds[i] = {workers[i].result_fd, POLLIN, 0};
      poll(fds.data(), fds.size(), -1);
      for (size_t i = 0; i < workers.size(); ++i) {
        if (!(fds[i].revents & POLLIN)) continue;
        int got[256];
        const ssize_t m = read(workers[i].result_fd, got, sizeof got);
        if (m <= 0) std::abort();
        for (ssize_t j = 0; j < m / static_cast<ssize_t>(sizeof(int)); ++j) sum += got[j];
        workers[i].inflight -= static_cast<int>(m / sizeof(int));
        done += static_cast<int>(m / sizeof(int));
      }
    }
    return sum;
  }
};

void BM_MapTinyRawPipe(benchmark::State& state, bool chunked) {
  RawPipePool pool(Workers());
  const int chunk =
      chunked ? static_cast<int>(mp::pool_internal::AutoChunksize(kTiny, Workers()))
              : 1;
  // At most 64 items per write: RawPipePool reads results 256 ints at a time.
  for (auto _ : state) benchmark::DoNotOptimize(pool.Map(kTiny, std::min(chunk, 64)));
  state.SetItemsProcessed(state.iterations() * kTiny);
}

// ---- pipe_pool ----------------------------------------------------------------
//
// The same pool design as mp::Pool, over PipeQueue: workers forked once, a
// task PipeQueue per worker and one result PipeQueue, a task = an index into
// a table of functions every worker has + its arguments as mp::Codec bytes,
// a bounded window of tasks per worker. The parent side is what a plain C++
// pool looks like (and what CPython's Pool does with its handler threads): a
// feeder thread moves submitted tasks into the workers' queues, a collector
// thread takes results, both under one mutex with condition variables.

struct PipeTask {
  uint32_t fn = 0;
  uint64_t id = 0;
  std::string args;
};
struct PipeResult {
  uint32_t worker = 0;
  uint64_t id = 0;
  std::string value;
};

}  // namespace

template <>
struct mp::Codec<PipeTask> {
  static void Encode(const PipeTask& t, ByteWriter& out) {
    out.Put(t.fn);
    out.Put(t.id);
    out.Put(t.args);
  }
  static absl::Status Decode(ByteReader& in, PipeTask* t) {
    if (absl::Status s = in.Get(&t->fn); !s.ok()) return s;
    if (absl::Status s = in.Get(&t->id); !s.ok()) return s;
    return in.Get(&t->args);
  }
};
template <>
struct mp::Codec<PipeResult> {
  static void Encode(const PipeResult& r, ByteWriter& out) {
    out.Put(r.worker);
    out.Put(r.id);
    out.Put(r.value);
  }
  static absl::Status Decode(ByteReader& in, PipeResult* r) {
    if (absl::Status s = in.Get(&r->worker); !s.ok()) return s;
    if (absl::Status s = in.Get(&r->id); !s.ok()) return s;
    return in.Get(&r->value);
  }
};

namespace {

// Decodes an A, calls F, encodes the result; for a chunk, a vector of A.
template <auto F, class A>
std::string Invoke(const std::string& args) {
  A a{};
  if (!mp::DecodeMessage(args.data(), args.size(), &a).ok()) _exit(3);
  std::string out;
  mp::EncodeMessage(F(a), &out);
  return out;
}
template <auto F, class A>
std::string InvokeChunk(const std::string& args) {
  std::vector<A> in;
  if (!mp::DecodeMessage(args.data(), args.size(), &in).ok()) _exit(3);
  std::vector<decltype(F(in[0]))> res;
  res.reserve(in.size());
  for (const A& a : in) res.push_back(F(a));
  std::string out;
  mp::EncodeMessage(res, &out);
  return out;
}
using Invoker = std::string (*)(const std::string&);
constexpr Invoker kFunctions[] = {&Invoke<Twice, int>, &InvokeChunk<Twice, int>};
constexpr uint32_t kTwiceFn = 0, kTwiceChunkFn = 1;

class PipeQueuePool {
 public:
  explicit PipeQueuePool(int n, int window = 16)
      : window_(window), inflight_(n, 0) {
    for (int i = 0; i < n; ++i) tasks_.emplace_back();
    for (int i = 0; i < n; ++i) {  // forked before the threads start
      const pid_t pid = fork();
      if (pid < 0) std::abort();
      if (pid == 0) WorkerLoop(i);
      pids_.push_back(pid);
    }
    feeder_ = std::thread([this] { Feed(); });
    collector_ = std::thread([this] { Collect(); });
  }

  ~PipeQueuePool() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    feed_cv_.notify_all();
    feeder_.join();
    for (auto& q : tasks_) q.Close();  // each worker exits at end of stream
    for (pid_t pid : pids_) {
      int st;
      waitpid(pid, &st, 0);
    }
    results_.Close();  // the collector takes what is left, then stops
    collector_.join();
  }

  uint64_t Submit(uint32_t fn, std::string args) {
    uint64_t id;
    {
      std::lock_guard<std::mutex> l(mu_);
      id = next_id_++;
      pending_.push_back({fn, id, std::move(args)});
    }
    feed_cv_.notify_one();
    return id;
  }

  std::string Get(uint64_t id) {
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return done_.contains(id); });
    auto it = done_.find(id);
    std::string v = std::move(it->second);
    done_.erase(it);
    return v;
  }

  template <class R, class A>
  R Apply(uint32_t fn, const A& arg) {
    std::string buf;
    mp::EncodeMessage(arg, &buf);
    const std::string out = Get(Submit(fn, std::move(buf)));
    R r{};
    if (!mp::DecodeMessage(out.data(), out.size(), &r).ok()) std::abort();
    return r;
  }

  // Twice over 0..n-1 in tasks of `chunk` items; the sum of the results.
  long MapTwice(int n, int chunk) {
    std::vector<uint64_t> ids;
    ids.reserve(n / chunk + 1);
    std::string buf;
    std::vector<int> items;
    for (int i = 0; i < n; i += chunk) {
      if (chunk == 1) {
        mp::EncodeMessage(i, &buf);
        ids.push_back(Submit(kTwiceFn, buf));
      } else {
        items.clear();
        for (int j = i; j < std::min(n, i + chunk); ++j) items.push_back(j);
        mp::EncodeMessage(items, &buf);
        ids.push_back(Submit(kTwiceChunkFn, buf));
      }
    }
    long sum = 0;
    for (uint64_t id : ids) {
      const std::string out = Get(id);
      if (chunk == 1) {
        int y = 0;
        if (!mp::DecodeMessage(out.data(), out.size(), &y).ok()) std::abort();
        sum += y;
      } else {
        std::vector<int> ys;
        if (!mp::DecodeMessage(out.data(), out.size(), &ys).ok()) std::abort();
        for (int y : ys) sum += y;
      }
    }
    return sum;
  }

 private:
  [[noreturn]] void WorkerLoop(int me) {
    for (;;) {
      absl::StatusOr<PipeTask> t = tasks_[me].Get();
      if (!t.ok()) _exit(0);  // end of stream
      if (t->fn >= std::size(kFunctions)) _exit(3);
      PipeResult r{static_cast<uint32_t>(me), t->id, kFunctions[t->fn](t->args)};
      if (!results_.Put(r).ok()) _exit(4);
    }
  }

  void Feed() {
    for (;;) {
      PipeTask t;
      size_t w = 0;
      {
        std::unique_lock<std::mutex> l(mu_);
        feed_cv_.wait(l, [&] {
          if (pending_.empty()) return stop_;
          return *std::min_element(inflight_.begin(), inflight_.end()) < window_;
        });
        if (pending_.empty()) return;
        w = std::min_element(inflight_.begin(), inflight_.end()) - inflight_.begin();
        ++inflight_[w];
        t = std::move(pending_.front());
        pending_.pop_front();
      }
      if (!tasks_[w].Put(t).ok()) std::abort();
    }
  }

  void Collect() {
    for (;;) {
      absl::StatusOr<PipeResult> r = results_.Get();
      if (!r.ok()) return;  // end of stream
      {
        std::lock_guard<std::mutex> l(mu_);
        --inflight_[r->worker];
        done_.emplace(r->id, std::move(r->value));
      }
      feed_cv_.notify_one();
      done_cv_.notify_all();
    }
  }

  const int window_;
  std::vector<mp::PipeQueue<PipeTask>> tasks_;
  mp::PipeQueue<PipeResult> results_;
  std::vector<pid_t> pids_;
  std::mutex mu_;
  std::condition_variable feed_cv_, done_cv_;
  std::deque<PipeTask> pending_;
  std::vector<int> inflight_;
  std::unordered_map<uint64_t, std::string> done_;
  uint64_t next_id_ = 0;
  bool stop_ = false;
  std::thread feeder_, collector_;
};

void BM_MapTinyPipePool(benchmark::State& state, bool chunked) {
  PipeQueuePool pool(Workers());
  const int chunk =
      chunked ? static_cast<int>(mp::pool_internal::AutoChunksize(kTiny, Workers()))
              : 1;
  const long want = static_cast<long>(kTiny - 1) * kTiny;  // sum of 2i
  for (auto _ : state) {
    if (pool.MapTwice(kTiny, chunk) != want) {
      state.SkipWithError("bad result");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_ApplyAsyncTinyPipePool(benchmark::State& state) {
  PipeQueuePool pool(Workers());
  std::string buf;
  std::vector<uint64_t> ids(kTiny);
  for (auto _ : state) {
    for (int i = 0; i < kTiny; ++i) {
      mp::EncodeMessage(i, &buf);
      ids[i] = pool.Submit(kTwiceFn, buf);
    }
    for (uint64_t id : ids) benchmark::DoNotOptimize(pool.Get(id));
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_ApplyRoundtripPipePool(benchmark::State& state) {
  PipeQueuePool pool(1);
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(pool.Apply<int>(kTwiceFn, ++i));
  state.SetItemsProcessed(state.iterations());
}

// ---- zmq_pool -----------------------------------------------------------------
//
// The ZeroMQ "ventilator" a C++ user writes (zguide, "Divide and Conquer"):
// the parent PUSHes tasks over ipc:// to N forked workers that PULL them,
// the workers PUSH results to a sink PULL in the parent. One message per
// task (chunk = 1) or per chunk of `chunk` ints. The parent ventilates and
// sinks from one thread with zmq_poll, so neither side can fill up and wait
// on the other. Workers are forked before the parent makes its context
// (a ZeroMQ context must not cross fork), endpoints live in a fresh temp
// directory that the destructor removes, and every worker is reaped.

struct ZmqPool {
  std::string dir;
  std::vector<pid_t> pids;
  void* ctx = nullptr;
  void* push = nullptr;  // tasks out
  void* pull = nullptr;  // results in (the sink)

  std::string TaskEndpoint() const { return "ipc://" + dir + "/tasks"; }
  std::string ResultEndpoint() const { return "ipc://" + dir + "/results"; }

  [[noreturn]] static void Worker(const std::string& tasks, const std::string& results) {
    void* c = zmq_ctx_new();
    void* in = zmq_socket(c, ZMQ_PULL);
    void* out = zmq_socket(c, ZMQ_PUSH);
    if (zmq_connect(in, tasks.c_str()) != 0 || zmq_connect(out, results.c_str()) != 0) _exit(2);
    int ready = -1;  // "connected": the parent waits for one from each worker
    zmq_send(out, &ready, sizeof ready, 0);
    std::vector<int> buf(1 << 16);
    for (;;) {
      const int n = zmq_recv(in, buf.data(), buf.size() * sizeof(int), 0);
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (n == 0) break;  // the stop message
      const int k = std::min<int>(n, buf.size() * sizeof(int)) / sizeof(int);
      for (int j = 0; j < k; ++j) buf[j] = Twice(buf[j]);
      if (zmq_send(out, buf.data(), k * sizeof(int), 0) < 0) break;
    }
    int linger = 0;
    zmq_setsockopt(in, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(out, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(in);
    zmq_close(out);
    zmq_ctx_term(c);
    _exit(0);
  }

  explicit ZmqPool(int n) {
    char tmpl[] = "/tmp/mp_zmq_pool_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) std::abort();
    dir = tmpl;
    for (int i = 0; i < n; ++i) {
      const pid_t pid = fork();
      if (pid < 0) std::abort();
      if (pid == 0) Worker(TaskEndpoint(), ResultEndpoint());
      pids.push_back(pid);
    }
    ctx = zmq_ctx_new();
    push = zmq_socket(ctx, ZMQ_PUSH);
    pull = zmq_socket(ctx, ZMQ_PULL);
    if (zmq_bind(push, TaskEndpoint().c_str()) != 0 ||
        zmq_bind(pull, ResultEndpoint().c_str()) != 0) {
      std::abort();
    }
    for (int i = 0; i < n; ++i) {  // every worker connected
      int ready;
      if (zmq_recv(pull, &ready, sizeof ready, 0) != sizeof ready) std::abort();
    }
  }

  ~ZmqPool() {
    // A stop (empty message) per worker until every worker is reaped; PUSH
    // hands each to a worker still connected. SIGKILL after 5 s.
    std::vector<bool> reaped(pids.size(), false);
    size_t left = pids.size();
    for (int round = 0; left > 0; ++round) {
      if (round < 5000) {
        zmq_send(push, "", 0, ZMQ_DONTWAIT);
      } else {
        for (size_t i = 0; i < pids.size(); ++i) {
          if (!reaped[i]) kill(pids[i], SIGKILL);
        }
      }
      for (size_t i = 0; i < pids.size(); ++i) {
        int st;
        if (!reaped[i] && waitpid(pids[i], &st, round < 5000 ? WNOHANG : 0) == pids[i]) {
          reaped[i] = true;
          --left;
        }
      }
      if (left > 0 && round < 5000) usleep(1000);
    }
    int linger = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(pull, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    unlink((dir + "/tasks").c_str());
    unlink((dir + "/results").c_str());
    rmdir(dir.c_str());
  }

  // Maps Twice over 0..n-1, `chunk` ints per message; returns the sum.
  long Map(int n, int chunk) {
    long sum = 0;
    int next = 0, done = 0;
    std::vector<int> buf(chunk), got(std::max(chunk, 1));
    zmq_pollitem_t items[2] = {{push, 0, ZMQ_POLLOUT, 0}, {pull, 0, ZMQ_POLLIN, 0}};
    while (done < n) {
      while (next < n) {
        const int k = std::min(chunk, n - next);
        for (int j = 0; j < k; ++j) buf[j] = next + j;
        if (zmq_send(push, buf.data(), k * sizeof(int), ZMQ_DONTWAIT) < 0) {
          if (errno == EAGAIN) break;
          std::abort();
        }
        next += k;
      }
      for (;;) {
        const int m = zmq_recv(pull, got.data(), got.size() * sizeof(int), ZMQ_DONTWAIT);
        if (m < 0) {
          if (errno == EAGAIN) break;
          std::abort();
        }
        const int k = m / static_cast<int>(sizeof(int));
        for (int j = 0; j < k; ++j) sum += got[j];
        done += k;
      }
      if (done >= n) break;
      items[0].events = next < n ? ZMQ_POLLOUT : 0;
      items[0].revents = items[1].revents = 0;
      if (zmq_poll(items, 2, -1) < 0 && errno != EINTR) std::abort();
    }
    return sum;
  }
};

void BM_MapTinyZmqPool(benchmark::State& state, bool chunked) {
  ZmqPool pool(Workers());
  const int chunk =
      chunked ? static_cast<int>(mp::pool_internal::AutoChunksize(kTiny, Workers()))
              : 1;
  const long want = static_cast<long>(kTiny - 1) * kTiny;  // sum of 2i
  for (auto _ : state) {
    if (pool.Map(kTiny, chunk) != want) {
      state.SkipWithError("bad result");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

// ---- fork_per_task ------------------------------------------------------------

void BM_MapTinyForkPerTask(benchmark::State& state) {
  constexpr int kTasks = kTiny / 100;
  for (auto _ : state) {
    long sum = 0;
    for (int i = 0; i < kTasks; ++i) {
      int p[2];
      if (pipe(p) != 0) std::abort();
      const pid_t pid = fork();
      if (pid == 0) {
        const int y = Twice(i);
        (void)!write(p[1], &y, sizeof y);
        _exit(0);
      }
      close(p[1]);
      int y = 0;
      (void)!read(p[0], &y, sizeof y);
      close(p[0]);
      int st;
      waitpid(pid, &st, 0);
      sum += y;
    }
    benchmark::DoNotOptimize(sum);
  }
  state.SetItemsProcessed(state.iterations() * kTasks);
}

}  // namespace

BENCHMARK_CAPTURE(BM_MapTinyMp, mp, std::optional<size_t>(1))
    ->Name("pool_map_tiny/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyPipePool, pipe_pool, false)
    ->Name("pool_map_tiny/pipe_pool")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyRawPipe, raw_pipe, false)
    ->Name("pool_map_tiny/raw_pipe")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyZmqPool, zmq_pool, false)
    ->Name("pool_map_tiny/zmq_pool")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapTinyForkPerTask)
    ->Name("pool_map_tiny/fork_per_task")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyMp, mp_chunked, std::optional<size_t>())
    ->Name("pool_map_tiny_chunked/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyPipePool, pipe_pool_chunked, true)
    ->Name("pool_map_tiny_chunked/pipe_pool")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyRawPipe, raw_pipe_chunked, true)
    ->Name("pool_map_tiny_chunked/raw_pipe")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyZmqPool, zmq_pool_chunked, true)
    ->Name("pool_map_tiny_chunked/zmq_pool")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyAsyncTinyMp)
    ->Name("pool_apply_async_tiny/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyAsyncTinyPipePool)
    ->Name("pool_apply_async_tiny/pipe_pool")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyRoundtripMp)
    ->Name("pool_apply_roundtrip/mp")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ApplyRoundtripPipePool)
    ->Name("pool_apply_roundtrip/pipe_pool")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ImapUnorderedTinyMp)
    ->Name("pool_imap_unordered_tiny/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapCpuMp)->Name("pool_map_cpu/mp")->DenseRange(1, 2)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapCpuSerial)->Name("pool_map_cpu/serial")->DenseRange(1, 2)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
