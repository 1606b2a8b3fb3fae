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
// impls: mp (mp::Pool); pipe_pool (the same shape -- a worker per core
// with a task pipe and a result pipe, the parent keeping a bounded window
// per worker -- over plain pipes, fixed 4-byte tasks and results, so its
// figure is a ceiling for any pipe-based pool); fork_per_task (a process
// forked per task, the result through its pipe; 1/100th of the tasks).
// Not yet: zmq_pool (the ZeroMQ ventilator; needs libzmq3-dev) and
// bench/peers/python_pool.py.
//
//   bazel run -c opt //bench:pool_bench -- --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <deque>
#include <vector>

#include "benchmark/benchmark.h"
#include "mp/core/process.h"
#include "mp/pool/pool.h"

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

// ---- pipe_pool --------------------------------------------------------------

struct PipePool {
  struct W {
    pid_t pid;
    int task_fd;    // parent writes
    int result_fd;  // parent reads
    int inflight = 0;
  };
  std::vector<W> workers;
  explicit PipePool(int n) {
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
  ~PipePool() {
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

void BM_MapTinyPipePool(benchmark::State& state, bool chunked) {
  PipePool pool(Workers());
  const int chunk =
      chunked ? static_cast<int>(mp::pool_internal::AutoChunksize(kTiny, Workers()))
              : 1;
  for (auto _ : state) benchmark::DoNotOptimize(pool.Map(kTiny, std::min(chunk, 64)));
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
BENCHMARK(BM_MapTinyForkPerTask)
    ->Name("pool_map_tiny/fork_per_task")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyMp, mp_chunked, std::optional<size_t>())
    ->Name("pool_map_tiny_chunked/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK_CAPTURE(BM_MapTinyPipePool, pipe_pool_chunked, true)
    ->Name("pool_map_tiny_chunked/pipe_pool")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyAsyncTinyMp)
    ->Name("pool_apply_async_tiny/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyRoundtripMp)
    ->Name("pool_apply_roundtrip/mp")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_ImapUnorderedTinyMp)
    ->Name("pool_imap_unordered_tiny/mp")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapCpuMp)->Name("pool_map_cpu/mp")->DenseRange(1, 2)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapCpuSerial)->Name("pool_map_cpu/serial")->DenseRange(1, 2)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
