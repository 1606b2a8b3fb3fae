// bench/sync_bench.cc
// -----------------------------------------------------------------------------
// mp/sync against its peers, case by case (names `case/impl`):
//   lock_uncontended/{mp,pthread_pshared,boost_interprocess}
//   lock_contended_2proc/{mp,pthread_pshared}   two processes, one counter;
//       items_per_second counts the increments of both processes
//   condvar_pingpong_2proc/{mp,pthread_pshared}  one round trip per iteration
//   semaphore_pingpong_2proc/{mp,posix_sem}
//   event_pingpong_2proc/mp
// Each cross-process run forks its partner and reaps it at the end. The
// ping-pong cases time each round trip (manual time) and export its
// percentiles as counters p50_ns, p90_ns, p99_ns, p99.9_ns (bench/latency.h).
//
//   bazel run -c opt //bench:sync_bench -- --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true

#include <pthread.h>

#include <cerrno>
#include <semaphore.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <new>

#include "bench/latency.h"
#include "benchmark/benchmark.h"
#include "boost/interprocess/sync/interprocess_mutex.hpp"
#include "mp/core/shared_memory.h"
#include "mp/sync/sync.h"

namespace {

// Every mapping MakeShared made, kept until the process exits (the partner
// must see it for the whole run; held here rather than leaked, so that
// LeakSanitizer has nothing to report).
std::deque<mp::SharedMemory>& Mappings() {
  static auto* m = new std::deque<mp::SharedMemory>;  // never destroyed
  return *m;
}

// A zeroed shared mapping of T-sized memory, constructed in place.
template <class T>
T* MakeShared() {
  auto mem = mp::SharedMemory::Anonymous(sizeof(T));
  if (!mem.ok()) std::abort();
  void* p = mem->data();
  new (mem.value().data()) T();
  Mappings().push_back(*std::move(mem));
  return static_cast<T*>(p);
}

template <class F>
pid_t Fork(F fn) {
  pid_t pid = fork();
  if (pid == 0) {
    fn();
    _exit(0);
  }
  return pid;
}

void Reap(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
}

// ---- locks -------------------------------------------------------------------

struct MpLock {
  mp::ResidentLock l;
  void lock() { l.Acquire(); }
  void unlock() { (void)l.Release(); }
};

// Robust = the like-for-like peer: the only pthread mutex that, as ours
// does, survives its holder's death (EOWNERDEAD).
template <bool kRobust>
struct PthreadLockT {
  pthread_mutex_t m;
  PthreadLockT() {
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (kRobust) pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&m, &a);
    pthread_mutexattr_destroy(&a);
  }
  void lock() {
    if (pthread_mutex_lock(&m) == EOWNERDEAD) pthread_mutex_consistent(&m);
  }
  void unlock() { pthread_mutex_unlock(&m); }
};
using PthreadLock = PthreadLockT<false>;
using PthreadRobustLock = PthreadLockT<true>;

struct BoostLock {
  boost::interprocess::interprocess_mutex m;
  void lock() { m.lock(); }
  void unlock() { m.unlock(); }
};

template <class L>
void BM_LockUncontended(benchmark::State& state) {
  L* l = MakeShared<L>();
  for (auto _ : state) {
    l->lock();
    benchmark::ClobberMemory();
    l->unlock();
  }
  state.SetItemsProcessed(state.iterations());
}

template <class L>
struct Contended {
  L lock;
  int64_t counter = 0;
  std::atomic<int> stop{0};
  std::atomic<int> started{0};
};

template <class L>
void BM_LockContended2Proc(benchmark::State& state) {
  auto* s = MakeShared<Contended<L>>();
  pid_t partner = Fork([s] {
    s->started.store(1);
    while (s->stop.load(std::memory_order_relaxed) == 0) {
      s->lock.lock();
      ++s->counter;
      s->lock.unlock();
    }
  });
  while (s->started.load() == 0) {
  }
  const int64_t before = s->counter;
  for (auto _ : state) {
    s->lock.lock();
    ++s->counter;
    s->lock.unlock();
  }
  s->lock.lock();
  const int64_t total = s->counter - before;
  s->lock.unlock();
  s->stop.store(1);
  Reap(partner);
  state.SetItemsProcessed(total);
  state.counters["ns_per_increment"] = benchmark::Counter(
      static_cast<double>(total), benchmark::Counter::kIsRate |
                                      benchmark::Counter::kInvert);
}

// ---- condition variables -----------------------------------------------------

struct MpCondvar {
  mp::ResidentLock lock;
  mp::ResidentCondition cond;
  int turn = 0;
  int stop = 0;
  void Lock() { lock.Acquire(); }
  void Unlock() { (void)lock.Release(); }
  void Wait() { cond.Wait(lock); }
  void Notify() { cond.Notify(); }
};

struct PthreadCondvar {
  pthread_mutex_t m;
  pthread_cond_t c;
  int turn = 0;
  int stop = 0;
  PthreadCondvar() {
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_setpshared(&ma, PTHREAD_PROCESS_SHARED);
    pthread_mutex_init(&m, &ma);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setpshared(&ca, PTHREAD_PROCESS_SHARED);
    pthread_cond_init(&c, &ca);
  }
  void Lock() { pthread_mutex_lock(&m); }
  void Unlock() { pthread_mutex_unlock(&m); }
  void Wait() { pthread_cond_wait(&c, &m); }
  void Notify() { pthread_cond_signal(&c); }
};

template <class C>
void BM_CondvarPingPong2Proc(benchmark::State& state) {
  C* c = MakeShared<C>();
  pid_t partner = Fork([c] {
    c->Lock();
    for (;;) {
      while (c->turn != 1 && !c->stop) c->Wait();
      if (c->stop) break;
      c->turn = 0;
      c->Notify();
    }
    c->Unlock();
  });
  mp_bench::LatencyRecorder lat;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    c->Lock();
    c->turn = 1;
    c->Notify();
    while (c->turn != 0) c->Wait();
    c->Unlock();
    const auto d = std::chrono::steady_clock::now() - t0;
    state.SetIterationTime(std::chrono::duration<double>(d).count());
    lat.Record(d);
  }
  c->Lock();
  c->stop = 1;
  c->Notify();
  c->Unlock();
  Reap(partner);
  state.SetItemsProcessed(state.iterations());
  lat.Export(state);
}

// ---- semaphores and events ---------------------------------------------------

struct MpSemPair {
  mp::ResidentSemaphore a{0, mp::ResidentSemaphore::kMaxValue};
  mp::ResidentSemaphore b{0, mp::ResidentSemaphore::kMaxValue};
  void PostA() { (void)a.Release(); }
  void WaitA() { a.Acquire(); }
  void PostB() { (void)b.Release(); }
  void WaitB() { b.Acquire(); }
};

struct PosixSemPair {
  sem_t a, b;
  PosixSemPair() {
    sem_init(&a, 1, 0);
    sem_init(&b, 1, 0);
  }
  void PostA() { sem_post(&a); }
  void WaitA() {
    while (sem_wait(&a) != 0) {
    }
  }
  void PostB() { sem_post(&b); }
  void WaitB() {
    while (sem_wait(&b) != 0) {
    }
  }
};

struct MpEventPair {
  mp::ResidentEvent a, b;
  void PostA() { a.Set(); }
  void WaitA() {
    a.Wait();
    a.Clear();
  }
  void PostB() { b.Set(); }
  void WaitB() {
    b.Wait();
    b.Clear();
  }
};

template <class P>
struct PingPong {
  P pair;
  std::atomic<int> stop{0};
};

template <class P>
void BM_PingPong2Proc(benchmark::State& state) {
  auto* s = MakeShared<PingPong<P>>();
  pid_t partner = Fork([s] {
    for (;;) {
      s->pair.WaitA();
      if (s->stop.load()) break;
      s->pair.PostB();
    }
  });
  mp_bench::LatencyRecorder lat;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    s->pair.PostA();
    s->pair.WaitB();
    const auto d = std::chrono::steady_clock::now() - t0;
    state.SetIterationTime(std::chrono::duration<double>(d).count());
    lat.Record(d);
  }
  s->stop.store(1);
  s->pair.PostA();
  Reap(partner);
  state.SetItemsProcessed(state.iterations());
  lat.Export(state);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RegisterBenchmark("lock_uncontended/mp",
                               BM_LockUncontended<MpLock>);
  benchmark::RegisterBenchmark("lock_uncontended/pthread_pshared",
                               BM_LockUncontended<PthreadLock>);
  benchmark::RegisterBenchmark("lock_uncontended/pthread_pshared_robust",
                               BM_LockUncontended<PthreadRobustLock>);
  benchmark::RegisterBenchmark("lock_uncontended/boost_interprocess",
                               BM_LockUncontended<BoostLock>);
  benchmark::RegisterBenchmark("lock_contended_2proc/mp",
                               BM_LockContended2Proc<MpLock>)
      ->UseRealTime();
  benchmark::RegisterBenchmark("lock_contended_2proc/pthread_pshared",
                               BM_LockContended2Proc<PthreadLock>)
      ->UseRealTime();
  benchmark::RegisterBenchmark("lock_contended_2proc/pthread_pshared_robust",
                               BM_LockContended2Proc<PthreadRobustLock>)
      ->UseRealTime();
  benchmark::RegisterBenchmark("condvar_pingpong_2proc/mp",
                               BM_CondvarPingPong2Proc<MpCondvar>)
      ->UseManualTime();
  benchmark::RegisterBenchmark("condvar_pingpong_2proc/pthread_pshared",
                               BM_CondvarPingPong2Proc<PthreadCondvar>)
      ->UseManualTime();
  benchmark::RegisterBenchmark("semaphore_pingpong_2proc/mp",
                               BM_PingPong2Proc<MpSemPair>)
      ->UseManualTime();
  benchmark::RegisterBenchmark("semaphore_pingpong_2proc/posix_sem",
                               BM_PingPong2Proc<PosixSemPair>)
      ->UseManualTime();
  benchmark::RegisterBenchmark("event_pingpong_2proc/mp",
                               BM_PingPong2Proc<MpEventPair>)
      ->UseManualTime();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
