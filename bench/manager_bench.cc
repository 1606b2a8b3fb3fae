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
// the in-process reference, as the issue names it: in a process of one
// thread glibc's mutex takes no atomic instruction at all, so it measures a
// lock that does not lock); std_map_pshared_locked (the same map under a
// process-shared pthread mutex, which glibc always locks with its atomic
// instructions: the floor of any lock another process can take);
// boost_shm_map / boost_shm_vector (Boost.
// Interprocess: managed_shared_memory holding an interprocess map / vector
// under an interprocess_mutex, what C++ users pick for shared state; a
// process killed mid-insert leaves it half-linked with the mutex held).
// CPython's Manager: bench/peers/python_manager.py prints the same cases.
// mp: mp::Manager's Dict, List and Value in one shared segment, every update
// a logged transaction under a robust lock (survives a writer's death).
//
// Each Boost segment has a name unique to the run (pid and a counter) and is
// removed when its benchmark ends; every forked writer is reaped.
//
//   bazel run -c opt //bench:manager_bench -- --benchmark_min_time=0.2

#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>
#include <functional>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/interprocess/allocators/allocator.hpp>
#include <boost/interprocess/containers/map.hpp>
#include <boost/interprocess/containers/vector.hpp>
#include <boost/interprocess/managed_shared_memory.hpp>
#include <boost/interprocess/sync/interprocess_mutex.hpp>
#include <boost/interprocess/sync/scoped_lock.hpp>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"
#include "mp/manager/manager.h"

namespace {

namespace bip = boost::interprocess;

constexpr int kKeys = 1000;
constexpr int kWritesPerProc = 100000;  // dict_set_int_2proc, per iteration
constexpr size_t kListClearAt = 1 << 20;
// mp's list holds each entry in its own arena block: cleared sooner.
constexpr size_t kMpListClearAt = 1 << 16;

void MustOk(const absl::Status& s) {
  if (!s.ok()) {
    std::fprintf(stderr, "manager_bench: %s\n", s.ToString().c_str());
    std::abort();
  }
}

// ---- std_map_locked ------------------------------------------------------------

// std_map_pshared_locked: a process-shared pthread mutex, which glibc locks
// with its atomic instructions even in a one-thread process.
class PsharedMutex {
 public:
  PsharedMutex() {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&mu_, &a);
    pthread_mutexattr_destroy(&a);
  }
  ~PsharedMutex() { pthread_mutex_destroy(&mu_); }
  void lock() { pthread_mutex_lock(&mu_); }
  void unlock() { pthread_mutex_unlock(&mu_); }

 private:
  pthread_mutex_t mu_;
};

// d[k] = v on a std::unordered_map under a `Mutex`: std::mutex
// (std_map_locked) or PsharedMutex (std_map_pshared_locked).
template <class Mutex>
void BM_DictSetIntStdMap(benchmark::State& state) {
  std::unordered_map<int, int> d;
  Mutex mu;
  for (int k = 0; k < kKeys; ++k) d[k] = 0;
  int i = 0;
  for (auto _ : state) {
    const int k = i % kKeys;
    std::lock_guard<Mutex> l(mu);
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
  // pid, a random token (the pid alone is shared by runs in other pid
  // namespaces, Bazel's sandboxes, which share /dev/shm) and a counter.
  static std::string UniqueName() {
    static int counter = 0;
    static const uint64_t token = [] {
      std::random_device rd;
      return (uint64_t{rd()} << 32) | rd();
    }();
    return "mp_manager_bench_" + std::to_string(getpid()) + "_" +
           std::to_string(token) + "_" + std::to_string(++counter);
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

// Two writers, this process and a forked child, each doing kWritesPerProc
// set(k, v) per iteration; `set` runs in both. The parent times each round
// until both are done. `ctl` is in memory both processes share.
template <class Set>
void RunTwoWriters(benchmark::State& state, TwoProcControl* ctl, Set set) {
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
      for (int i = 0; i < kWritesPerProc; ++i) set(i % kKeys, -i);
      ctl->child_done.store(seen, std::memory_order_release);
    }
  }
  uint32_t round = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    ctl->round.store(++round, std::memory_order_release);
    for (int i = 0; i < kWritesPerProc; ++i) set(i % kKeys, i);
    while (ctl->child_done.load(std::memory_order_acquire) != round) sched_yield();
    state.SetIterationTime(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  ctl->stop.store(1, std::memory_order_release);
  int st;
  waitpid(child, &st, 0);
  state.SetItemsProcessed(state.iterations() * 2 * kWritesPerProc);
}

void BM_DictSetInt2ProcBoost(benchmark::State& state) {
  ShmSegment seg(8 << 20);
  BoostDict d(seg);
  auto* ctl = seg.get().construct<TwoProcControl>("ctl")();
  RunTwoWriters(state, ctl, [&d](int k, int v) { d.Set(k, v); });
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

// ---- mp (mp::Manager) -------------------------------------------------------
// One manager per benchmark: address space reserved, pages committed as used.
constexpr size_t kMpCapacity = size_t{256} << 20;

void BM_DictSetIntMp(benchmark::State& state) {
  mp::Manager mgr(kMpCapacity);
  auto d = mgr.dict<int, int>("d");
  for (int k = 0; k < kKeys; ++k) MustOk(d.Set(k, 0));
  int i = 0;
  for (auto _ : state) {
    MustOk(d.Set(i % kKeys, i));
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_DictGetIntMp(benchmark::State& state) {
  mp::Manager mgr(kMpCapacity);
  auto d = mgr.dict<int, int>("d");
  for (int k = 0; k < kKeys; ++k) MustOk(d.Set(k, k));
  int i = 0;
  for (auto _ : state) benchmark::DoNotOptimize(*d.Get(i++ % kKeys));
  state.SetItemsProcessed(state.iterations());
}

void BM_DictSetInt2ProcMp(benchmark::State& state) {
  mp::Manager mgr(kMpCapacity);
  auto d = mgr.dict<int, int>("d");
  for (int k = 0; k < kKeys; ++k) MustOk(d.Set(k, 0));
  void* p = mmap(nullptr, sizeof(TwoProcControl), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  RunTwoWriters(state, new (p) TwoProcControl(),
                [&d](int k, int v) { MustOk(d.Set(k, v)); });
  munmap(p, sizeof(TwoProcControl));
}

void BM_ListAppendMp(benchmark::State& state) {
  mp::Manager mgr(kMpCapacity);
  auto l = mgr.list<int>("l");
  size_t n = 0;
  int i = 0;
  for (auto _ : state) {
    if (n++ == kMpListClearAt) {
      MustOk(l.Clear());
      n = 1;
    }
    MustOk(l.Append(i++));
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ValueAddMpLocked(benchmark::State& state) {
  mp::Manager mgr(kMpCapacity);
  auto v = mgr.Value<int64_t>(0, "v");
  for (auto _ : state) {
    std::lock_guard<mp::ManagedLock> g(v.get_lock());
    v.Set(v.Get() + 1);
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_ValueAddMpAtomic(benchmark::State& state) {
  mp::Manager mgr(kMpCapacity);
  auto v = mgr.Value<int64_t>(0, "v");
  for (auto _ : state) benchmark::DoNotOptimize(v.Add(1));
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

BENCHMARK(BM_DictSetIntStdMap<std::mutex>)->Name("dict_set_int/std_map_locked");
BENCHMARK(BM_DictSetIntStdMap<PsharedMutex>)
    ->Name("dict_set_int/std_map_pshared_locked");
BENCHMARK(BM_DictSetIntBoost)->Name("dict_set_int/boost_shm_map");
BENCHMARK(BM_DictSetIntMp)->Name("dict_set_int/mp");
BENCHMARK(BM_DictSetInt2ProcBoost)->Name("dict_set_int_2proc/boost_shm_map")
    ->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DictSetInt2ProcMp)->Name("dict_set_int_2proc/mp")
    ->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DictGetIntBoost)->Name("dict_get_int/boost_shm_map");
BENCHMARK(BM_DictGetIntMp)->Name("dict_get_int/mp");
BENCHMARK(BM_ListAppendBoost)->Name("list_append/boost_shm_vector");
BENCHMARK(BM_ListAppendMp)->Name("list_append/mp");
BENCHMARK(BM_ValueAddMpLocked)->Name("value_add/mp_locked");
BENCHMARK(BM_ValueAddMpAtomic)->Name("value_add/mp_atomic");

BENCHMARK_MAIN();
