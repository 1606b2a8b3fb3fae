// mp/pool/pool.h
// -----------------------------------------------------------------------------
// mp::Pool: multiprocessing.Pool over the shared-memory ring, surviving killed
// workers.
//
//   int do_calculation(int data) { return data * 2; }
//   void start_process() { std::cout << "Starting " << mp::current_process().name() << "\n"; }
//
//   mp::Pool pool({.processes = 4, .initializer = start_process});
//   absl::StatusOr<std::vector<int>> out = pool.Map(do_calculation, inputs);
//   pool.Close();
//   MP_CHECK_OK(pool.Join());
//
// Design
// ======
// Tasks. A task is a function the worker already has -- a plain function or
// a lambda without captures -- plus its arguments as mp::Codec bytes
// (mp/queue/codec.h). Nothing is serialised but the arguments: the function
// travels as a FunctionRef (internal/function_ref.h: the build id of the ELF
// object that holds it and its offset in that object), which means the same
// function in any process of the same binary, forked from the caller or not
// (the MPI backend's case). What actually travels is two references: the
// user's function (none for a lambda, whose type says it all: a captureless
// lambda is default-constructed in the worker) and a trampoline
// instantiated for (function type, argument types) that decodes the
// arguments, calls, and encodes the result or the exception. A capturing
// lambda, a std::function, or an argument or result type with no codec is a
// compile-time error naming the problem.
//
// Transport. Each worker has two SPSC rings (mp::Queue, kSpsc, anonymous,
// 1 MiB; messages over 256 KiB take the queue's side segments): a task ring
// parent -> worker and a result ring worker -> parent. SPSC is the cheapest
// ring (no lock, no RMW per message) and, more importantly, gives each worker
// a private FIFO: results of one worker come back in the order its tasks
// were sent, so the parent matches a result to the front of that worker's
// window in O(1), and after a death it can drain exactly that worker's
// results. A chunk (chunksize items) is one task and one result message.
// Several small tasks bound for one worker travel as one ring record (a
// batch, up to 16 KiB of arguments), each with its own id: one push for
// many tiny tasks, while the worker still names each task in its slot
// before it starts it and answers each with its own result message. With
// chunksize 1, a Map's items wait and travel as runs (64 items to a
// TaskSpec, split to fit a worker's room): one entry in the parent's
// queues per run, not per item, while each item keeps its own id, its own
// answer and its own failure. A run's answers come back as one message:
// the worker appends each item's answer to an answer area in shared
// memory, and records that it did, before it names the next item in its
// slot; the area goes to the parent when the run ends (or fills), and
// after a death the parent reads from it the answers no message brought
// (see "Who holds what"). Runs are cut to at most half a worker's window,
// so the next is there when one ends. ApplyAsync tasks of one function
// that go to one worker in one batch travel the same way, as a run on the
// wire, while the parent keeps each as its own task (its own window entry,
// result and callback): one answer message for the run instead of one per
// task (pool_apply_async_tiny: 54-65 ms -> 38-47 ms per 100 k tasks,
// interleaved A/B); after a death, a task named before the held one whose
// answer reached the parent neither by message nor from the area fails
// with DataLoss rather than run twice.
//
// The handler. One parent thread (Python's three handler threads in one)
// moves submitted tasks into the workers' rings, collects results, runs
// callbacks one at a time, notices deaths and starts replacements. It keeps
// each worker's window (the tasks sent to it and not yet answered) bounded:
// about 2 ms of that worker's work as measured from its results, at least
// 2 tasks and at most PoolOptions::window (default 256); 2 before the
// first measurement. Tiny tasks get the whole window (a worker that runs
// dry between two handler passes sleeps, and waking it costs more than its
// task); slow ones stay in the parent until a worker frees up, as in
// Python's shared task queue, instead of waiting behind a slow task. Work
// is shared out evenly among the workers with room (two long tasks go to
// two workers). Fast path: per batch, one push in the handler and one pop
// in the worker; per task, one store (below) and a result push in the
// worker, a ring pop in the handler: no system call while both sides are
// busy. A Map's tasks reach the handler in blocks of 1024 as the caller
// encodes them, so the workers start before the encoding ends; argument
// buffers of answered tasks are kept (up to 16 MiB) for the next
// submission, whose pages are then already in memory. An idle worker
// sleeps in the ring's futex; an idle handler sleeps on a futex word in a
// shared control block that a worker (after a batch; after each of its
// tasks when the flag is seen up without a fence) and a submitter wake
// only when the handler's "sleeping" flag is up (a Dekker handshake with a
// full fence on each side: the waker's costs nanoseconds once per batch,
// while a membarrier on the sleeper's side would interrupt every worker's
// core each time the handler sleeps). An idle handler spins a little,
// reaps dead workers once (waitpid is a system call: not on every pass of
// the spin), then sleeps in slices (20 ms) so a death that wakes nobody is
// noticed.
//
// Apply's round trip. What the handler does is a role (PoolCore::role_mu_)
// that the handler thread holds except while it sleeps. A synchronous
// Apply that finds the pool idle (the role free, nothing submitted, sent
// or waiting) takes it: it puts its task in the worker's ring and
// collects the answer itself, spinning (up to 20 us), so a round trip is
// one hop each way between the caller and a worker, as in a queue's
// ping-pong, instead of four with two wake-ups. Only its own task is in
// flight, so nobody's callbacks run on its thread. The parked handler is
// not woken by the worker's answer: the handler keeps two sleeping flags,
// one in shared memory that workers check and one in the parent that
// callers check (the same full-fence handshake each), and the Apply puts
// down only the workers' one. Anything else -- another caller's
// submission, Close, Terminate (those wake the handler, which waits for
// the role), a task still running when the spin ends, a worker that died
// -- is the handler thread's: the Apply gives the role back, wakes the
// handler if its task is still out, and waits for its result as any
// other. Workers are only started and reaped by the handler thread (their
// parent-death signal follows the thread that forked them). An idle
// handler (nothing sent or waiting) sleeps at once rather than spin, so
// that the role is free for the next Apply. Measured: one Apply at a time
// on one worker, 0.6 to 0.8 us per call, 2.5 to 3x the queue's own
// ping-pong in the same run (7 to 20 us through the handler thread).
//
// Who holds what. Each worker has a slot in shared memory (WorkerSlot) that
// it writes "now running task X" to (a release store) after it pops task X
// and before it decodes or calls anything. Its task ring is FIFO, its window
// is in send order, so when a worker is found dead (waitpid, through
// Process::exitcode; the kernel's reaping orders the worker's last stores
// before the parent's reads) the parent:
//   1. drains the dead worker's result ring (committed results are kept; a
//      result cut off mid-write is skipped by the ring as lost);
//   2. takes from the worker's answer area the answers to the items of
//      its current run that no message brought (all those before the item
//      it held), then fails the task whose id is in the slot and is still
//      unanswered (in a run, the items after it never started), with
//      Aborted naming the worker, its pid and how it died ("killed by
//      signal 9 (KILL)", "exited with code 3"), or re-queues it when it has
//      retries left (PoolOptions::task_retries);
//   3. re-queues every other task of the window, at the front, in order:
//      they were sent but never started (the slot never named them);
//   4. drains the dead worker's task ring (so big messages' segments are
//      unlinked) and starts a replacement.
// So a death fails exactly the task that was running, never runs a task
// twice unless retries were asked for, and never leaves a call waiting.
// Correctness rests on shared state written before the task starts, never
// on timing. verify/pool.pml model-checks this handoff with a kill at every
// step, and its broken twins (slot written after the call; window judged
// before draining) fail; verify/pool_run.pml does the same for a run and
// its answer area (twins: the next item named before the answer is
// recorded, the area not read after a death, the area emptied before its
// message is sent).
//
// maxtasksperchild: a worker counts the tasks (chunks) it completed and exits
// after N; the handler never sends it more than N, so nothing is stranded,
// and it replaces the worker when it exits, work waiting or not.
//
// Imap / ImapUnordered consume their input lazily: the iterator encodes and
// submits items from the caller's thread as results are taken, keeping at
// most ImapOptions::max_in_flight items submitted and not yet taken, so an
// endless input keeps memory flat (CPython's imap reads the whole input
// first). Join, after Close, submits what is left of every open iterator's
// input from the joining thread, as Python's join waits for its task
// handler to read every input; the results then wait in the iterator, so
// `Close(); Join();` and iterating afterwards works as in Python (an
// endless input never ends that Join: drain or destroy its iterator first).
//
// Errors (absl::Status codes)
//   Unknown            the task threw: "<type>: <what()>"; the type is also
//                      in the status payload (PoolExceptionType).
//   Aborted            the worker died running the task (see above).
//   Cancelled          the pool was terminated before the task finished.
//   DataLoss           a result (or arguments) that did not decode.
//   FailedPrecondition a call after Close / Terminate; Join before Close
//                      ("Pool is still running", Python's ValueError);
//                      Successful() before Ready().
//   InvalidArgument    Make: processes < 1, maxtasksperchild < 1, window < 1,
//                      task_retries < 0.
//   DeadlineExceeded   a timed Get / Wait / Join / Imap Next that timed out.
//   OutOfRange         Imap Next past the last result.
// Map / Apply return the first failing item's status (in input order), as
// Python's map raises the first exception; Imap yields one StatusOr per item.
//
// Lifetime. Close: no more calls; workers exit once the work submitted is
// done. Terminate: workers are killed (SIGKILL) and reaped at once,
// unfinished tasks fail with Cancelled, big messages' segments are removed.
// The destructor terminates (Python's `with`), so no child outlives the Pool.
// Workers are daemons with PR_SET_PDEATHSIG (mp::Process), forked from the
// handler thread, which lives as long as the Pool: if the parent dies, they
// are killed. An Imap iterator may outlive the Pool's Terminate (its Next
// then returns Cancelled); after Close it may still feed (see Join above).
//
// Callbacks run on the handler thread, one at a time, before the result
// becomes ready (Python's order). A callback must not block on the pool
// (Get, Join, Terminate): Terminate and Join from a callback return
// FailedPrecondition rather than deadlock.
//
// Threads: every method may be called from any thread of the parent. The
// worker side runs in forked children only.

#ifndef MP_POOL_POOL_H_
#define MP_POOL_POOL_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "mp/core/error.h"
#include "mp/core/futex.h"
#include "mp/queue/codec.h"
#include "mp/pool/internal/function_ref.h"

namespace mp {

// What a function returning void returns through the pool (Python's None).
struct None {
  friend bool operator==(None, None) { return true; }
};

// Python's Pool(processes, initializer, initargs, maxtasksperchild).
struct PoolOptions {
  // Worker processes; nullopt: cpu_count(). < 1: InvalidArgument.
  std::optional<int> processes{};
  // Runs once in each worker before its first task (give initargs by
  // capture or WithInitializer: the worker is forked, so any callable
  // works here). An initializer that throws ends that worker (exit code 1,
  // its message on stderr) and the pool starts another, as Python's does.
  std::function<void()> initializer{};
  // Tasks (chunks) a worker completes before it is replaced; nullopt: never.
  std::optional<int> maxtasksperchild{};
  // How many times a task whose worker died under it is run again before it
  // fails with Aborted. Default 0: a task never runs twice.
  int task_retries = 0;
  // At most this many tasks sent to one worker and not yet answered; the
  // handler keeps fewer for slow tasks (see "The handler").
  int window = 256;
  // Workers are named "<worker_name>-N", N counting every worker started.
  std::string worker_name = "PoolWorker";

  template <class F, class... A>
  PoolOptions& WithInitializer(F f, A... initargs) {
    initializer = [f, initargs...]() mutable { f(initargs...); };
    return *this;
  }
};

// Imap / ImapUnordered: chunksize items per task; at most max_in_flight
// items submitted and not yet taken (0: 256 * processes * chunksize, what
// keeps tiny tasks flowing; memory stays bounded over an endless input).
struct ImapOptions {
  size_t chunksize = 1;
  size_t max_in_flight = 0;
};

// The type of the exception a task threw, from a status Get returned
// ("std::runtime_error"), or nullopt when the status is not a task's throw.
std::optional<std::string> PoolExceptionType(const absl::Status& status);

class Pool;

namespace pool_internal {
// Backends built on this pool (mp/pool/mpi) reach its task submission and
// AsyncResult's constructor through this (defined below Pool).
struct PoolAccess;

template <class T>
concept HasCodec = requires(const T& v, ByteWriter& w, ByteReader& r, T* p) {
  Codec<T>::Encode(v, w);
  { Codec<T>::Decode(r, p) } -> std::same_as<absl::Status>;
};

// A task's callable: a function pointer, or a lambda without captures.
template <class F>
inline constexpr bool kIsFunctionPointer =
    std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>;
template <class F>
inline constexpr bool kIsStatelessCallable =
    std::is_class_v<F> && std::is_empty_v<F> &&
    std::is_default_constructible_v<F> && std::is_trivially_copyable_v<F>;

template <class F>
constexpr void CheckCallable() {
  static_assert(kIsFunctionPointer<F> || kIsStatelessCallable<F>,
                "mp::Pool: a task must be a plain function or a lambda "
                "without captures: captured state cannot reach a worker "
                "process. Pass what you would capture as an argument.");
}
template <class T>
constexpr void CheckCodec() {
  static_assert(HasCodec<T>,
                "mp::Pool: an argument or result type has no mp::Codec. "
                "Specialise mp::Codec<T> (see mp/queue/codec.h).");
}

template <class F, class... A>
using RawResult = std::invoke_result_t<F, A&&...>;
template <class F, class... A>
using ResultOf = std::conditional_t<std::is_void_v<RawResult<F, A...>>, None,
                                    std::decay_t<RawResult<F, A...>>>;

// Item result tags (worker -> parent).
// kItemPacked: [tag][u32 len][len / sizeof(R) results of R, each OK] -- the
// answer to a packed task (below), one record for a run of items.
enum ItemTag : uint8_t {
  kItemOk = 0,
  kItemRaised = 1,
  kItemFailed = 2,
  kItemPacked = 3,
};

// One item: [u32 length][bytes]. A chunk's arguments and its results are
// sequences of these (results with a tag byte first).
inline void AppendItem(std::string* out, uint8_t tag, const char* data,
                       size_t n) {
  const uint32_t len = static_cast<uint32_t>(n);
  out->push_back(static_cast<char>(tag));
  out->append(reinterpret_cast<const char*>(&len), sizeof(len));
  out->append(data, n);
}

// The worker-side trampoline: decodes one item's arguments from [data, n),
// calls, appends [tag][u32 len][bytes] to *out.
// Runs one task: its `count` items, each [u32 len][arguments] in
// [data, data + n), appending each answer, [tag][u32 len][bytes], to *out.
// Arguments that overrun the task's bytes fail that item and the rest
// (DataLoss): the bytes came from another process.
using Invoker = void (*)(const void* fn, const char* data, size_t n,
                         uint32_t count, std::string* out);

void AppendRaised(std::string* out, size_t mark, const char* type,
                  const char* what);
void AppendFailed(std::string* out, size_t mark, const absl::Status& s);
// Appends items [from, count) as failed with `s`.
void FailItems(std::string* out, uint32_t from, uint32_t count,
               const absl::Status& s);
std::string Demangle(const char* name);
// `s` with "item <index>: " before its message, payloads kept.
absl::Status ForItem(const absl::Status& s, size_t index);

template <class... A, size_t... I>
absl::Status DecodeArgs(ByteReader& in, std::tuple<A...>& args,
                        std::index_sequence<I...>) {
  absl::Status s;
  ((s.ok() ? (void)(s = in.Get(&std::get<I>(args))) : void()), ...);
  return s;
}

// Types whose codec is a plain copy of their bytes (ints, doubles, PODs):
// a task over them is encoded, run and answered without the codec's
// general path (one fixed-size copy each way, one append).
template <class T>
inline constexpr bool kFlat =
    CodecCopiesBytes<T> && std::is_trivially_default_constructible_v<T>;

template <class... A, size_t... I>
void CopyFlatArgs(const char* p, std::tuple<A...>& args,
                  std::index_sequence<I...>) {
  ((std::memcpy(&std::get<I>(args), p, sizeof(A)), p += sizeof(A)), ...);
}

template <class F>
F FunctionFrom(const void* fn) {
  if constexpr (kIsFunctionPointer<F>) {
    return reinterpret_cast<F>(const_cast<void*>(fn));
  } else {
    (void)fn;
    return F{};
  }
}

template <class... A, size_t... I>
char* WriteFlatArgs(char* w, const std::tuple<A...>& args,
                    std::index_sequence<I...>) {
  ((std::memcpy(w, &std::get<I>(args), sizeof(A)), w += sizeof(A)), ...);
  return w;
}

// One item, through the codecs.
template <class F, class... A>
void InvokeOne(const F& f, const char* data, size_t n, std::string* out) {
  using R = ResultOf<F, A...>;
  const size_t mark = out->size();
  out->append(1 + sizeof(uint32_t), '\0');
  try {
    std::tuple<A...> args{};
    ByteReader in(data, n);
    absl::Status s = DecodeArgs(in, args, std::index_sequence_for<A...>{});
    if (s.ok() && in.remaining() != 0) {
      s = absl::DataLossError("pool: trailing bytes after a task's arguments");
    }
    if (!s.ok()) {
      AppendFailed(out, mark, s);
      return;
    }
    ByteWriter w(out);
    if constexpr (std::is_void_v<RawResult<F, A...>>) {
      std::apply(f, std::move(args));
      w.Put(None{});
    } else {
      const R r = std::apply(f, std::move(args));
      w.Put(r);
    }
    const uint32_t len = static_cast<uint32_t>(out->size() - mark - 5);
    (*out)[mark] = static_cast<char>(kItemOk);
    std::memcpy(out->data() + mark + 1, &len, sizeof(len));
  } catch (const std::exception& e) {
    AppendRaised(out, mark, typeid(e).name(), e.what());
  } catch (...) {
    AppendRaised(out, mark, nullptr, "unknown exception");
  }
}

// Packed tasks: when every argument and the result are flat, a Map's chunk
// is sent as a bare array of argument tuples (count x the tuples' bytes, no
// per-item length) and answered with packed runs of results: half the
// bytes of the framed encoding each way. A task's bytes are packed exactly
// when their size is count x the tuple size (a framed item is 4 bytes
// longer, so the two never meet); only Pool::Submit packs (Imap and the MPI
// backend send framed items, and get framed answers back).
template <class F, class... A>
inline constexpr bool kPackable =
    (kFlat<A> && ...) && !std::is_void_v<RawResult<F, A...>> &&
    kFlat<ResultOf<F, A...>>;

// Ends the packed run opened at `run` (dropped when empty).
void EndPackedRun(std::string* out, size_t run);

template <class F, class... A>
void InvokePacked(const F& f, const char* data, uint32_t count,
                  std::string* out) {
  using R = ResultOf<F, A...>;
  constexpr size_t kIn = (size_t{0} + ... + sizeof(A));
  size_t run = out->size();
  out->resize(run + 1 + sizeof(uint32_t) + size_t{count} * sizeof(R));
  char* w = out->data() + run + 1 + sizeof(uint32_t);
  for (uint32_t i = 0; i < count; ++i) {
    std::tuple<A...> args;
    CopyFlatArgs(data + size_t{i} * kIn, args, std::index_sequence_for<A...>{});
    const char* type = nullptr;
    std::string what;
    try {
      const R r = std::apply(f, args);
      std::memcpy(w, &r, sizeof(R));
      w += sizeof(R);
      continue;
    } catch (const std::exception& e) {
      type = typeid(e).name();
      what = e.what();
    } catch (...) {
      what = "unknown exception";
    }
    // Item i threw: end the run, answer it, open a run for the rest.
    out->resize(static_cast<size_t>(w - out->data()));
    EndPackedRun(out, run);
    const size_t at = out->size();
    out->append(1 + sizeof(uint32_t), '\0');
    AppendRaised(out, at, type, what.c_str());
    run = out->size();
    out->resize(run + 1 + sizeof(uint32_t) +
                size_t{count - i - 1} * sizeof(R));
    w = out->data() + run + 1 + sizeof(uint32_t);
  }
  out->resize(static_cast<size_t>(w - out->data()));
  EndPackedRun(out, run);
}

// The trampoline (an Invoker) for F over (A...). When every argument and
// the result are flat, the answers are written into the output sized once
// per task, with fixed-size copies: no codec call, no append per item. An
// item of another length, or one that throws, ends the flat run and the
// rest go through InvokeOne.
template <class F, class... A>
void Invoke(const void* fn, const char* data, size_t n, uint32_t count,
            std::string* out) {
  using R = ResultOf<F, A...>;
  const F f = FunctionFrom<F>(fn);
  if constexpr (kPackable<F, A...>) {
    if (n == size_t{count} * (size_t{0} + ... + sizeof(A))) {
      InvokePacked<F, A...>(f, data, count, out);
      return;
    }
  }
  uint32_t i = 0;
  size_t used = 0;  // argument bytes consumed
  if constexpr ((kFlat<A> && ...) && !std::is_void_v<RawResult<F, A...>> &&
                kFlat<R>) {
    constexpr uint32_t kIn = (uint32_t{0} + ... + sizeof(A));
    constexpr size_t kInRec = sizeof(uint32_t) + kIn;
    constexpr size_t kOutRec = 1 + sizeof(uint32_t) + sizeof(R);
    if (n / kInRec >= count) {
      const size_t mark = out->size();
      out->resize(mark + size_t{count} * kOutRec);
      char* w = out->data() + mark;
      std::exception_ptr thrown;
      for (; i < count; ++i, used += kInRec, w += kOutRec) {
        uint32_t len;
        std::memcpy(&len, data + used, sizeof(len));
        if (len != kIn) break;
        std::tuple<A...> args;
        CopyFlatArgs(data + used + sizeof(len), args,
                     std::index_sequence_for<A...>{});
        try {
          const R r = std::apply(f, args);
          std::memcpy(w + 1 + sizeof(uint32_t), &r, sizeof(R));
        } catch (...) {
          thrown = std::current_exception();
          break;
        }
        w[0] = static_cast<char>(kItemOk);
        constexpr uint32_t kLen = sizeof(R);
        std::memcpy(w + 1, &kLen, sizeof(kLen));
      }
      out->resize(mark + size_t{i} * kOutRec);
      if (thrown) {  // item i ran and threw: its answer, then the rest
        const size_t at = out->size();
        out->append(1 + sizeof(uint32_t), '\0');
        try {
          std::rethrow_exception(thrown);
        } catch (const std::exception& e) {
          AppendRaised(out, at, typeid(e).name(), e.what());
        } catch (...) {
          AppendRaised(out, at, nullptr, "unknown exception");
        }
        ++i;
        used += kInRec;
      }
    }
  }
  const char* p = data + used;
  size_t left = n - used;
  for (; i < count; ++i) {
    uint32_t len = 0;
    if (left < sizeof(len) ||
        (std::memcpy(&len, p, sizeof(len)), len > left - sizeof(len))) {
      FailItems(out, i, count,
                absl::DataLossError("pool: malformed task arguments"));
      return;
    }
    InvokeOne<F, A...>(f, p + sizeof(len), len, out);
    p += sizeof(len) + len;
    left -= sizeof(len) + len;
  }
}

// Decodes one item result (tag, bytes) into a StatusOr<R>.
absl::Status ItemError(uint8_t tag, const char* data, size_t n);
template <class R>
absl::StatusOr<R> DecodeItem(uint8_t tag, const char* data, size_t n) {
  if (tag != kItemOk) return ItemError(tag, data, n);
  if constexpr (kFlat<R>) {
    if (n == sizeof(R)) {
      R r;
      std::memcpy(&r, data, sizeof(R));
      return r;
    }
  }
  R r{};
  try {
    absl::Status s = DecodeMessage(data, n, &r);
    if (!s.ok()) {
      return absl::DataLossError(
          absl::StrCat("pool: a task's result did not decode: ", s.message()));
    }
  } catch (const std::exception& e) {
    return absl::DataLossError(
        absl::StrCat("pool: decoding a task's result threw: ", e.what()));
  }
  return r;
}

// A call (Map, Apply, Imap...) as the handler sees it: item results arrive
// in any order, each index exactly once (OnItem or OnFailure).
class JobBase {
 public:
  virtual ~JobBase() = default;
  virtual void OnItem(size_t index, uint8_t tag, const char* data,
                      size_t n) = 0;
  virtual void OnFailure(size_t index, const absl::Status& s) = 0;
  // A task's answer: `count` items from `first`, each [tag][u32 len][bytes]
  // in `payload` (a worker's bytes: checked). One virtual call per task,
  // not per item (see DeliverItems).
  virtual void OnResult(size_t first, uint32_t count, const char* payload,
                        size_t size) = 0;
};

// OnResult for a job of final type J: the items go to J's OnItem /
// OnFailure as direct calls. An item that overruns the payload fails with
// the rest as DataLoss.
// The payload length of the answer [tag][u32 len][bytes] at `p`, in *len;
// false when the answer overruns the `left` bytes (a worker's bytes).
inline bool AnswerLength(const char* p, size_t left, uint32_t* len) {
  if (left < 5) return false;
  std::memcpy(len, p + 1, 4);
  return *len <= left - 5;
}

template <class J>
void DeliverItems(J& job, size_t first, uint32_t count, const char* p,
                  size_t left) {
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t len = 0;
    if (!AnswerLength(p, left, &len)) {
      for (; i < count; ++i) {
        job.OnFailure(first + i, absl::DataLossError("pool: malformed result"));
      }
      return;
    }
    if (static_cast<uint8_t>(p[0]) == kItemPacked) {
      // Only jobs of a flat result type (J::kPackedSize) are sent packed
      // answers; anything else here is a malformed result.
      size_t size = 0;
      if constexpr (requires { J::kPackedSize; }) size = J::kPackedSize;
      if (size == 0 || len == 0 || len % size != 0 ||
          len / size > count - i) {
        for (; i < count; ++i) {
          job.OnFailure(first + i,
                        absl::DataLossError("pool: malformed packed result"));
        }
        return;
      }
      for (size_t k = 0; k < len / size; ++k) {
        job.OnItem(first + i + k, kItemOk, p + 5 + k * size, size);
      }
      i += static_cast<uint32_t>(len / size) - 1;
    } else {
      job.OnItem(first + i, static_cast<uint8_t>(p[0]), p + 5, len);
    }
    p += 5 + len;
    left -= 5 + len;
  }
}

// One task as the parent keeps it until it is answered.
struct TaskSpec {
  std::shared_ptr<JobBase> job;
  size_t first = 0;    // index of its first item in the job
  uint32_t count = 0;  // items
  FunctionRef invoker;
  FunctionRef fn;      // {0, 0} for a lambda
  std::string args;    // count x [u32 len][bytes], or packed (see Invoke)
  int tries = 0;       // re-runs after a worker died under it
  // A run (Map with chunksize 1): `count` items that are each a task of
  // their own -- own id, own answer, own failure -- sent together while
  // they wait, split when a worker has room for fewer.
  bool isolated = false;
  // A run's arguments: `count` x item_size bytes (packed), or framed.
  bool packed = false;
  uint32_t item_size = 0;
  // One ApplyAsync task: one item, framed arguments. Such tasks of the
  // same function bound for one worker travel as one run (Dispatch), each
  // still its own entry in the window, so their answers come back through
  // the answer area as one message instead of one each.
  bool single = false;
};

class PoolCore;  // pool.cc

// Submits `tasks` (in order). FailedPrecondition when the pool no longer
// takes work (`feeding`: an Imap iterator's refill, allowed after Close).
absl::Status Submit(PoolCore& core, std::vector<TaskSpec> tasks,
                    bool feeding = false);
// One task (ApplyAsync): no vector of its own.
absl::Status SubmitOne(PoolCore& core, TaskSpec task);
// One task whose caller waits for it (Apply): on an idle pool the caller
// runs the handler's passes itself until `done` is raised or a short spin
// ends (see "Apply's round trip"); otherwise SubmitOne.
absl::Status ApplyDirect(PoolCore& core, TaskSpec task, const FutexWord& done);
int Processes(const PoolCore& core);
bool OnHandlerThread(const PoolCore& core);
// Argument buffers of answered tasks, for the next submission to reuse
// (up to `n`): their pages are already in memory, where fresh ones cost a
// page fault each whenever the allocator has given the last call's back to
// the system (a large chunked Map: most of its time).
std::vector<std::string> SpareArgs(PoolCore& core, size_t n);
// Buffers smaller than this are not worth keeping.
inline constexpr size_t kSpareMin = 4096;
// Items in a run (TaskSpec::isolated) as submitted; Dispatch may split it.
inline constexpr size_t kRunItems = 64;
// An Imap iterator's input as the pool sees it. Join (after Close) feeds
// what is left of every registered input, on the joining thread, as
// Python's join waits for its task handler to consume every input: so
// close, join, then iterate works as it does in Python (the results wait
// in the iterator; memory is then no longer bounded by max_in_flight).
class Feeder {
 public:
  virtual ~Feeder() = default;
  // Submits every item not yet submitted, then retires the feeder.
  virtual void FeedAll() = 0;
};
// Registers an Imap input that may still submit; false when the pool no
// longer takes work. RemoveFeeder retires it (idempotent).
bool AddFeeder(PoolCore& core, std::shared_ptr<Feeder> feeder);
void RemoveFeeder(PoolCore& core, const Feeder* feeder);

// Where an Imap iterator's input goes: the pool behind it (mp::Pool, or
// another backend such as mp::mpi::Pool), as three calls and its size.
struct FeedSink {
  // Submits refill tasks (allowed after Close while the feeder is
  // registered); an error ends the iterator's feeding.
  std::function<absl::Status(std::vector<TaskSpec>)> submit;
  // Registers a feeder (false: the pool takes no more work) / retires it.
  std::function<bool(std::shared_ptr<Feeder>)> add;
  std::function<void(const Feeder*)> remove;
  int processes = 1;  // sizes the default window
  // The pool takes runs (TaskSpec::isolated): with chunksize 1, items go
  // in runs of up to 64, each still its own task. mp::Pool does; a backend
  // that does not sees one task per item.
  bool runs = false;
};

// The FeedSink of a backend's core: its Submit (feeding), AddFeeder,
// RemoveFeeder and Processes, found by argument-dependent lookup in the
// core's own namespace (pool_internal for mp::Pool, mp::mpi::internal for
// the MPI backend).
template <class Core>
FeedSink SinkOf(std::shared_ptr<Core> core, bool runs) {
  return FeedSink{
      .submit =
          [core](std::vector<TaskSpec> tasks) {
            return Submit(*core, std::move(tasks), /*feeding=*/true);
          },
      .add =
          [core](std::shared_ptr<Feeder> feeder) {
            return AddFeeder(*core, std::move(feeder));
          },
      .remove = [core](const Feeder* feeder) { RemoveFeeder(*core, feeder); },
      .processes = Processes(*core),
      .runs = runs,
  };
}

// A reference to a function pointer, cached per thread.
absl::StatusOr<FunctionRef> RefOfPointer(const void* fn);

template <class F, class... A>
absl::StatusOr<std::pair<FunctionRef, FunctionRef>> RefsOf(const F& f) {
  static const absl::StatusOr<FunctionRef> invoker =
      FunctionRef::Of(reinterpret_cast<const void*>(&Invoke<F, A...>));
  if (!invoker.ok()) return invoker.status();
  if constexpr (kIsFunctionPointer<F>) {
    absl::StatusOr<FunctionRef> fn =
        RefOfPointer(reinterpret_cast<const void*>(f));
    if (!fn.ok()) return fn.status();
    return std::make_pair(*invoker, *fn);
  } else {
    (void)f;
    return std::make_pair(*invoker, FunctionRef{});
  }
}

// Appends one item's arguments, [u32 len][bytes], to *out.
template <class... A>
void EncodeArgs(std::string* out, const A&... a) {
  const size_t mark = out->size();
  out->append(sizeof(uint32_t), '\0');
  ByteWriter w(out);
  (w.Put(a), ...);
  const uint32_t len = static_cast<uint32_t>(out->size() - mark - 4);
  std::memcpy(out->data() + mark, &len, sizeof(len));
}

// Python's automatic chunksize: ceil(n / (4 * processes)).
inline size_t AutoChunksize(size_t n, int processes) {
  if (n == 0) return 1;
  const size_t per = 4 * static_cast<size_t>(processes);
  size_t c = n / per;
  if (n % per) ++c;
  return c == 0 ? 1 : c;
}

// The shared state of an AsyncResult.
template <class T>
class ResultState : public JobBase {
 public:
  using Callback = std::function<void(const T&)>;
  using ErrorCallback = std::function<void(const absl::Status&)>;

  // The result is written once, by the handler, before done_ is raised
  // (release); readers look only after seeing it raised (acquire): no lock.
  // A waiter sleeps on done_ itself (a private futex), announced in
  // waiters_ so that Finish makes the wake-up call only when someone
  // sleeps: no mutex or condition variable made, locked or destroyed per
  // result (ApplyAsync makes one per call).
  bool Wait(Deadline deadline) {
    if (done_.load(std::memory_order_acquire) != 0) return true;
    waiters_.fetch_add(1, std::memory_order_seq_cst);
    bool ok = true;
    while (done_.load(std::memory_order_seq_cst) == 0) {
      if (FutexWait(&done_, 0, deadline, FutexScope::kPrivate) ==
              FutexResult::kTimedOut &&
          done_.load(std::memory_order_acquire) == 0) {
        ok = false;
        break;
      }
    }
    waiters_.fetch_sub(1, std::memory_order_relaxed);
    return ok;
  }
  bool Ready() { return done_.load(std::memory_order_acquire) != 0; }
  // Raised (release) once the result is in.
  const FutexWord& done_word() const { return done_; }
  absl::StatusOr<T> Get(Deadline deadline) {
    if (!Wait(deadline)) {
      return absl::DeadlineExceededError("pool: result not ready at the timeout");
    }
    if (!status_.ok()) return status_;
    return *value_;
  }
  // Get for a result nobody else can see (a synchronous Map or Apply):
  // the value is moved out, not copied.
  absl::StatusOr<T> Take() {
    (void)Wait(Deadline::Infinite());
    if (!status_.ok()) return status_;
    return std::move(*value_);
  }
  absl::StatusOr<bool> Successful() {
    if (!Ready()) {
      return absl::FailedPreconditionError("pool: result is not ready");
    }
    return status_.ok();
  }
  void SetCallbacks(Callback cb, ErrorCallback ecb) {
    callback_ = std::move(cb);
    error_callback_ = std::move(ecb);
  }

 protected:
  // Called on the handler thread once every item is in: runs the callback,
  // then makes the result ready.
  void Finish(absl::Status status, std::optional<T> value) {
    try {
      if (status.ok() && callback_) callback_(*value);
      if (!status.ok() && error_callback_) error_callback_(status);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mp::Pool: a callback threw %s: %s\n",
                   Demangle(typeid(e).name()).c_str(), e.what());
    } catch (...) {
      std::fprintf(stderr, "mp::Pool: a callback threw\n");
    }
    status_ = std::move(status);
    value_ = std::move(value);
    done_.store(1, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) != 0) {
      FutexWakeAll(&done_, FutexScope::kPrivate);
    }
  }

 private:
  FutexWord done_{0};
  std::atomic<uint32_t> waiters_{0};
  absl::Status status_;
  std::optional<T> value_;
  Callback callback_;
  ErrorCallback error_callback_;
};

// Map: n items into a vector; the first failure (by index) wins.
template <class R>
class MapState final : public ResultState<std::vector<R>> {
 public:
  static constexpr size_t kPackedSize = kFlat<R> ? sizeof(R) : 0;
  void OnResult(size_t first, uint32_t count, const char* payload,
                size_t size) override {
    if constexpr (kFlat<R>) TakeFlat(first, count, payload, size);
    DeliverItems(*this, first, count, payload, size);
  }
  explicit MapState(size_t n) : values_(n), left_(n) {}
  // An empty map is ready at once.
  void FinishIfEmpty() {
    if (left_ == 0) this->Finish(absl::OkStatus(), std::vector<R>{});
  }
  void OnItem(size_t i, uint8_t tag, const char* data, size_t n) override {
    absl::StatusOr<R> r = DecodeItem<R>(tag, data, n);
    if (r.ok()) {
      values_[i] = *std::move(r);
      Done();
    } else {
      OnFailure(i, r.status());
    }
  }
  void OnFailure(size_t i, const absl::Status& s) override {
    if (error_.ok() || i < error_index_) {
      error_ = s;
      error_index_ = i;
    }
    Done();
  }

 private:
  // Flat results: the leading run of well-formed answers copied straight
  // into place; whatever follows (an error, another length) item by item.
  void TakeFlat(size_t& first, uint32_t& count, const char*& p,
                size_t& size) {
    constexpr size_t kRec = 1 + sizeof(uint32_t) + sizeof(R);
    uint32_t i = 0;
    while (i < count && size >= 1 + sizeof(uint32_t)) {
      uint32_t len;
      std::memcpy(&len, p + 1, sizeof(len));
      const uint8_t tag = static_cast<uint8_t>(p[0]);
      if (tag == kItemPacked && len != 0 && len % sizeof(R) == 0 &&
          len / sizeof(R) <= count - i && len <= size - 5) {
        std::memcpy(static_cast<void*>(&values_[first + i]), p + 5, len);
        i += static_cast<uint32_t>(len / sizeof(R));
        p += 5 + len;
        size -= 5 + len;
        continue;
      }
      if (tag != kItemOk || len != sizeof(R) || size < kRec) break;
      std::memcpy(static_cast<void*>(&values_[first + i]), p + 5, sizeof(R));
      ++i;
      p += kRec;
      size -= kRec;
    }
    first += i;
    count -= i;
    Done(i);
  }
  void Done(size_t k = 1) {
    if (k == 0) return;
    left_ -= k;
    if (left_ != 0) return;
    if (!error_.ok()) {
      this->Finish(ForItem(error_, error_index_), std::nullopt);
    } else {
      this->Finish(absl::OkStatus(), std::move(values_));
    }
  }
  std::vector<R> values_;
  size_t left_;
  absl::Status error_;
  size_t error_index_ = 0;
};

// Apply: one item.
template <class R>
class ApplyState final : public ResultState<R> {
 public:
  static constexpr size_t kPackedSize = kFlat<R> ? sizeof(R) : 0;
  void OnResult(size_t first, uint32_t count, const char* payload,
                size_t size) override {
    DeliverItems(*this, first, count, payload, size);
  }
  void OnItem(size_t, uint8_t tag, const char* data, size_t n) override {
    absl::StatusOr<R> r = DecodeItem<R>(tag, data, n);
    if (r.ok()) {
      this->Finish(absl::OkStatus(), *std::move(r));
    } else {
      this->Finish(r.status(), std::nullopt);
    }
  }
  void OnFailure(size_t, const absl::Status& s) override {
    this->Finish(s, std::nullopt);
  }
};

// Imap: results kept until taken, by index.
template <class R>
class ImapState final : public JobBase {
 public:
  static constexpr size_t kPackedSize = kFlat<R> ? sizeof(R) : 0;
  // A message's answers go in under one lock and one wake-up.
  void OnResult(size_t first, uint32_t count, const char* payload,
                size_t size) override {
    {
      std::lock_guard<std::mutex> l(mu_);
      in_result_ = true;
      DeliverItems(*this, first, count, payload, size);
      in_result_ = false;
    }
    cv_.notify_all();
  }
  explicit ImapState(bool ordered) : ordered_(ordered) {}
  void OnItem(size_t i, uint8_t tag, const char* data, size_t n) override {
    Put(i, DecodeItem<R>(tag, data, n));
  }
  void OnFailure(size_t i, const absl::Status& s) override { Put(i, s); }

  // The next result (item `next` when ordered: the items are taken in
  // order, from 0; any when not), waiting until `deadline`. nullopt at the
  // deadline.
  std::optional<absl::StatusOr<R>> Take(size_t next, Deadline deadline) {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (ordered_) {
        if (next == base_ && !slots_.empty() && slots_.front()) {
          absl::StatusOr<R> r = std::move(*slots_.front());
          slots_.pop_front();
          ++base_;
          return r;
        }
      } else if (!ready_.empty()) {
        absl::StatusOr<R> r = std::move(ready_.front());
        ready_.pop_front();
        return r;
      }
      if (deadline.infinite()) {
        cv_.wait(l);
      } else if (cv_.wait_until(l, deadline.time_point()) ==
                     std::cv_status::timeout &&
                 (ordered_ ? slots_.empty() || !slots_.front()
                           : ready_.empty())) {
        return std::nullopt;
      }
    }
  }

 private:
  void Put(size_t i, absl::StatusOr<R> r) {
    std::unique_lock<std::mutex> l(mu_, std::defer_lock);
    if (!in_result_) l.lock();  // within OnResult the lock is held
    if (ordered_) {
      if (i < base_) return;  // taken already: cannot happen
      const size_t at = i - base_;
      if (at >= slots_.size()) slots_.resize(at + 1);
      slots_[at] = std::move(r);
    } else {
      ready_.push_back(std::move(r));
    }
    if (!in_result_) cv_.notify_all();
  }
  const bool ordered_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool in_result_ = false;  // under mu_: OnResult is delivering
  // Ordered: the answers from item base_ on, by index; unordered: in the
  // order they came.
  std::deque<std::optional<absl::StatusOr<R>>> slots_;
  size_t base_ = 0;
  std::deque<absl::StatusOr<R>> ready_;
};

// Gives a result's state the callbacks a call was passed (nullptr: none);
// State is an ApplyState<R> or a Map's state of std::vector<R>.
template <class R, class State, class CB, class ECB>
void SetCallbacks(State& state, CB callback, ECB error_callback) {
  using T = std::conditional_t<std::is_base_of_v<ResultState<R>, State>, R,
                               std::vector<R>>;
  typename ResultState<T>::Callback cb;
  typename ResultState<T>::ErrorCallback ecb;
  if constexpr (!std::is_null_pointer_v<CB>) cb = std::move(callback);
  if constexpr (!std::is_null_pointer_v<ECB>) ecb = std::move(error_callback);
  state.SetCallbacks(std::move(cb), std::move(ecb));
}

// An ApplyAsync's result state, with its callbacks, and its one task (a
// single: framed arguments) for the backend to submit; no task when the
// function has no reference (the state has failed with why).
template <class R>
struct NewApply {
  std::shared_ptr<ApplyState<R>> state;
  std::optional<TaskSpec> task;
};
template <class F, class... A, class CB, class ECB>
auto MakeApply(F f, const std::tuple<A...>& args, CB callback,
               ECB error_callback) {
  CheckCallable<F>();
  (CheckCodec<std::decay_t<A>>(), ...);
  using R = ResultOf<F, std::decay_t<A>...>;
  CheckCodec<R>();
  NewApply<R> out{std::make_shared<ApplyState<R>>(), std::nullopt};
  SetCallbacks<R>(*out.state, std::move(callback), std::move(error_callback));
  auto refs = RefsOf<F, std::decay_t<A>...>(f);
  if (!refs.ok()) {
    out.state->OnFailure(0, refs.status());
    return out;
  }
  TaskSpec& task = out.task.emplace();
  task.job = out.state;
  task.count = 1;
  task.invoker = refs->first;
  task.fn = refs->second;
  task.single = true;
  std::apply([&](const auto&... a) { EncodeArgs(&task.args, a...); }, args);
  return out;
}

}  // namespace pool_internal

// Python's AsyncResult (MapAsync, StarmapAsync, ApplyAsync).
template <class T>
class AsyncResult {
 public:
  // The value, or the task's error; DeadlineExceeded when not ready in time
  // (Python's TimeoutError). Waits for ever by default.
  absl::StatusOr<T> Get(Deadline deadline) { return s_->Get(deadline); }
  template <class Rep, class Period>
  absl::StatusOr<T> Get(std::chrono::duration<Rep, Period> timeout) {
    return Get(Deadline::After(timeout));
  }
  absl::StatusOr<T> Get(std::optional<double> timeout_seconds = std::nullopt) {
    return Get(timeout_seconds ? Deadline::AfterSeconds(*timeout_seconds)
                               : Deadline::Infinite());
  }
  // Waits until ready; true when it is.
  bool Wait(Deadline deadline) { return s_->Wait(deadline); }
  template <class Rep, class Period>
  bool Wait(std::chrono::duration<Rep, Period> timeout) {
    return Wait(Deadline::After(timeout));
  }
  bool Wait(std::optional<double> timeout_seconds = std::nullopt) {
    return Wait(timeout_seconds ? Deadline::AfterSeconds(*timeout_seconds)
                                : Deadline::Infinite());
  }
  bool Ready() const { return s_->Ready(); }
  // Whether it completed without error; FailedPrecondition before Ready()
  // (Python's ValueError).
  absl::StatusOr<bool> Successful() const { return s_->Successful(); }

 private:
  friend class Pool;
  absl::StatusOr<T> Take() { return s_->Take(); }
  friend struct pool_internal::PoolAccess;
  explicit AsyncResult(std::shared_ptr<pool_internal::ResultState<T>> s)
      : s_(std::move(s)) {}
  std::shared_ptr<pool_internal::ResultState<T>> s_;
};

// The iterator Imap / ImapUnordered return. Next() gives each result in
// turn (input order for Imap, completion order for ImapUnordered), refilling
// the pool from the input as it goes; range-for works too (each element a
// StatusOr<R>).
template <class R>
class ImapIterator {
 public:
  ImapIterator(ImapIterator&&) = default;
  ImapIterator& operator=(ImapIterator&&) = default;
  ~ImapIterator() {
    if (feed_) feed_->Release();
  }

  // The next result; DeadlineExceeded when none came in time (Python's
  // TimeoutError; the iterator is still usable), OutOfRange after the last
  // (StopIteration), or the submission's error (FailedPrecondition when the
  // pool no longer takes work, Cancelled after Terminate).
  absl::StatusOr<R> Next(Deadline deadline) {
    {
      std::lock_guard<std::mutex> l(feed_->mu);
      feed_->taken = taken_;
      feed_->RefillLocked();
      if (!feed_->error.ok() && taken_ == feed_->submitted) {
        return feed_->error;
      }
      if (taken_ == feed_->submitted) {
        feed_->ReleaseLocked();
        return absl::OutOfRangeError("pool: imap exhausted");
      }
    }
    std::optional<absl::StatusOr<R>> r = state_->Take(taken_, deadline);
    if (!r) {
      return absl::DeadlineExceededError("pool: imap result not ready at the timeout");
    }
    ++taken_;
    return *std::move(r);
  }
  template <class Rep, class Period>
  absl::StatusOr<R> Next(std::chrono::duration<Rep, Period> timeout) {
    return Next(Deadline::After(timeout));
  }
  absl::StatusOr<R> Next(std::optional<double> timeout_seconds = std::nullopt) {
    return Next(timeout_seconds ? Deadline::AfterSeconds(*timeout_seconds)
                                : Deadline::Infinite());
  }

  // Items submitted and not yet taken: never more than max_in_flight (plus
  // one chunk), unless Join fed the whole input.
  size_t in_flight() const {
    std::lock_guard<std::mutex> l(feed_->mu);
    return feed_->submitted - taken_;
  }

  // Range-for over the results (each a StatusOr<R>; the loop ends at
  // OutOfRange).
  class iterator {
   public:
    using value_type = absl::StatusOr<R>;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(ImapIterator* it) : it_(it) { ++*this; }
    value_type& operator*() { return *current_; }
    iterator& operator++() {
      current_ = it_->Next();
      if (current_->status().code() == absl::StatusCode::kOutOfRange) {
        it_ = nullptr;
      }
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const iterator& a, std::default_sentinel_t) {
      return a.it_ == nullptr;
    }

   private:
    ImapIterator* it_ = nullptr;
    std::optional<value_type> current_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() { return {}; }

 private:
  friend class Pool;
  // Encodes the next `chunk` items of the input into `*args`; how many.
  using Feed = std::function<size_t(size_t chunk, std::string* args)>;

  // The input side, shared with the pool (Join may feed it all, from
  // another thread); every field under `mu`.
  struct FeedState : pool_internal::Feeder {
    pool_internal::FeedSink sink;
    std::shared_ptr<pool_internal::ImapState<R>> state;
    Feed feed;
    pool_internal::FunctionRef invoker;
    pool_internal::FunctionRef fn;
    size_t chunksize = 1;
    size_t max_in_flight = 1;
    mutable std::mutex mu;
    size_t submitted = 0;
    size_t taken = 0;  // as the iterator last said
    bool feeding = false;
    absl::Status error;

    void FeedAll() override {
      std::lock_guard<std::mutex> l(mu);
      while (feeding) SubmitLocked(SIZE_MAX);
    }
    // Refills in batches (below half the window), so that a submission (a
    // lock and maybe a wake of the handler) carries many items.
    void RefillLocked() {
      if (!feeding || submitted - taken > max_in_flight / 2) return;
      SubmitLocked(max_in_flight - (submitted - taken));
    }
    // Submits up to `room` items (at least one chunk), in one submission.
    void SubmitLocked(size_t room) {
      std::vector<pool_internal::TaskSpec> tasks;
      size_t added = 0;
      bool ended = false;
      constexpr size_t kBatch = 4096;  // items per submission when feeding all
      const bool runs = sink.runs && chunksize == 1;
      while (added < room && added < kBatch) {
        pool_internal::TaskSpec t;
        t.isolated = runs;
        const size_t want =
            runs ? std::min(pool_internal::kRunItems, room - added) : chunksize;
        t.count = static_cast<uint32_t>(feed(want, &t.args));
        if (t.count == 0) {
          ended = true;
          break;
        }
        t.job = state;
        t.first = submitted + added;
        t.invoker = invoker;
        t.fn = fn;
        added += t.count;
        tasks.push_back(std::move(t));
      }
      // The last tasks go in before the feeder retires: a closed pool takes
      // a registered feeder's tasks only.
      if (!tasks.empty()) {
        absl::Status s = sink.submit(std::move(tasks));
        if (!s.ok()) {
          error = s;
          ReleaseLocked();
          return;
        }
        submitted += added;
      }
      if (ended) ReleaseLocked();
    }
    void Release() {
      std::lock_guard<std::mutex> l(mu);
      ReleaseLocked();
    }
    void ReleaseLocked() {
      if (!feeding) return;
      feeding = false;
      feed = nullptr;
      sink.remove(this);
    }
  };

  friend struct pool_internal::PoolAccess;
  ImapIterator(pool_internal::FeedSink sink,
               std::shared_ptr<pool_internal::ImapState<R>> state, Feed feed,
               pool_internal::FunctionRef invoker, pool_internal::FunctionRef fn,
               size_t chunksize, size_t max_in_flight)
      : feed_(std::make_shared<FeedState>()), state_(state) {
    feed_->sink = std::move(sink);
    feed_->state = std::move(state);
    feed_->feed = std::move(feed);
    feed_->invoker = invoker;
    feed_->fn = fn;
    feed_->chunksize = chunksize;
    feed_->max_in_flight = max_in_flight;
    feed_->feeding = feed_->sink.add(feed_);
    if (!feed_->feeding) {
      feed_->error =
          absl::FailedPreconditionError("pool: Pool not running (closed)");
    }
  }
  // Fails the iterator before it starts (a task reference that did not
  // resolve).
  void FailAtStart(absl::Status s) {
    std::lock_guard<std::mutex> l(feed_->mu);
    feed_->error = std::move(s);
    feed_->ReleaseLocked();
  }
  void Refill() {
    std::lock_guard<std::mutex> l(feed_->mu);
    feed_->RefillLocked();
  }

  std::shared_ptr<FeedState> feed_;
  std::shared_ptr<pool_internal::ImapState<R>> state_;
  size_t taken_ = 0;
};

class Pool {
 public:
  // A pool of worker processes, started now. InvalidArgument for options
  // out of range (named); Internal when a worker cannot be forked.
  static absl::StatusOr<Pool> Make(PoolOptions options = {});
  // As Make; throw mp::Error carrying Make's status.
  explicit Pool(PoolOptions options = {});
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  Pool(Pool&&) noexcept;
  Pool& operator=(Pool&&) noexcept;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // Terminate(), as Python's `with` block ends.
  ~Pool();

  // ---- Map / Starmap ----------------------------------------------------
  // f(item) for each item of `inputs`, results in input order; the first
  // failing item's status (message prefixed "item <i>: ") otherwise.
  // chunksize: items per task (nullopt: Python's automatic choice).
  template <class F, class Range>
  auto Map(F f, const Range& inputs,
           std::optional<size_t> chunksize = std::nullopt) {
    return MapAsync(f, inputs, chunksize).Take();
  }
  template <class F, class Range, class CB = std::nullptr_t,
            class ECB = std::nullptr_t>
  auto MapAsync(F f, const Range& inputs,
                std::optional<size_t> chunksize = std::nullopt,
                CB callback = nullptr, ECB error_callback = nullptr) {
    using A = std::decay_t<std::ranges::range_value_t<Range>>;
    return Submit<F>(f, inputs, chunksize, std::move(callback),
                     std::move(error_callback),
                     static_cast<std::tuple<A>*>(nullptr));
  }
  // f(args...) for each tuple (std::tuple / std::pair) of `inputs`.
  template <class F, class Range>
  auto Starmap(F f, const Range& inputs,
               std::optional<size_t> chunksize = std::nullopt) {
    return StarmapAsync(f, inputs, chunksize).Take();
  }
  template <class F, class Range, class CB = std::nullptr_t,
            class ECB = std::nullptr_t>
  auto StarmapAsync(F f, const Range& inputs,
                    std::optional<size_t> chunksize = std::nullopt,
                    CB callback = nullptr, ECB error_callback = nullptr) {
    using Tuple = std::decay_t<std::ranges::range_value_t<Range>>;
    return Submit<F>(f, inputs, chunksize, std::move(callback),
                     std::move(error_callback), DecayedTuple<Tuple>());
  }

  // ---- Apply ------------------------------------------------------------
  template <class F, class... A>
  auto Apply(F f, const A&... args) {
    return MakeApply(f, std::make_tuple(args...), nullptr, nullptr,
                     /*direct=*/true)
        .Take();
  }
  // callback(const R&) on success, error_callback(const absl::Status&) on
  // failure, on the handler thread, before the result is ready.
  template <class F, class... A, class CB = std::nullptr_t,
            class ECB = std::nullptr_t>
  auto ApplyAsync(F f, const std::tuple<A...>& args = {}, CB callback = nullptr,
                  ECB error_callback = nullptr) {
    return MakeApply(f, args, std::move(callback), std::move(error_callback),
                     /*direct=*/false);
  }

  // ---- Imap -------------------------------------------------------------
  // Results one at a time, in input order (Imap) or as they complete
  // (ImapUnordered). `inputs` is any input range, endless ones included; an
  // lvalue is referred to (it must outlive the iterator), an rvalue moved in.
  template <class F, class Range>
  auto Imap(F f, Range&& inputs, ImapOptions options = {}) {
    return MakeImap<F>(f, std::forward<Range>(inputs), options, true);
  }
  template <class F, class Range>
  auto ImapUnordered(F f, Range&& inputs, ImapOptions options = {}) {
    return MakeImap<F>(f, std::forward<Range>(inputs), options, false);
  }
  // ---- Lifetime ---------------------------------------------------------
  // No more calls; workers exit when the work submitted is done.
  void Close();
  // Kills the workers now (SIGKILL), reaps them, fails unfinished tasks
  // with Cancelled. Idempotent. FailedPrecondition from a callback.
  absl::Status Terminate();
  // Waits for the workers to exit. FailedPrecondition before Close or
  // Terminate (Python's ValueError "Pool is still running"), or from a
  // callback; DeadlineExceeded at the deadline.
  absl::Status Join(Deadline deadline);
  template <class Rep, class Period>
  absl::Status Join(std::chrono::duration<Rep, Period> timeout) {
    return Join(Deadline::After(timeout));
  }
  absl::Status Join(std::optional<double> timeout_seconds = std::nullopt) {
    return Join(timeout_seconds ? Deadline::AfterSeconds(*timeout_seconds)
                                : Deadline::Infinite());
  }

  // ---- Introspection ----------------------------------------------------
  int processes() const;
  // Workers started so far (replacements included).
  int workers_started() const;
  // The pids of the workers alive now (racy: a snapshot).
  std::vector<pid_t> worker_pids() const;

 private:
  // ApplyAsync, or Apply (`direct`: the caller waits, see ApplyDirect).
  template <class F, class... A, class CB, class ECB>
  auto MakeApply(F f, const std::tuple<A...>& args, CB callback,
                 ECB error_callback, bool direct) {
    auto [state, task] = pool_internal::MakeApply(
        f, args, std::move(callback), std::move(error_callback));
    if (task) {
      absl::Status s =
          direct ? pool_internal::ApplyDirect(*core(), *std::move(task),
                                              state->done_word())
                 : pool_internal::SubmitOne(*core(), *std::move(task));
      if (!s.ok()) state->OnFailure(0, s);
    }
    using R = pool_internal::ResultOf<F, std::decay_t<A>...>;
    return AsyncResult<R>(std::move(state));
  }


  friend struct pool_internal::PoolAccess;
  explicit Pool(std::shared_ptr<pool_internal::PoolCore> core);
  pool_internal::PoolCore* core() const { return core_.get(); }

  template <class Tuple>
  static auto DecayedTuple() {
    return []<size_t... I>(std::index_sequence<I...>) {
      return static_cast<std::tuple<std::decay_t<std::tuple_element_t<I, Tuple>>...>*>(
          nullptr);
    }(std::make_index_sequence<std::tuple_size_v<Tuple>>{});
  }

  // Encodes item `v` (a value, or a tuple for Starmap) as one item's args.
  template <class... A, class V>
  static void EncodeItem(std::string* out, const V& v, std::tuple<A...>*) {
    if constexpr (sizeof...(A) == 1 &&
                  std::is_same_v<std::decay_t<V>, std::tuple_element_t<0, std::tuple<A...>>>) {
      pool_internal::EncodeArgs(out, v);
    } else {
      std::apply([&](const auto&... a) { pool_internal::EncodeArgs(out, a...); },
                 v);
    }
  }

  template <class F, class Range, class CB, class ECB, class... A>
  auto Submit(F f, const Range& inputs, std::optional<size_t> chunksize,
              CB callback, ECB error_callback, std::tuple<A...>* tag) {
    pool_internal::CheckCallable<F>();
    (pool_internal::CheckCodec<A>(), ...);
    using R = pool_internal::ResultOf<F, A...>;
    pool_internal::CheckCodec<R>();
    const size_t n = static_cast<size_t>(std::ranges::distance(inputs));
    auto state = std::make_shared<pool_internal::MapState<R>>(n);
    pool_internal::SetCallbacks<R>(*state, std::move(callback),
                                   std::move(error_callback));
    AsyncResult<std::vector<R>> result(state);
    if (n == 0) {
      state->FinishIfEmpty();
      return result;
    }
    auto refs = pool_internal::RefsOf<F, A...>(f);
    if (!refs.ok()) {
      for (size_t i = 0; i < n; ++i) state->OnFailure(i, refs.status());
      return result;
    }
    const size_t chunk = chunksize && *chunksize > 0
                             ? *chunksize
                             : pool_internal::AutoChunksize(
                                   n, pool_internal::Processes(*core()));
    // Chunksize 1: each item is a task of its own, but they wait and travel
    // as runs of kRunItems (see TaskSpec::isolated); `per` items per spec.
    const bool runs = chunk == 1;
    const size_t per = runs ? pool_internal::kRunItems : chunk;
    // Tasks go to the pool in blocks as they are encoded, so the workers
    // start on the first while the caller encodes the rest.
    const size_t chunks = (n + per - 1) / per;
    const size_t block = std::min(chunks, kSubmitBlock);
    std::vector<pool_internal::TaskSpec> tasks;
    tasks.reserve(block);
    size_t block_first = 0;  // item index of the block's first task
    std::vector<std::string> spare;
    // Flat arguments: each chunk's bytes sized once, written in place;
    // packed (no per-item length) when the result is flat too.
    constexpr bool kFlatArgs = (pool_internal::kFlat<A> && ...);
    constexpr bool kPacked = pool_internal::kPackable<F, A...>;
    constexpr uint32_t kIn = (uint32_t{0} + ... + sizeof(A));
    constexpr size_t kItemBytes = (kPacked ? 0 : sizeof(uint32_t)) + kIn;
    size_t block_bytes = 0;
    auto it = std::ranges::begin(inputs);
    for (size_t i = 0; i < n;) {
      if (tasks.size() == block || block_bytes >= kSubmitBytes) {
        absl::Status s = pool_internal::Submit(*core(), std::move(tasks));
        if (!s.ok()) {  // closed or terminated meanwhile: the rest fail
          for (size_t j = block_first; j < n; ++j) state->OnFailure(j, s);
          return result;
        }
        tasks = {};
        tasks.reserve(std::min(block, chunks - i / per));
        block_first = i;
        block_bytes = 0;
      }
      const size_t m = std::min(per, n - i);  // this spec's items
      pool_internal::TaskSpec& t = tasks.emplace_back();
      t.job = state;
      t.first = i;
      t.count = static_cast<uint32_t>(m);
      t.invoker = refs->first;
      t.fn = refs->second;
      t.isolated = runs;
      t.packed = runs && kPacked;
      t.item_size = runs && kPacked ? kIn : 0;
      if constexpr (kFlatArgs) {
        const size_t bytes = m * kItemBytes;
        block_bytes += bytes;
        if (bytes > pool_internal::kSpareMin) {
          if (spare.empty()) {
            spare = pool_internal::SpareArgs(*core(), chunks - i / per);
          }
          if (!spare.empty()) {
            t.args = std::move(spare.back());
            spare.pop_back();
          }
        }
        t.args.resize(bytes);
        char* w = t.args.data();
        for (size_t k = 0; k < m; ++k, ++it) {
          if constexpr (!kPacked) {
            std::memcpy(w, &kIn, sizeof(kIn));
            w += sizeof(kIn);
          }
          w = pool_internal::WriteFlatArgs(w, std::tuple<A...>(*it),
                                           std::index_sequence_for<A...>{});
        }
      } else {
        for (size_t k = 0; k < m; ++k, ++it) EncodeItem(&t.args, *it, tag);
      }
      i += m;
    }
    absl::Status s = pool_internal::Submit(*core(), std::move(tasks));
    if (!s.ok()) {
      for (size_t j = block_first; j < n; ++j) state->OnFailure(j, s);
    }
    return result;
  }
  // A Map's tasks go to the pool in blocks of at most this many tasks, or
  // once a block's arguments reach kSubmitBytes.
  static constexpr size_t kSubmitBlock = 1024;
  static constexpr size_t kSubmitBytes = size_t{64} << 10;

  template <class F, class Range>
  auto MakeImap(F f, Range&& inputs, const ImapOptions& options, bool ordered);

  std::shared_ptr<pool_internal::PoolCore> core_;
};

namespace pool_internal {
// For backends layered on Pool (the MPI backend, mp/pool/mpi): submit tasks
// already encoded (TaskSpec, as the templates above build them) to a local
// pool, and wrap a result state into an AsyncResult.
struct PoolAccess {
  static absl::Status Submit(Pool& pool, std::vector<TaskSpec> tasks,
                             bool feeding = false) {
    return pool_internal::Submit(*pool.core_, std::move(tasks), feeding);
  }
  // Imap / ImapUnordered over `sink`'s pool: the input is read lazily, at
  // most options.max_in_flight items ahead of the reader (0: 4 x processes x
  // chunksize); the first window is submitted now, as Python's imap starts
  // at once.
  template <class F, class Range>
  static auto MakeImap(FeedSink sink, F f, Range&& inputs,
                       const ImapOptions& options, bool ordered) {
    using A = std::decay_t<std::ranges::range_value_t<Range>>;
    CheckCallable<F>();
    CheckCodec<A>();
    using R = ResultOf<F, A>;
    CheckCodec<R>();
    auto state = std::make_shared<ImapState<R>>(ordered);
    auto refs = RefsOf<F, A>(f);
    const size_t chunk = options.chunksize == 0 ? 1 : options.chunksize;
    const size_t window =
        options.max_in_flight != 0
            ? options.max_in_flight
            : 256 * static_cast<size_t>(std::max(sink.processes, 1)) * chunk;
    // The view lives in the feeder; an lvalue range by reference.
    auto view = std::views::all(std::forward<Range>(inputs));
    using View = decltype(view);
    struct Cursor {
      View view;
      std::ranges::iterator_t<View> it;
      bool started = false;
    };
    auto cursor = std::make_shared<Cursor>(Cursor{std::move(view), {}, false});
    typename ImapIterator<R>::Feed feed =
        [cursor](size_t chunk_items, std::string* args) -> size_t {
      if (!cursor->started) {
        cursor->it = std::ranges::begin(cursor->view);
        cursor->started = true;
      }
      size_t k = 0;
      while (k < chunk_items && cursor->it != std::ranges::end(cursor->view)) {
        EncodeArgs(args, static_cast<const A&>(*cursor->it));
        ++cursor->it;
        ++k;
      }
      return k;
    };
    ImapIterator<R> it(std::move(sink), state, std::move(feed),
                       refs.ok() ? refs->first : FunctionRef{},
                       refs.ok() ? refs->second : FunctionRef{}, chunk,
                       std::max(window, chunk));
    if (!refs.ok()) it.FailAtStart(refs.status());
    it.Refill();
    return it;
  }
  template <class T>
  static AsyncResult<T> Result(std::shared_ptr<ResultState<T>> state) {
    return AsyncResult<T>(std::move(state));
  }
};
}  // namespace pool_internal

template <class F, class Range>
auto Pool::MakeImap(F f, Range&& inputs, const ImapOptions& options,
                    bool ordered) {
  return pool_internal::PoolAccess::MakeImap(
      pool_internal::SinkOf(core_, /*runs=*/true), f,
      std::forward<Range>(inputs), options, ordered);
}

}  // namespace mp

#endif  // MP_POOL_POOL_H_
