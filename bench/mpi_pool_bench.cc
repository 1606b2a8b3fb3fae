// mpi_pool_bench: mp::mpi::Pool (mp/pool/mpi) beside mp::Pool in one run.
// Run under mpirun with 4 ranks (rank 0 + 3 serving ranks):
//
//   bazel build -c opt //bench:mpi_pool_bench
//   mpirun --oversubscribe --bind-to none --mca mpi_yield_when_idle 1
//       -n 4 bazel-bin/bench/mpi_pool_bench --benchmark_min_time=0.2
//
//   pool_map_tiny/mpi_pool/ranks:R   100 k tasks x*2, chunksize 1, over R
//                                    serving ranks of 1 local worker each
//   pool_map_tiny/mp                 the same on mp::Pool (shared memory),
//                                    cpu_count() workers
//   pool_apply_roundtrip/mpi_pool    one Apply at a time, 1 rank
//   pool_map_cpu/mpi_pool/ranks:R    200 x R tasks of ~100 us (pool_bench's
//                                    Spin), chunksize 1, R ranks x 1 worker
//   pool_map_cpu/mp/W, /serial/W     pool_bench's cases, for the ratio
// Ranks are used as R = 1..3 of those started (MpiOptions::max_ranks); the
// ranks not in a pool idle. The peer in Python: bench/peers/mpi4py_pool.py.

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "mp/core/process.h"
#include "mp/pool/mpi/pool.h"
#include "mp/pool/pool.h"

namespace {

constexpr int kTiny = 100000;

int Twice(int x) { return x * 2; }

int Spin(int seed) {
  uint64_t x = static_cast<uint64_t>(seed) + 1;
  for (int i = 0; i < 60000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  return static_cast<int>(x >> 33);
}

std::vector<int> Inputs(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

mp::mpi::Pool MpiPool(int ranks) {
  return mp::mpi::Pool({.processes = 1}, {.max_ranks = ranks});
}

void BM_MapTinyMpi(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  if (static_cast<int>(mp::mpi::ServingRanks().size()) < ranks) {
    state.SkipWithError("too few ranks: run under mpirun -n 4");
    return;
  }
  mp::mpi::Pool pool = MpiPool(ranks);
  const std::vector<int> in = Inputs(kTiny);
  for (auto _ : state) {
    auto out = pool.Map(Twice, in, 1);
    if (!out.ok() || (*out)[kTiny - 1] != 2 * (kTiny - 1)) {
      state.SkipWithError("bad result");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_MapTinyMp(benchmark::State& state) {
  mp::Pool pool(std::max(2, mp::cpu_count()));
  const std::vector<int> in = Inputs(kTiny);
  for (auto _ : state) {
    auto out = pool.Map(Twice, in, 1);
    if (!out.ok() || (*out)[kTiny - 1] != 2 * (kTiny - 1)) {
      state.SkipWithError("bad result");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * kTiny);
}

void BM_ApplyRoundtripMpi(benchmark::State& state) {
  mp::mpi::Pool pool = MpiPool(1);
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(pool.Apply(Twice, i++));
}

void BM_MapCpuMpi(benchmark::State& state) {
  const int ranks = static_cast<int>(state.range(0));
  if (static_cast<int>(mp::mpi::ServingRanks().size()) < ranks) {
    state.SkipWithError("too few ranks: run under mpirun -n 4");
    return;
  }
  mp::mpi::Pool pool = MpiPool(ranks);
  const std::vector<int> in = Inputs(200 * ranks);
  for (auto _ : state) benchmark::DoNotOptimize(pool.Map(Spin, in, 1));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(in.size()));
}

void BM_MapCpuMp(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  mp::Pool pool(workers);
  const std::vector<int> in = Inputs(200 * workers);
  for (auto _ : state) benchmark::DoNotOptimize(pool.Map(Spin, in, 1));
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(in.size()));
}

void BM_MapCpuSerial(benchmark::State& state) {
  const std::vector<int> in = Inputs(200 * static_cast<int>(state.range(0)));
  for (auto _ : state) {
    for (int x : in) benchmark::DoNotOptimize(Spin(x));
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(in.size()));
}

BENCHMARK(BM_MapTinyMpi)->Name("pool_map_tiny/mpi_pool")->ArgName("ranks")
    ->DenseRange(1, 3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapTinyMp)->Name("pool_map_tiny/mp")
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ApplyRoundtripMpi)->Name("pool_apply_roundtrip/mpi_pool")
    ->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_MapCpuMpi)->Name("pool_map_cpu/mpi_pool")->ArgName("ranks")
    ->DenseRange(1, 3)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapCpuMp)->Name("pool_map_cpu/mp")->DenseRange(1, 3)
    ->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MapCpuSerial)->Name("pool_map_cpu/serial")->DenseRange(1, 3)
    ->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  // Rank 0 runs the benchmarks; the others serve.
  if (absl::Status s = mp::mpi::Init(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
