// mp/pool/mpi/pool.h
// -----------------------------------------------------------------------------
// mp::mpi::Pool: the same Pool (mp/pool/pool.h) over MPI, across hosts.
//
//   int main(int argc, char** argv) {
//     if (absl::Status s = mp::mpi::Init(argc, argv); !s.ok()) {  // rank 0 returns
//       std::cerr << s.message() << "\n";
//       return 2;
//     }
//     mp::mpi::Pool pool({.processes = 4});      // was: mp::Pool pool(...)
//     absl::StatusOr<std::vector<int>> out = pool.Map(do_calculation, inputs);
//   }
//
//   $ mpirun -n 3 ./prog                         # rank 0 + 2 serving ranks
//   $ mpirun --enable-recovery -n 3 ./prog       # survive a dead rank (below)
//
// Design
// ======
// Ranks. Init (one call early in main) starts MPI. Rank 0 returns and runs
// the user's program; every other rank never returns: it serves pools until
// rank 0's program exits (an atexit handler on rank 0 tells them), then
// leaves through MPI_Finalize and exit(0). Rank 0 only dispatches.
//
// Hierarchy. A serving rank runs the tasks it gets in a local mp::Pool of
// forked workers (shared memory, the one-host pool with all its crash
// handling), so one rank per host uses the host's cores, and MPI carries
// batches: one message holds every task sent to a rank in one dispatcher
// pass, one message every result a rank has ready. PoolOptions::processes is
// the local pool's size on each serving rank (nullopt: cpu_count() divided by
// the serving ranks on that host, at least 1), so `mpirun -n 3` on one
// 2-core host gives 2 ranks x 1 worker, and one rank per host gives each host
// all its cores. One rank per core works too (processes = 1).
//
// Tasks travel as on one host (pool.h, "Tasks"): the trampoline's and the
// function's FunctionRef (build id + offset) plus the arguments' Codec bytes.
// The serving rank resolves both references before it queues the task: a
// rank running another build (or another program) answers every item with
// NotFound "rank R on host H: ... (not the same build as rank 0?)".
//
// Scheduling. Rank 0's dispatcher thread (the only thread that calls MPI
// after Init) keeps a queue of tasks (chunks) and sends them to the ranks
// with free room: each rank has at most MpiOptions::chunks_in_flight chunks
// sent and not answered (default 16 x its local workers), so a slow rank
// gets less (dynamic, not a static split). Results are matched by task id;
// Map and Imap put them back in input order. Sends are non-blocking
// (MPI_Isend) on both sides, so big batches never deadlock.
//
// Failures.
//   - A task that throws fails alone (Unknown "type: what"), as on one host.
//   - A local worker that dies: the local pool fails exactly its task
//     (Aborted, naming the worker, prefixed "rank R on host H: ") and starts
//     a replacement; the rank goes on.
//   - A rank that dies: its chunks in flight fail with Aborted "rank R on
//     host H (pid P) died ..." (or are re-run elsewhere while
//     PoolOptions::task_retries allows), the rank leaves the rotation and the
//     pool goes on with the others; with none left, the waiting tasks fail
//     with Unavailable. Death is seen two ways: a rank whose pid rank 0 can
//     see (same boot id and pid namespace, exchanged at Init) is checked by
//     pid (exact); any rank silent for MpiOptions::rank_timeout is taken as
//     dead (serving ranks send a heartbeat every 100 ms while a pool is
//     open).
//   What OpenMPI 4.1 (no ULFM) survives: the communicator uses
//   MPI_ERRORS_RETURN, but by default mpirun ends the WHOLE job when a rank
//   dies (rank 0 included: "mpirun noticed that process rank 1 ... exited on
//   signal 9"): nothing survives. With `mpirun --enable-recovery`, the other
//   ranks live on; OpenMPI reports no error for a send to the dead rank
//   (small sends complete locally), hence the pid / heartbeat detection
//   above. MPI_Finalize, though, fences every rank, the dead one too, and
//   then hangs now and then (seen 1 run in 8 here): so once a rank was
//   taken for dead, rank 0 tells the others to leave with _exit and itself
//   ends with _exit(status) at exit, skipping MPI_Finalize (mpirun may then
//   print that a process exited without finalizing). Not survived, with any
//   option:
//   the death of rank 0 (mpirun ends the job), a rank that hangs while still
//   sending heartbeats (its tasks wait: use Get's timeout), and a rank whose
//   network is cut but stays alive (it is declared dead after rank_timeout;
//   results it sends later are dropped).
//
// Without mpirun (no OMPI_COMM_WORLD_SIZE in the environment) Init returns
// FailedPrecondition saying how to start the program, unless
// InitOptions::allow_without_mpirun: then MPI is not started and every
// mpi::Pool is a one-host mp::Pool. The same happens under `mpirun -n 1`.
//
// Limits. One mpi::Pool at a time: a second Make before the first was
// joined, terminated or destroyed is FailedPrecondition. The initializer must be a plain function (it travels
// as a FunctionRef): a captured std::function is InvalidArgument. Every host
// runs the same binary on the same architecture (the build-id check).
//
// Threads: every Pool method may be called from any thread of rank 0's
// program. Callbacks run on the dispatcher thread, one at a time.

#ifndef MP_POOL_MPI_POOL_H_
#define MP_POOL_MPI_POOL_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/futex.h"
#include "mp/pool/pool.h"

namespace mp::mpi {

struct InitOptions {
  // Without mpirun: false: Init returns FailedPrecondition with the command
  // to use; true: Init returns OK and pools run on this host only.
  bool allow_without_mpirun = false;
};

// Starts MPI (MPI_THREAD_SERIALIZED). On rank 0 (or without mpirun, when
// allowed): returns OK. On every other rank: serves pools and never returns
// (exits 0 through MPI_Finalize when rank 0's program exits). Call it once,
// early in main, before any thread or Pool is started.
absl::Status Init(int& argc, char**& argv, InitOptions options = {});

// Whether Init started MPI (false: one-host fallback, or Init not called).
bool Running();

// A serving rank, as rank 0 sees it.
struct RankInfo {
  int rank = 0;
  std::string host;
  pid_t pid = 0;
};
// The serving ranks (every rank but 0) as Init found them.
std::vector<RankInfo> ServingRanks();

// What the MPI backend adds to PoolOptions.
struct MpiOptions {
  // Chunks sent to one rank and not yet answered; 0: 16 x its local workers
  // (the local pool's window per worker).
  int chunks_in_flight = 0;
  // A serving rank not heard from for this long is taken as dead.
  std::chrono::milliseconds rank_timeout{10000};
  // Use only the first max_ranks serving ranks (ranks 1..max_ranks); 0: all.
  int max_ranks = 0;
};

// The iterator of Imap / ImapUnordered: mp::Pool's (pool.h), fed to the
// MPI pool.
template <class R>
using ImapIterator = mp::ImapIterator<R>;
class Pool;

namespace internal {
class Core;  // pool.cc
absl::Status Submit(Core& core, std::vector<pool_internal::TaskSpec> tasks,
                    bool feeding = false);
int Processes(const Core& core);
// An Imap input that may still submit (see pool_internal::Feeder): Join
// feeds what is left of it. AddFeeder: false when the pool takes no more
// work.
bool AddFeeder(Core& core, std::shared_ptr<pool_internal::Feeder> feeder);
void RemoveFeeder(Core& core, const pool_internal::Feeder* feeder);
// For tests: a pool's core, to submit hand-made TaskSpecs through Submit.
Core& CoreOf(Pool& pool);
}  // namespace internal

class Pool {
 public:
  // A pool over the serving ranks (see the header comment), open on each
  // of them when this returns. InvalidArgument for options out of range or
  // a non-plain initializer; FailedPrecondition when another mpi::Pool is
  // open; Unavailable when a rank could not start its local pool (named).
  static absl::StatusOr<Pool> Make(PoolOptions options = {},
                                   MpiOptions mpi = {});
  // As Make; throws mp::Error carrying Make's status.
  explicit Pool(PoolOptions options = {}, MpiOptions mpi = {});
  explicit Pool(int processes) : Pool(PoolOptions{.processes = processes}) {}
  Pool(Pool&&) noexcept;
  Pool& operator=(Pool&&) noexcept;
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;
  // Terminate(), as Python's `with` block ends.
  ~Pool();

  // ---- Map / Starmap / Apply: as mp::Pool ---------------------------------
  template <class F, class Range>
  auto Map(F f, const Range& inputs,
           std::optional<size_t> chunksize = std::nullopt) {
    return MapAsync(f, inputs, chunksize).Get();
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
  template <class F, class Range>
  auto Starmap(F f, const Range& inputs,
               std::optional<size_t> chunksize = std::nullopt) {
    return StarmapAsync(f, inputs, chunksize).Get();
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
  template <class F, class... A>
  auto Apply(F f, const A&... args) {
    return ApplyAsync(f, std::make_tuple(args...)).Get();
  }
  template <class F, class... A, class CB = std::nullptr_t,
            class ECB = std::nullptr_t>
  auto ApplyAsync(F f, const std::tuple<A...>& args = {}, CB callback = nullptr,
                  ECB error_callback = nullptr) {
    auto [state, task] = pool_internal::MakeApply(
        f, args, std::move(callback), std::move(error_callback));
    using R = pool_internal::ResultOf<F, std::decay_t<A>...>;
    auto result = pool_internal::PoolAccess::Result<R>(state);
    if (!task) return result;
    std::vector<pool_internal::TaskSpec> tasks;
    tasks.push_back(*std::move(task));
    absl::Status s = internal::Submit(*core_, std::move(tasks));
    if (!s.ok()) state->OnFailure(0, s);
    return result;
  }

  // ---- Imap: as mp::Pool --------------------------------------------------
  template <class F, class Range>
  auto Imap(F f, Range&& inputs, ImapOptions options = {}) {
    return MakeImap<F>(f, std::forward<Range>(inputs), options, true);
  }
  template <class F, class Range>
  auto ImapUnordered(F f, Range&& inputs, ImapOptions options = {}) {
    return MakeImap<F>(f, std::forward<Range>(inputs), options, false);
  }

  // ---- Lifetime: as mp::Pool ----------------------------------------------
  // No more calls; the ranks close their local pools once the work
  // submitted is done.
  void Close();
  // Fails unfinished tasks with Cancelled and has every rank terminate its
  // local pool (SIGKILL). Idempotent. FailedPrecondition from a callback.
  absl::Status Terminate();
  // Waits until every rank has closed its local pool. FailedPrecondition
  // before Close / Terminate or from a callback; DeadlineExceeded at the
  // deadline. As mp::Pool's Join, it first submits what is left of every
  // open Imap input (Python's join does not wait for its iterators to be
  // read); the results wait in the iterators.
  absl::Status Join(Deadline deadline);
  template <class Rep, class Period>
  absl::Status Join(std::chrono::duration<Rep, Period> timeout) {
    return Join(Deadline::After(timeout));
  }
  absl::Status Join(std::optional<double> timeout_seconds = std::nullopt) {
    return Join(timeout_seconds ? Deadline::AfterSeconds(*timeout_seconds)
                                : Deadline::Infinite());
  }

  // ---- Introspection --------------------------------------------------------
  // Workers over all ranks alive at the start (the local pools' sizes summed).
  int processes() const;
  // Serving ranks still in the rotation (0 in the one-host fallback).
  int live_ranks() const;

 private:
  friend internal::Core& internal::CoreOf(Pool& pool);
  explicit Pool(std::shared_ptr<internal::Core> core);

  template <class Tuple>
  static auto DecayedTuple() {
    return []<size_t... I>(std::index_sequence<I...>) {
      return static_cast<std::tuple<std::decay_t<std::tuple_element_t<I, Tuple>>...>*>(
          nullptr);
    }(std::make_index_sequence<std::tuple_size_v<Tuple>>{});
  }

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
    auto result = pool_internal::PoolAccess::Result<std::vector<R>>(state);
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
                                   n, internal::Processes(*core_));
    std::vector<pool_internal::TaskSpec> tasks;
    tasks.reserve((n + chunk - 1) / chunk);
    size_t i = 0;
    for (const auto& v : inputs) {
      if (i % chunk == 0) {
        tasks.emplace_back();
        tasks.back().job = state;
        tasks.back().first = i;
        tasks.back().invoker = refs->first;
        tasks.back().fn = refs->second;
      }
      EncodeItem(&tasks.back().args, v, tag);
      ++tasks.back().count;
      ++i;
    }
    absl::Status s = internal::Submit(*core_, std::move(tasks));
    if (!s.ok()) {
      for (size_t j = 0; j < n; ++j) state->OnFailure(j, s);
    }
    return result;
  }

  template <class F, class Range>
  auto MakeImap(F f, Range&& inputs, const ImapOptions& options, bool ordered);

  std::shared_ptr<internal::Core> core_;
};

template <class F, class Range>
auto Pool::MakeImap(F f, Range&& inputs, const ImapOptions& options,
                    bool ordered) {
  // One task per item: the ranks' protocol has no runs.
  return pool_internal::PoolAccess::MakeImap(
      pool_internal::SinkOf(core_, /*runs=*/false), f,
      std::forward<Range>(inputs), options, ordered);
}

}  // namespace mp::mpi

#endif  // MP_POOL_MPI_POOL_H_
