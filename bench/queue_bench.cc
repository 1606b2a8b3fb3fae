// queue_bench: mp's shared-memory ring against the ways two processes on one
// machine usually pass messages. Names are `case/impl`; the producers and
// consumers are separate processes, forked per run and reaped.
//
//   queue_spsc_64B      1 producer, 1 consumer, 64-byte messages
//   queue_spsc_4KiB     1 producer, 1 consumer, 4 KiB messages
//   queue_mpmc_64B_2p2c 2 producers, 2 consumers, 64-byte messages
//   queue_spsc_<size>   the same for 256B, 1KiB, 16KiB, 64KiB (mp_ring and
//                       the pipes only: the report's throughput-by-size plot)
//   queue_pingpong_64B  round trip through two channels (ns per round trip)
//
// impls: mp_ring (mp::Queue; kSpsc for the SPSC cases, kMpmc otherwise),
// pipe (mp::PipeQueue: length-framed pipe with locks), plain_pipe (the pipe
// a C++ programmer would write: fixed-size records, one write(2) and one
// read(2) per message, no lock, no framing; records up to PIPE_BUF are
// atomic, so it also serves several producers and consumers), unix_socket
// (AF_UNIX SOCK_SEQPACKET pair), posix_mq (mq_open, 10 slots: the default
// /proc/sys/fs/mqueue/msg_max), boost_mq (boost::interprocess::message_queue),
// zmq (ZeroMQ over ipc://: PUSH/PULL one way, PAIR for the ping-pong; its
// context and sockets are made in each child after fork, as ZeroMQ requires),
// spin_limit (what the hardware allows: for SPSC a busy-spin ring of 4096
// fixed 64-byte slots with cached indices, each side's lines 128 bytes
// apart, yielding after 64 idle polls; for MPMC a lock-free fixed-slot queue with per-slot sequence
// numbers that spins and yields).
//
// Throughput cases time a batch of messages per iteration (manual time from
// "go" to the last child reaped) and report items_per_second and
// bytes_per_second. Ping-pong cases time each round trip and export its
// percentiles as counters p50_ns, p90_ns, p99_ns, p99.9_ns (bench/latency.h).
//
//   bazel run -c opt //bench:queue_bench -- --benchmark_repetitions=3
//       --benchmark_report_aggregates_only=true

#include <fcntl.h>
#include <mqueue.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <boost/interprocess/ipc/message_queue.hpp>
#include <zmq.h>

#include "bench/latency.h"
#include "benchmark/benchmark.h"
#include "mp/queue/pipe_queue.h"
#include "mp/queue/queue.h"

namespace {

using Clock = std::chrono::steady_clock;
using mp::QueueMode;

// A ZeroMQ receiver's exit code when it heard nothing for 10 s (ZmqChan).
constexpr int kZmqLost = 3;

template <size_t N>
struct Msg {
  uint64_t seq;
  char pad[N - 8];
};

template <class T>
T* MapShared(size_t n = 1) {
  void* p = mmap(nullptr, sizeof(T) * n, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) T[n]();
}

// A token for the names of this run's system objects (POSIX and Boost
// queues): random, because the pid alone is shared by runs in other pid
// namespaces (Bazel's sandboxes), which share /dev/shm and /dev/mqueue.
const std::string& RunToken() {
  static const std::string token = [] {
    std::random_device rd;
    const uint64_t r = (uint64_t{rd()} << 32) | rd();
    char buf[17];
    std::snprintf(buf, sizeof(buf), "%016llx",
                  static_cast<unsigned long long>(r));
    return std::to_string(getpid()) + "_" + buf;
  }();
  return token;
}

void Die(const char* what) {
  std::perror(what);
  std::abort();
}

// ---- channels: Send/Recv of Msg<N>, usable from forked children ----------

template <size_t N>
struct MpRingChan {
  explicit MpRingChan(bool spsc)
      : q(mp::QueueOptions{.capacity_bytes = 256 * 1024,
                           .mode = spsc ? QueueMode::kSpsc : QueueMode::kMpmc}) {}
  void Send(const Msg<N>& m) {
    if (!q.Put(m).ok()) Die("mp_ring put");
  }
  void Recv(Msg<N>* m) {
    auto v = q.Get();
    if (!v.ok()) Die("mp_ring get");
    *m = *v;
  }
  mp::Queue<Msg<N>> q;
};

template <size_t N>
struct PipeChan {
  explicit PipeChan(bool) {}
  void Send(const Msg<N>& m) {
    if (!q.Put(m).ok()) Die("pipe put");
  }
  void Recv(Msg<N>* m) {
    auto v = q.Get();
    if (!v.ok()) Die("pipe get");
    *m = *v;
  }
  mp::PipeQueue<Msg<N>> q;
};

template <size_t N>
struct UnixSocketChan {
  explicit UnixSocketChan(bool) {
    if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, fds) != 0) Die("socketpair");
    int sz = 4 << 20;
    setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
  }
  ~UnixSocketChan() {
    close(fds[0]);
    close(fds[1]);
  }
  void Send(const Msg<N>& m) {
    while (send(fds[0], &m, N, 0) != static_cast<ssize_t>(N)) {
      if (errno != EINTR) Die("send");
    }
  }
  void Recv(Msg<N>* m) {
    while (recv(fds[1], m, N, 0) != static_cast<ssize_t>(N)) {
      if (errno != EINTR) Die("recv");
    }
  }
  int fds[2];
};

template <size_t N>
struct PosixMqChan {
  explicit PosixMqChan(bool) {
    name = "/mp_bench_mq_" + RunToken();
    mq_unlink(name.c_str());
    mq_attr attr{};
    attr.mq_maxmsg = 10;
    attr.mq_msgsize = N;
    q = mq_open(name.c_str(), O_CREAT | O_RDWR, 0600, &attr);
    if (q == (mqd_t)-1) Die("mq_open");
  }
  ~PosixMqChan() {
    mq_close(q);
    mq_unlink(name.c_str());
  }
  void Send(const Msg<N>& m) {
    while (mq_send(q, reinterpret_cast<const char*>(&m), N, 0) != 0) {
      if (errno != EINTR) Die("mq_send");
    }
  }
  void Recv(Msg<N>* m) {
    while (mq_receive(q, reinterpret_cast<char*>(m), N, nullptr) !=
           static_cast<ssize_t>(N)) {
      if (errno != EINTR) Die("mq_receive");
    }
  }
  std::string name;
  mqd_t q;
};

template <size_t N>
struct BoostMqChan {
  explicit BoostMqChan(bool) {
    name = "mp_bench_boost_" + RunToken() + "_" + std::to_string(counter++);
    boost::interprocess::message_queue::remove(name.c_str());
    q = std::make_unique<boost::interprocess::message_queue>(
        boost::interprocess::create_only, name.c_str(), N == 64 ? 1024 : 64,
        N);
  }
  ~BoostMqChan() {
    q.reset();
    boost::interprocess::message_queue::remove(name.c_str());
  }
  void Send(const Msg<N>& m) { q->send(&m, N, 0); }
  void Recv(Msg<N>* m) {
    size_t got;
    unsigned prio;
    q->receive(m, N, got, prio);
  }
  static inline int counter = 0;
  std::string name;
  std::unique_ptr<boost::interprocess::message_queue> q;
};

// The pipe as a C++ programmer would write it: fixed-size records, one
// write and one read per message (a loop only for records over PIPE_BUF,
// which the kernel may split), no lock, no length prefix.
template <size_t N>
struct PlainPipeChan {
  explicit PlainPipeChan(bool) {
    if (pipe(fds) != 0) Die("pipe");
  }
  ~PlainPipeChan() {
    close(fds[0]);
    close(fds[1]);
  }
  void Send(const Msg<N>& m) {
    const char* p = reinterpret_cast<const char*>(&m);
    size_t left = N;
    while (left > 0) {
      const ssize_t n = write(fds[1], p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        Die("write");
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void Recv(Msg<N>* m) {
    char* p = reinterpret_cast<char*>(m);
    size_t left = N;
    while (left > 0) {
      const ssize_t n = read(fds[0], p, left);
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        Die("read");
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  int fds[2];
};

// ZeroMQ PUSH/PULL over ipc:// (one way). ZeroMQ contexts do not survive
// fork, so each child makes its own on first use: a sender connects a PUSH
// socket, the receiver binds a PULL socket (ZeroMQ retries the connect until
// the bind exists). Done() closes with infinite linger, so a producer's last
// messages are delivered before it exits.
template <size_t N>
struct ZmqChan {
  // The socket lives in a directory of its own (mkdtemp): a name made of
  // the pid would be shared by runs in other pid namespaces (Bazel's
  // sandboxes share /tmp), whose sockets would then connect to ours.
  explicit ZmqChan(bool) {
    char tmpl[] = "/tmp/mp_bench_zmq_XXXXXX";
    if (mkdtemp(tmpl) == nullptr) Die("mkdtemp");
    dir = tmpl;
    endpoint = "ipc://" + dir + "/s";
  }
  ~ZmqChan() {
    Done();
    unlink((dir + "/s").c_str());
    rmdir(dir.c_str());
  }
  // Makes this process's socket of `type` on first use; binds or connects.
  void Open(int type, bool bind) {
    if (sock != nullptr) return;
    ctx = zmq_ctx_new();
    if (ctx == nullptr) Die("zmq_ctx_new");
    sock = zmq_socket(ctx, type);
    if (sock == nullptr) Die("zmq_socket");
    int linger = -1;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
    int reconnect_ms = 1;  // a connect before the bind retries soon
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &reconnect_ms,
                   sizeof(reconnect_ms));
    // A receiver that hears nothing for 10 s gives up (kZmqLost) instead of
    // waiting for ever: once in many full report runs a PUSH/PULL pair lost
    // a message here (the consumer sat in zmq_recv after the producer had
    // sent everything and exited) and the report hung. The harness repeats
    // such an iteration (BM_Throughput).
    int timeout_ms = 10000;
    zmq_setsockopt(sock, ZMQ_RCVTIMEO, &timeout_ms, sizeof(timeout_ms));
    const int rc = bind ? zmq_bind(sock, endpoint.c_str())
                        : zmq_connect(sock, endpoint.c_str());
    if (rc != 0) Die("zmq_bind/connect");
  }
  void Send(const Msg<N>& m) {
    Open(ZMQ_PUSH, false);
    while (zmq_send(sock, &m, N, 0) != static_cast<int>(N)) {
      if (zmq_errno() != EINTR) Die("zmq_send");
    }
  }
  void Recv(Msg<N>* m) {
    Open(ZMQ_PULL, true);
    while (zmq_recv(sock, m, N, 0) != static_cast<int>(N)) {
      if (zmq_errno() == EAGAIN) {
        std::fprintf(stderr, "zmq_recv: nothing for 10 s: a message lost\n");
        _exit(kZmqLost);
      }
      if (zmq_errno() != EINTR) Die("zmq_recv");
    }
  }
  // One message through before "go": the connection is up when timing
  // starts (one producer and one consumer only).
  void Prepare(bool sender) {
    Msg<N> m{};
    if (sender) {
      Send(m);
    } else {
      Recv(&m);
    }
  }
  void Done() {
    if (sock != nullptr) zmq_close(sock);
    if (ctx != nullptr) zmq_ctx_term(ctx);
    sock = ctx = nullptr;
  }
  std::string dir;
  std::string endpoint;
  void* ctx = nullptr;
  void* sock = nullptr;
};

// The SPSC reference: fixed 64-byte slots, one producer, one consumer,
// cached indices (a side reads the other's index only when its cached copy
// says full or empty), spin both sides. Each side's index and cached copy sit
// in their own 128-byte block (the adjacent-line prefetcher pulls 64-byte
// lines in pairs, so 64 bytes apart still bounces). A side that finds
// nothing to do for 64 polls yields its core: on a machine with fewer free
// cores than spinners (this 2-vCPU VM, shared) a pure spinner burns its whole
// time slice while the peer it waits for is descheduled. Measured in one
// interleaved run on the loaded VM (load average 5): the earlier pure spinner
// (4096 slots, 64-byte separation, no yield) 0.9-1.4 M msgs/s, 64 K slots
// 3.6-4.5 M, 64 K slots with the yield 17-18 M, this ring 33-44 M; when the
// VM was quieter, the pure spinner reached 117-156 M and 64 K slots 26-37 M
// (a 4 MiB ring falls out of L2), so 4096 slots stay. Later, at load
// average 8, this ring gave 85-97 M msgs/s (mp_ring 7-11 M in the same run).
template <size_t N>
struct SpinLimitChan {
  static constexpr size_t kSlots = 4096;
  struct Shm {
    alignas(128) std::atomic<uint64_t> tail{0};
    uint64_t head_cache = 0;
    alignas(128) std::atomic<uint64_t> head{0};
    uint64_t tail_cache = 0;
    alignas(128) Msg<N> slots[kSlots];
  };
  explicit SpinLimitChan(bool) { shm = MapShared<Shm>(); }
  ~SpinLimitChan() { munmap(shm, sizeof(Shm)); }
  static void Idle(int& polls) {
    if (++polls % 64 == 0) sched_yield();
  }
  void Send(const Msg<N>& m) {
    uint64_t t = shm->tail.load(std::memory_order_relaxed);
    int polls = 0;
    while (t - shm->head_cache >= kSlots) {
      Idle(polls);
      shm->head_cache = shm->head.load(std::memory_order_acquire);
    }
    shm->slots[t % kSlots] = m;
    shm->tail.store(t + 1, std::memory_order_release);
  }
  void Recv(Msg<N>* m) {
    uint64_t h = shm->head.load(std::memory_order_relaxed);
    int polls = 0;
    while (h == shm->tail_cache) {
      Idle(polls);
      shm->tail_cache = shm->tail.load(std::memory_order_acquire);
    }
    *m = shm->slots[h % kSlots];
    shm->head.store(h + 1, std::memory_order_release);
  }
  Shm* shm;
};

// The MPMC reference: a bounded lock-free queue of fixed slots, each with a
// sequence number (Vyukov's design); producers and consumers claim slots with
// a CAS on their index. No sleeping: a side with nothing to do spins, and
// yields its core every 64 failed polls, since the MPMC case runs four
// processes on however few cores the machine has and a pure spinner would
// burn a whole time slice waiting for a preempted peer.
template <size_t N>
struct SpinLimitMpmcChan {
  static constexpr uint64_t kSlots = 4096;
  struct alignas(64) Cell {
    std::atomic<uint64_t> seq;
    Msg<N> msg;
  };
  struct Shm {
    alignas(64) std::atomic<uint64_t> enqueue{0};
    alignas(64) std::atomic<uint64_t> dequeue{0};
    Cell cells[kSlots];
  };
  explicit SpinLimitMpmcChan(bool) {
    shm = MapShared<Shm>();
    for (uint64_t i = 0; i < kSlots; ++i) shm->cells[i].seq.store(i);
  }
  ~SpinLimitMpmcChan() { munmap(shm, sizeof(Shm)); }
  static void Backoff(int& polls) {
    if (++polls % 64 == 0) {
      sched_yield();
    } else {
      __builtin_ia32_pause();
    }
  }
  // Claims the next slot of `index` (its position in *pos) once the slot's
  // sequence number says `*pos + ready`.
  Cell* Claim(std::atomic<uint64_t>& index, uint64_t ready, uint64_t* pos) {
    int polls = 0;
    uint64_t p = index.load(std::memory_order_relaxed);
    for (;;) {
      Cell* c = &shm->cells[p % kSlots];
      const int64_t diff = static_cast<int64_t>(
          c->seq.load(std::memory_order_acquire) - (p + ready));
      if (diff == 0) {
        if (index.compare_exchange_weak(p, p + 1, std::memory_order_relaxed)) {
          *pos = p;
          return c;
        }
      } else {
        if (diff < 0) Backoff(polls);  // full (producer) or empty (consumer)
        p = index.load(std::memory_order_relaxed);
      }
    }
  }
  void Send(const Msg<N>& m) {
    uint64_t pos;
    Cell* c = Claim(shm->enqueue, 0, &pos);
    c->msg = m;
    c->seq.store(pos + 1, std::memory_order_release);
  }
  void Recv(Msg<N>* m) {
    uint64_t pos;
    Cell* c = Claim(shm->dequeue, 1, &pos);
    *m = c->msg;
    c->seq.store(pos + kSlots, std::memory_order_release);
  }
  Shm* shm;
};

// ---- runners ---------------------------------------------------------------

struct Control {
  std::atomic<int> ready{0};
  std::atomic<int> go{0};
};

// A channel end's last act in a child (ZeroMQ flushes and closes there).
template <class Chan>
void Done(Chan& ch) {
  if constexpr (requires { ch.Done(); }) ch.Done();
}

// A channel end's first act in a child, before it reports ready (ZeroMQ
// connects there, so no connection set-up lands in the timed part).
template <class Chan>
void Prepare(Chan& ch, bool sender) {
  if constexpr (requires { ch.Prepare(sender); }) ch.Prepare(sender);
}

pid_t Spawn(Control* ctl, const std::function<void()>& prepare,
            const std::function<void()>& body) {
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    prepare();
    ctl->ready.fetch_add(1);
    while (!ctl->go.load()) sched_yield();
    body();
    _exit(0);
  }
  return pid;
}

// The child's exit code: 0, or kZmqLost (see ZmqChan); anything else
// aborts the benchmark.
int Reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) &&
      (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == kZmqLost)) {
    return WEXITSTATUS(status);
  }
  std::fprintf(stderr, "bench child failed (status %d)\n", status);
  std::abort();
}

template <template <size_t> class Chan, size_t N>
void BM_Throughput(benchmark::State& state, int producers, int consumers,
                   uint64_t batch) {
  Control* ctl = MapShared<Control>();
  int repeated = 0;
  bool failed = false;
  for (auto _ : state) {
    // An attempt in which ZeroMQ lost a message (see ZmqChan) measured
    // nothing: it is made again, and only the attempt that delivered every
    // message is timed; the run reports how many were repeated.
    for (int attempt = 0;; ++attempt) {
      Chan<N> ch(producers == 1 && consumers == 1);
      ctl->ready = 0;
      ctl->go = 0;
      std::vector<pid_t> kids;
      for (int p = 0; p < producers; ++p) {
        kids.push_back(Spawn(
            ctl, [&ch] { Prepare(ch, true); },
            [&ch, batch, producers] {
              Msg<N> m{};
              for (uint64_t i = 0; i < batch / producers; ++i) {
                m.seq = i;
                ch.Send(m);
              }
              Done(ch);
            }));
      }
      for (int c = 0; c < consumers; ++c) {
        kids.push_back(Spawn(
            ctl, [&ch] { Prepare(ch, false); },
            [&ch, batch, consumers] {
              Msg<N> m;
              uint64_t sum = 0;
              for (uint64_t i = 0; i < batch / consumers; ++i) {
                ch.Recv(&m);
                sum += m.seq;
              }
              benchmark::DoNotOptimize(sum);
              Done(ch);
            }));
      }
      while (ctl->ready.load() < producers + consumers) sched_yield();
      auto t0 = Clock::now();
      ctl->go = 1;
      bool lost = false;
      for (pid_t k : kids) lost |= Reap(k) == kZmqLost;
      if (!lost) {
        state.SetIterationTime(
            std::chrono::duration<double>(Clock::now() - t0).count());
        break;
      }
      std::fprintf(stderr,
                   "queue_bench: a message was lost; attempt repeated\n");
      ++repeated;
      if (attempt == 2) {
        state.SkipWithError("messages lost in three attempts in a row");
        failed = true;
        break;
      }
    }
    if (failed) break;
  }
  if (repeated > 0) state.counters["repeated"] = repeated;
  munmap(ctl, sizeof(Control));
  state.SetItemsProcessed(state.iterations() * batch);
  state.SetBytesProcessed(state.iterations() * batch * N);
}

template <template <size_t> class Chan>
void BM_PingPong(benchmark::State& state) {
  constexpr size_t N = 64;
  Chan<N> there(true);
  Chan<N> back(true);
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    Msg<N> m;
    for (;;) {
      there.Recv(&m);
      back.Send(m);
      if (m.seq == ~uint64_t{0}) break;
    }
    Done(there);
    Done(back);
    _exit(0);
  }
  Msg<N> m{};
  there.Send(m);  // warm-up round trip, untimed
  back.Recv(&m);
  mp_bench::LatencyRecorder lat;
  for (auto _ : state) {
    auto t0 = Clock::now();
    m.seq++;
    there.Send(m);
    back.Recv(&m);
    const auto d = Clock::now() - t0;
    state.SetIterationTime(std::chrono::duration<double>(d).count());
    lat.Record(d);
  }
  m.seq = ~uint64_t{0};
  there.Send(m);
  back.Recv(&m);
  Done(there);
  Done(back);
  Reap(pid);
  state.SetItemsProcessed(state.iterations());
  lat.Export(state);
}

// ZeroMQ's ping-pong: one PAIR socket per side over ipc://, the parent
// binds, the child connects (made after fork, as ZeroMQ requires).
void BM_PingPongZmq(benchmark::State& state) {
  constexpr size_t N = 64;
  ZmqChan<N> link(true);
  pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    link.Open(ZMQ_PAIR, false);
    Msg<N> m;
    for (;;) {
      if (zmq_recv(link.sock, &m, N, 0) != static_cast<int>(N)) continue;
      while (zmq_send(link.sock, &m, N, 0) != static_cast<int>(N)) {
      }
      if (m.seq == ~uint64_t{0}) break;
    }
    link.Done();
    _exit(0);
  }
  link.Open(ZMQ_PAIR, true);
  auto round_trip = [&link](Msg<N>* m) {
    while (zmq_send(link.sock, m, N, 0) != static_cast<int>(N)) {
      if (zmq_errno() != EINTR) Die("zmq_send");
    }
    while (zmq_recv(link.sock, m, N, 0) != static_cast<int>(N)) {
      if (zmq_errno() != EINTR) Die("zmq_recv");
    }
  };
  Msg<N> m{};
  round_trip(&m);  // warm-up: the connection is up before timing starts
  mp_bench::LatencyRecorder lat;
  for (auto _ : state) {
    auto t0 = Clock::now();
    m.seq++;
    round_trip(&m);
    const auto d = Clock::now() - t0;
    state.SetIterationTime(std::chrono::duration<double>(d).count());
    lat.Record(d);
  }
  m.seq = ~uint64_t{0};
  round_trip(&m);
  link.Done();
  Reap(pid);
  state.SetItemsProcessed(state.iterations());
  lat.Export(state);
}

constexpr uint64_t kBatch64 = 200'000;
constexpr uint64_t kBatch4K = 20'000;

template <template <size_t> class Chan, size_t N>
void AddThroughput(const char* case_name, const char* impl, int p, int c,
                   uint64_t batch) {
  benchmark::RegisterBenchmark(
      (std::string(case_name) + "/" + impl).c_str(),
      [=](benchmark::State& st) { BM_Throughput<Chan, N>(st, p, c, batch); })
      ->UseManualTime()
      ->Unit(benchmark::kMillisecond);
}

template <template <size_t> class Chan>
void AddPingPong(const char* impl) {
  benchmark::RegisterBenchmark(
      (std::string("queue_pingpong_64B/") + impl).c_str(), BM_PingPong<Chan>)
      ->UseManualTime()
      ->Unit(benchmark::kNanosecond);
}

// The throughput-by-size cases beyond 64 B and 4 KiB: about 12.8 MB per
// iteration, at least 1000 messages.
template <size_t N>
void AddSizeCase(const char* case_name) {
  constexpr uint64_t batch = std::max<uint64_t>(1000, 12'800'000 / N);
  AddThroughput<MpRingChan, N>(case_name, "mp_ring", 1, 1, batch);
  AddThroughput<PlainPipeChan, N>(case_name, "plain_pipe", 1, 1, batch);
  AddThroughput<PipeChan, N>(case_name, "pipe", 1, 1, batch);
}

void RegisterAll() {
  AddThroughput<MpRingChan, 64>("queue_spsc_64B", "mp_ring", 1, 1, kBatch64);
  AddThroughput<PipeChan, 64>("queue_spsc_64B", "pipe", 1, 1, kBatch64);
  AddThroughput<PlainPipeChan, 64>("queue_spsc_64B", "plain_pipe", 1, 1,
                                   kBatch64);
  AddThroughput<PosixMqChan, 64>("queue_spsc_64B", "posix_mq", 1, 1, kBatch64);
  AddThroughput<UnixSocketChan, 64>("queue_spsc_64B", "unix_socket", 1, 1,
                                    kBatch64);
  AddThroughput<BoostMqChan, 64>("queue_spsc_64B", "boost_mq", 1, 1, kBatch64);
  AddThroughput<ZmqChan, 64>("queue_spsc_64B", "zmq", 1, 1, kBatch64);
  AddThroughput<SpinLimitChan, 64>("queue_spsc_64B", "spin_limit", 1, 1,
                                   kBatch64);

  AddSizeCase<256>("queue_spsc_256B");
  AddSizeCase<1024>("queue_spsc_1KiB");

  AddThroughput<MpRingChan, 4096>("queue_spsc_4KiB", "mp_ring", 1, 1, kBatch4K);
  AddThroughput<PipeChan, 4096>("queue_spsc_4KiB", "pipe", 1, 1, kBatch4K);
  AddThroughput<PlainPipeChan, 4096>("queue_spsc_4KiB", "plain_pipe", 1, 1,
                                     kBatch4K);
  AddThroughput<UnixSocketChan, 4096>("queue_spsc_4KiB", "unix_socket", 1, 1,
                                      kBatch4K);
  AddThroughput<BoostMqChan, 4096>("queue_spsc_4KiB", "boost_mq", 1, 1,
                                   kBatch4K);
  AddThroughput<ZmqChan, 4096>("queue_spsc_4KiB", "zmq", 1, 1, kBatch4K);

  AddSizeCase<16384>("queue_spsc_16KiB");
  AddSizeCase<65536>("queue_spsc_64KiB");

  AddThroughput<MpRingChan, 64>("queue_mpmc_64B_2p2c", "mp_ring", 2, 2,
                                kBatch64);
  AddThroughput<PipeChan, 64>("queue_mpmc_64B_2p2c", "pipe", 2, 2, kBatch64);
  AddThroughput<PlainPipeChan, 64>("queue_mpmc_64B_2p2c", "plain_pipe", 2, 2,
                                   kBatch64);
  AddThroughput<BoostMqChan, 64>("queue_mpmc_64B_2p2c", "boost_mq", 2, 2,
                                 kBatch64);
  AddThroughput<SpinLimitMpmcChan, 64>("queue_mpmc_64B_2p2c", "spin_limit", 2,
                                       2, kBatch64);

  AddPingPong<MpRingChan>("mp_ring");
  AddPingPong<PipeChan>("pipe");
  AddPingPong<PlainPipeChan>("plain_pipe");
  AddPingPong<UnixSocketChan>("unix_socket");
  benchmark::RegisterBenchmark("queue_pingpong_64B/zmq", BM_PingPongZmq)
      ->UseManualTime()
      ->Unit(benchmark::kNanosecond);
  AddPingPong<SpinLimitChan>("spin_limit");
}

}  // namespace

int main(int argc, char** argv) {
  RegisterAll();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
