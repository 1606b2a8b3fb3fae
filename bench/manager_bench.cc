// manager_bench: shared containers against what a C++ program uses instead
// (issue 20). Names are `case/impl`, peers in the same run.
//
//   dict_set_int        d[k] = v, k over 1000 int keys (all present: updates)
//   dict_set_int_2proc  the same from two processes at once (forked), 100 k
//                       writes each per iteration; the parent times both and
//                       counts both (items = 200 k per iteration)
//   dict_get_int        v = d[k], k over the same 1000 keys
//   list_append         append one int (the list is cleared every 1 M items)
//   value_add           v += 1 on a shared int64 (mp only)
//
// impls: std_map_locked (std::unordered_map under a std::mutex, one process:
// the in-process reference); boost_shm_map / boost_shm_vector (Boost.
// Interprocess: managed_shared_memory holding an interprocess map / vector
// under an interprocess_mutex, what C++ users pick for shared state; a
// process killed mid-insert leaves it half-linked with the mutex held).
// CPython's Manager: bench/peers/python_manager.py prints the same cases.
// The mp rows (mp::Manager) are added by the lead where marked "mp rows".
//
// Each Boost segment has a name unique to the run (pid and a counter) and is
// removed when its benchmark ends; every forked writer is reaped.
//
//   bazel run -c opt //bench:manager_bench -- --benchmark_min_time=0.2

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/map.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>

#include "benchmark/benchmark.h"

namespace {

namespace bip = boost::interprocess;

constexpr int kKeys = 1000;
constexpr int kWritesPerProc = 100000;  // dict_set_int_2proc, per iteration
constexpr size_t kListClearAt = 1 << 20;

// ---- std_map_locked ------------------------------------------------------------

void BM_DictSetIntStdMapLocked(benchmark::State& state) {
  std::unordered_map<int, int> d;
  std::mutex mu;
  for (int k = 0; k < kKeys; ++k) d[k] = 0;
  int i = 0;
  for (auto _ : state) {
    const int k = i % kKeys;
    std::lock_guard<std::mutex> l(mu);
    d[k] = i++;
  }
  benchmark::DoNotOptimize(d);
  state.SetItemsProcessed(state.iterations());
}

// ---- boost_shm_map / boost_shm_vector ----------------------------------------

using ShmAlloc = bip::allocator<std::pair<const int, int>,
                                bip::managed_shared_memory::segment_manager>;
using ShmMap = bip::map<int, int, std::less<int>, ShmAlloc>;
using ShmIntAlloc = bip::allocator<int, bip::managed_shared_memory::segment_manager>;
using ShmVector = bip::vector<int, ShmIntAlloc>;

// A Boost segment with a name unique to this run, removed on destruction
// (by the process that made it: a forked child leaves with _exit).
class ShmSegment {
 public:
  explicit ShmSegment(size_t bytes) : name_(UniqueName()) {
    bip::shared_memory_object::remove(name_.c_str());
    segment_ = bip::managed_shared_memory(bip::create_only, name_.c_str(), bytes);
  }
  ~ShmSegment() {
    segment_ = bip::managed_shared_memory();  // unmapped before removal
    bip::shared_memory_object::remove(name_.c_str());
  }
  ShmSegment(const ShmSegment&) = delete;
  ShmSegment& operator=(const ShmSegment&) = delete;
  bip::managed_shared_memory& get() { return segment_; }

 private:
  static std::string UniqueName() {
    static int counter = 0;
    return "mp_manager_bench_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  }
  std::string name_;
  bip::managed_shared_memory segment_;
};

struct BoostDict {
  explicit BoostDict(ShmSegment& seg)
      : mu(seg.get().construct<bip::interprocess_mutex>("mu")()),
        map(seg.get().construct<ShmMap>("map")(std::less<int>(),
                                               ShmAlloc(seg.get().get_segment_manager()))) {
    for (int k = 0; k < kKeys; ++k) map->emplace(k, 0);
  }
  void Set(int k, int v) {
    bip::scoped_lock<bip::interprocess_mutex> l(*mu);
    (*map)[k] = v;
  }
  int Get(int k) {
    bip::scoped_lock<bip::interprocess_mutex> l(*mu);
    return map->find(k)->second;
  }
  bip::interprocess_mutex* mu;
  ShmMap* map;
};

void BM_DictSetIntBoost(benchmark::State& state) {
  ShmSegment seg(8 << 20);
  BoostDict d(seg);
  int i = 0;
  for (auto _ : state) {
    d.Set(i % kKeys, i);
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DictGetIntBoost(benchmark::State& state) {
  ShmSegment seg(8 << 20);
  BoostDict d(seg);
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(d.Get(i++ % kKeys));
  state.SetItemsProcessed(state.iterations());
}

// Start/finish handshake of the two writers, in the segment.
struct TwoProcControl {
  std::atomic<uint32_t> round{0};      // parent: "write round N now"
  std::atomic<uint32_t> child_done{0};  // child: "round N written"
  std::atomic<uint32_t> stop{0};
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

void BM_DictSetInt2ProcBoost(benchmark::State& state) {
  ShmSegment seg(8 << 20);
  BoostDict d(seg);
  auto* ctl = seg.get().construct<TwoProcControl>("ctl")();
  const pid_t child = fork();
  if (child < 0) {
    state.SkipWithError("fork failed");
    return;
  }
  if (child == 0) {
    uint32_t seen = 0;
    for (;;) {
      while (ctl->round.load(std::memory_order_acquire) == seen) {
        if (ctl->stop.load(std::memory_order_acquire)) _exit(0);
        sched_yield();
      }
      ++seen;
      for (int i = 0; i < kWritesPerProc; ++i) d.Set(i % kKeys, -i);
      ctl->child_done.store(seen, std::memory_order_release);
    }
  }
  uint32_t round = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    ctl->round.store(++round, std::memory_order_release);
    for (int i = 0; i < kWritesPerProc; ++i) d.Set(i % kKeys, i);
    while (ctl->child_done.load(std::memory_order_acquire) != round) sched_yield();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  ctl->stop.store(1, std::memory_order_release);
  int st;
  waitpid(child, &st, 0);
  state.SetItemsProcessed(state.iterations() * 2 * kWritesPerProc);
}

void BM_ListAppendBoost(benchmark::State& state) {
  ShmSegment seg(16 << 20);
  auto* mu = seg.get().construct<bip::interprocess_mutex>("mu")();
  auto* v = seg.get().construct<ShmVector>("list")(ShmIntAlloc(seg.get().get_segment_manager()));
  int i = 0;
  for (auto _ : state) {
    bip::scoped_lock<bip::interprocess_mutex> l(*mu);
    if (v->size() == kListClearAt) v->clear();  // keeps its capacity
    v->push_back(i++);
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- mp rows ------------------------------------------------------------------
// The lead adds here, once mp::Manager lands (same loops as the peers above):
//   BM_DictSetIntMp        dict_set_int/mp
//   BM_DictSetInt2ProcMp   dict_set_int_2proc/mp (the same fork/round handshake)
//   BM_DictGetIntMp        dict_get_int/mp
//   BM_ListAppendMp        list_append/mp
//   BM_ValueAddMpLocked    value_add/mp_locked (Value<int64_t> under get_lock())
//   BM_ValueAddMpAtomic    value_add/mp_atomic (Value<int64_t> lock-free add)
// ...and registers them below, each beside its peers.

}  // namespace

BENCHMARK(BM_DictSetIntStdMapLocked)->Name("dict_set_int/std_map_locked");
BENCHMARK(BM_DictSetIntBoost)->Name("dict_set_int/boost_shm_map");
// mp rows: dict_set_int/mp
BENCHMARK(BM_DictSetInt2ProcBoost)->Name("dict_set_int_2proc/boost_shm_map")
    ->UseManualTime()->Unit(benchmark::kMillisecond);
// mp rows: dict_set_int_2proc/mp
BENCHMARK(BM_DictGetIntBoost)->Name("dict_get_int/boost_shm_map");
// mp rows: dict_get_int/mp
BENCHMARK(BM_ListAppendBoost)->Name("list_append/boost_shm_vector");
// mp rows: list_append/mp, value_add/mp_locked, value_add/mp_atomic

BENCHMARK_MAIN();
