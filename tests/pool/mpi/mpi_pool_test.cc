// Tests for mp::mpi::Pool, run under mpirun by mpi_pool_test.sh (3 ranks:
// rank 0 runs these tests, ranks 1 and 2 serve): every call, ordering,
// exceptions, callbacks, Imap's window, a local worker killed, a rank killed
// and then a rank stopped (last: they leave fewer serving ranks). Rank 0 prints "MPI_POOL_TEST rc=<n>"
// for the script.
#include "mp/pool/mpi/pool.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <ranges>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace {

int Twice(int x) { return x * 2; }
int Add(int a, int b) { return a + b; }
std::string Repeat(std::string s, int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += s;
  return out;
}
int Throws(int x) {
  if (x == 3) throw std::runtime_error("three is bad");
  return x;
}
// The serving rank that ran the task: a local worker's parent.
int RankPid(int) { return static_cast<int>(getppid()); }
int KillWorkerAtThree(int x) {
  if (x == 3) raise(SIGKILL);
  return x;
}
// Kills the serving rank that runs it (the local worker's parent), then
// waits to be killed with it (PR_SET_PDEATHSIG).
int KillMyRank(int) {
  kill(getppid(), SIGKILL);
  for (;;) pause();
}
// Stops the serving rank that runs it (SIGSTOP): it lives on but goes silent.
int StopMyRank(int) {
  kill(getppid(), SIGSTOP);
  return 1;
}
int Sleepy(int x) {
  std::this_thread::sleep_for(std::chrono::milliseconds(x));
  return x;
}
int g_initialized = 0;
void Init() { g_initialized = 1; }
int Initialized(int) { return g_initialized; }

std::vector<int> Iota(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

TEST(MpiPoolTest, ThreeRanks) {
  ASSERT_TRUE(mp::mpi::Running());
  ASSERT_EQ(mp::mpi::ServingRanks().size(), 2u);
}

TEST(MpiPoolTest, MapInOrderWithEveryChunksizeOnEveryRank) {
  mp::mpi::Pool pool(1);
  EXPECT_EQ(pool.processes(), 2);
  EXPECT_EQ(pool.live_ranks(), 2);
  const std::vector<int> in = Iota(1000);
  for (std::optional<size_t> chunk :
       {std::optional<size_t>(1), std::optional<size_t>(7),
        std::optional<size_t>(5000), std::optional<size_t>()}) {
    absl::StatusOr<std::vector<int>> out = pool.Map(Twice, in, chunk);
    ASSERT_TRUE(out.ok()) << out.status();
    ASSERT_EQ(out->size(), in.size());
    for (size_t i = 0; i < in.size(); ++i) ASSERT_EQ((*out)[i], 2 * in[i]);
  }
  // Both serving ranks took work (the first dispatch fills each rank's
  // window: 4 chunks of 1 item each).
  absl::StatusOr<std::vector<int>> pids = pool.Map(RankPid, Iota(100), 1);
  ASSERT_TRUE(pids.ok()) << pids.status();
  std::set<int> seen(pids->begin(), pids->end());
  std::set<int> serving;
  for (const mp::mpi::RankInfo& r : mp::mpi::ServingRanks()) serving.insert(r.pid);
  EXPECT_EQ(seen, serving);
  pool.Close();
  EXPECT_TRUE(pool.Join().ok());
}

TEST(MpiPoolTest, EmptyMapStarmapApplyLambdasStrings) {
  mp::mpi::Pool pool(1);
  EXPECT_TRUE(pool.Map(Twice, std::vector<int>{})->empty());
  std::vector<std::pair<int, int>> pairs{{1, 2}, {3, 4}, {5, 6}};
  EXPECT_EQ(*pool.Starmap(Add, pairs), (std::vector<int>{3, 7, 11}));
  EXPECT_EQ(*pool.Apply(Repeat, std::string("ab"), 3), "ababab");
  EXPECT_EQ(*pool.Map([](int x) { return x + 1; }, std::vector<int>{1, 2}),
            (std::vector<int>{2, 3}));
  // Big arguments and results (one MPI message each way).
  const std::string big(1 << 20, 'x');
  absl::StatusOr<std::string> r = pool.Apply(Repeat, big, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 3u << 20);
}

TEST(MpiPoolTest, ApplyAsyncCallbacksAndAsyncResult) {
  mp::mpi::Pool pool(1);
  std::atomic<int> got{0};
  std::atomic<int> errors{0};
  auto ok = pool.ApplyAsync(Twice, std::make_tuple(21),
                            [&](const int& v) { got = v; },
                            [&](const absl::Status&) { ++errors; });
  ASSERT_TRUE(ok.Wait());
  EXPECT_EQ(got.load(), 42);  // the callback ran before ready
  EXPECT_TRUE(*ok.Successful());
  EXPECT_EQ(*ok.Get(), 42);
  auto bad = pool.ApplyAsync(Throws, std::make_tuple(3), nullptr,
                             [&](const absl::Status&) { ++errors; });
  EXPECT_EQ(bad.Get().status().code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(errors.load(), 1);
  EXPECT_FALSE(*bad.Successful());
  auto slow = pool.ApplyAsync(Sleepy, std::make_tuple(60000));
  EXPECT_EQ(slow.Successful().status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(slow.Get(std::chrono::milliseconds(1)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(pool.Terminate().ok());
  EXPECT_EQ(slow.Get().status().code(), absl::StatusCode::kCancelled);
}

TEST(MpiPoolTest, ExceptionsFailAlone) {
  mp::mpi::Pool pool(1);
  absl::StatusOr<std::vector<int>> out = pool.Map(Throws, Iota(10), 1);
  ASSERT_EQ(out.status().code(), absl::StatusCode::kUnknown);
  EXPECT_NE(out.status().message().find("item 3: std::runtime_error: three is bad"),
            absl::string_view::npos)
      << out.status();
  EXPECT_EQ(mp::PoolExceptionType(out.status()), "std::runtime_error");
  auto it = pool.Imap(Throws, Iota(6));
  int i = 0;
  for (const absl::StatusOr<int>& r : it) {
    if (i == 3) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kUnknown);
    } else {
      EXPECT_EQ(*r, i);
    }
    ++i;
  }
  EXPECT_EQ(i, 6);
}

TEST(MpiPoolTest, ImapOrderedUnorderedAndBounded) {
  mp::mpi::Pool pool(1);
  std::vector<int> got;
  for (const absl::StatusOr<int>& r : pool.Imap(Twice, Iota(200), {.chunksize = 3})) {
    got.push_back(*r);
  }
  ASSERT_EQ(got.size(), 200u);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(got[static_cast<size_t>(i)], 2 * i);
  std::multiset<int> un;
  for (const absl::StatusOr<int>& r : pool.ImapUnordered(Twice, Iota(200))) {
    un.insert(*r);
  }
  std::multiset<int> want;
  for (int i = 0; i < 200; ++i) want.insert(2 * i);
  EXPECT_EQ(un, want);
  // An endless input: never more than max_in_flight (+1 chunk) out.
  auto endless = pool.Imap(Twice, std::views::iota(0), {.max_in_flight = 16});
  for (int k = 0; k < 500; ++k) {
    absl::StatusOr<int> r = endless.Next();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(*r, 2 * k);
    ASSERT_LE(endless.in_flight(), 17u);
  }
}

// As with mp::Pool (and Python): close, join, then read an imap iterator.
// Join feeds what is left of the input; the results wait in the iterator.
TEST(MpiPoolTest, JoinBeforeImapIsReadFeedsTheRestOfTheInput) {
  mp::mpi::Pool pool(1);
  auto it = pool.Imap(Twice, Iota(300), {.chunksize = 4, .max_in_flight = 16});
  EXPECT_LE(it.in_flight(), 16u + 4u);
  pool.Close();
  ASSERT_TRUE(pool.Join().ok());
  EXPECT_EQ(it.in_flight(), 300u);
  for (int i = 0; i < 300; ++i) {
    absl::StatusOr<int> r = it.Next();
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(*r, 2 * i);
  }
  EXPECT_EQ(it.Next().status().code(), absl::StatusCode::kOutOfRange);
}

TEST(MpiPoolTest, InitializerAndBadOptions) {
  {
    mp::mpi::Pool pool({.processes = 1, .initializer = Init});
    EXPECT_EQ(*pool.Map(Initialized, Iota(8), 1), std::vector<int>(8, 1));
    // One pool at a time.
    EXPECT_EQ(mp::mpi::Pool::Make().status().code(),
              absl::StatusCode::kFailedPrecondition);
  }
  int captured = 1;
  mp::PoolOptions o;
  o.initializer = [captured] { (void)captured; };
  EXPECT_EQ(mp::mpi::Pool::Make(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mp::mpi::Pool::Make({.processes = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mp::mpi::Pool::Make({.maxtasksperchild = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MpiPoolTest, CloseJoinTerminate) {
  mp::mpi::Pool pool(1);
  EXPECT_EQ(pool.Join().code(), absl::StatusCode::kFailedPrecondition);
  auto pending = pool.MapAsync(Twice, Iota(50));
  pool.Close();
  EXPECT_EQ(pool.Map(Twice, Iota(3)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(pool.Join().ok());
  ASSERT_TRUE(pending.Ready());  // Close let the submitted work finish
  EXPECT_EQ(pending.Get()->size(), 50u);
  EXPECT_TRUE(pool.Terminate().ok());
  // Joined: the next pool may open while this one still exists.
  absl::StatusOr<mp::mpi::Pool> next = mp::mpi::Pool::Make({.processes = 1});
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next->Apply(Twice, 2), 4);
}

TEST(MpiPoolTest, LocalWorkerKilledFailsThatTaskOnly) {
  mp::mpi::Pool pool(1);
  absl::StatusOr<std::vector<int>> out = pool.Map(KillWorkerAtThree, Iota(10), 1);
  ASSERT_EQ(out.status().code(), absl::StatusCode::kAborted) << out.status();
  EXPECT_NE(out.status().message().find("item 3: rank "), absl::string_view::npos)
      << out.status();
  EXPECT_NE(out.status().message().find("signal 9"), absl::string_view::npos)
      << out.status();
  auto it = pool.Imap(KillWorkerAtThree, Iota(10));
  int failed = 0, i = 0;
  for (const absl::StatusOr<int>& r : it) {
    if (!r.ok()) {
      ++failed;
      EXPECT_EQ(i, 3);
    } else {
      EXPECT_EQ(*r, i);
    }
    ++i;
  }
  EXPECT_EQ(failed, 1);
  // The local pool replaced the worker; both ranks still serve.
  EXPECT_EQ(*pool.Map(Twice, Iota(20)), *pool.Map(Twice, Iota(20)));
  EXPECT_EQ(pool.live_ranks(), 2);
}

TEST(MpiPoolTest, AFunctionOfAnotherBuildIsAClearError) {
  mp::mpi::Pool pool(1);
  auto state = std::make_shared<mp::pool_internal::ApplyState<int>>();
  auto result = mp::pool_internal::PoolAccess::Result<int>(state);
  auto refs = mp::pool_internal::RefsOf<int (*)(int), int>(&Twice);
  ASSERT_TRUE(refs.ok()) << refs.status();
  std::vector<mp::pool_internal::TaskSpec> tasks(1);
  tasks[0].job = state;
  tasks[0].count = 1;
  tasks[0].invoker = refs->first;
  tasks[0].fn = refs->second;
  tasks[0].fn.object ^= 0x100;  // another build id (still a build id)
  mp::pool_internal::EncodeArgs(&tasks[0].args, 21);
  ASSERT_TRUE(mp::mpi::internal::Submit(mp::mpi::internal::CoreOf(pool),
                                        std::move(tasks))
                  .ok());
  absl::StatusOr<int> r = result.Get();
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound) << r.status();
  EXPECT_NE(r.status().message().find("not the same build of the program"),
            absl::string_view::npos)
      << r.status();
  EXPECT_NE(r.status().message().find("rank "), absl::string_view::npos);
  EXPECT_EQ(*pool.Apply(Twice, 21), 42);  // the rank goes on
}

// Last: it leaves one serving rank.
TEST(MpiPoolTest, RankKilledFailsItsTasksNamingItAndPoolGoesOn) {
  mp::mpi::Pool pool(1);
  absl::StatusOr<int> r = pool.Apply(KillMyRank, 0);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  bool named = false;
  for (const mp::mpi::RankInfo& info : mp::mpi::ServingRanks()) {
    named |= r.status().message().find(absl::StrCat(
                 "rank ", info.rank, " on host ", info.host, " (pid ",
                 info.pid, ") died")) != absl::string_view::npos;
  }
  EXPECT_TRUE(named) << r.status();
  EXPECT_EQ(pool.live_ranks(), 1);
  absl::StatusOr<std::vector<int>> out = pool.Map(Twice, Iota(100), 1);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)[99], 198);
  pool.Close();
  EXPECT_TRUE(pool.Join().ok());
}

// After the kill: a rank that stops answering (stopped, alive) is taken for
// dead after rank_timeout, by its silence.
TEST(MpiPoolTest, SilentRankIsTakenForDeadAfterTheTimeout) {
  ASSERT_TRUE(mp::mpi::Running());
  absl::StatusOr<mp::mpi::Pool> pool =
      mp::mpi::Pool::Make({.processes = 1}, {.rank_timeout = std::chrono::seconds(2)});
  ASSERT_TRUE(pool.ok()) << pool.status();
  const int before = pool->live_ranks();
  ASSERT_GE(before, 1);
  absl::StatusOr<int> r = pool->Apply(StopMyRank, 0);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kAborted) << r.status();
  EXPECT_NE(r.status().message().find(") died (silent for "), absl::string_view::npos)
      << r.status();
  EXPECT_EQ(pool->live_ranks(), before - 1);
  // Let it go on: its late result is dropped, and it leaves at exit.
  for (const mp::mpi::RankInfo& info : mp::mpi::ServingRanks()) {
    if (r.status().message().find(absl::StrCat("(pid ", info.pid, ")")) !=
        absl::string_view::npos) {
      kill(info.pid, SIGCONT);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (absl::Status s = mp::mpi::Init(argc, argv); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 2;
  }
  testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  std::printf("MPI_POOL_TEST rc=%d\n", rc);
  std::fflush(stdout);
  return rc;
}
