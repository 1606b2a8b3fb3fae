// Workers killed under a running pool: exactly the task a worker held fails
// (Aborted), every other result is right, nothing runs twice, no call hangs
// (judged by the watchdog: each round runs in a child it watches), and
// Terminate or the parent's death leave no process and no segment.
//
// MP_POOL_KILLS sets the rounds of the kill loops (default 20; the long run
// is MP_POOL_KILLS=1000).
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/liveness.h"
#include "mp/pool/pool.h"
#include "mp/queue/queue.h"
#include "tests/watchdog.h"

namespace {

constexpr int kItems = 24;

struct Board {
  std::atomic<int> runs[kItems];
  std::atomic<int> owner[kItems];    // pid of the worker running item i
  std::atomic<int> release[kItems];  // item i may return
};
Board* board = nullptr;  // mapped before any pool forks

int HeldTask(int i) {
  board->runs[i].fetch_add(1);
  board->owner[i].store(getpid());
  while (board->release[i].load() == 0) usleep(200);
  return 2 * i;
}

int TinyTask(int i) {
  board->runs[i].fetch_add(1);
  return 2 * i;
}

#define CHECK_OR_EXIT(cond, code, ...)      \
  do {                                      \
    if (!(cond)) {                          \
      std::fprintf(stderr, __VA_ARGS__);    \
      std::fprintf(stderr, "\n");           \
      _exit(code);                          \
    }                                       \
  } while (0)

void ResetBoard() {
  for (int i = 0; i < kItems; ++i) {
    board->runs[i] = 0;
    board->owner[i] = 0;
    board->release[i] = 1;
  }
}

// One round in a child: item `victim` is held by its worker until that
// worker is SIGKILLed; it alone fails, naming the worker and the signal.
int KillHeldTaskRound(int victim, int processes) {
  ResetBoard();
  board->release[victim] = 0;
  mp::Pool pool(processes);
  std::vector<int> in;
  for (int i = 0; i < kItems; ++i) in.push_back(i);
  // Every item submitted at once, so the victim starts without our Next().
  auto it = pool.Imap(HeldTask, in, {.max_in_flight = kItems});
  // Wait (as a user would: no deadline; the watchdog judges) for the victim
  // to start, then kill the worker that holds it.
  while (board->owner[victim].load() == 0) usleep(100);
  const int pid = board->owner[victim].load();
  kill(pid, SIGKILL);
  int i = 0;
  for (auto& r : it) {
    if (i == victim) {
      CHECK_OR_EXIT(r.status().code() == absl::StatusCode::kAborted, 10,
                    "item %d: %s", i, r.status().ToString().c_str());
      const std::string msg(r.status().message());
      CHECK_OR_EXIT(msg.find("pid " + std::to_string(pid)) != std::string::npos &&
                        msg.find("SIGKILL") != std::string::npos &&
                        msg.find("PoolWorker-") != std::string::npos,
                    11, "message: %s", msg.c_str());
    } else {
      CHECK_OR_EXIT(r.ok() && *r == 2 * i, 12, "item %d: %s", i,
                    r.status().ToString().c_str());
    }
    CHECK_OR_EXIT(board->runs[i].load() == 1, 13, "item %d ran %d times", i,
                  board->runs[i].load());
    ++i;
  }
  CHECK_OR_EXIT(i == kItems, 14, "%d results", i);
  // The pool goes on with a replacement.
  auto again = pool.Map(TinyTask, in);
  CHECK_OR_EXIT(again.ok(), 15, "%s", again.status().ToString().c_str());
  CHECK_OR_EXIT(pool.workers_started() == processes + 1, 16, "%d started",
                pool.workers_started());
  return 0;
}

TEST(PoolCrashTest, KilledWorkerFailsExactlyTheTaskItHeld) {
  const int rounds = mp_test::CountFromEnv("MP_POOL_KILLS", 20);
  std::mt19937 rng(12345);
  for (int r = 0; r < rounds; ++r) {
    const int victim = static_cast<int>(rng() % kItems);
    const int processes = 1 + static_cast<int>(rng() % 3);
    const pid_t pid =
        mp_test::ForkChild([&] { return KillHeldTaskRound(victim, processes); });
    ASSERT_EQ(mp_test::Watch(pid, "round " + std::to_string(r)), "");
  }
}

// One round in a child: a worker is killed at a random moment of a Map of
// tiny tasks. At most the task it held fails (Aborted); every other item is
// right and ran exactly once; a failed item ran at most once.
int RandomKillRound(unsigned seed) {
  ResetBoard();
  std::mt19937 rng(seed);
  mp::Pool pool(2);
  std::vector<int> in;
  for (int i = 0; i < kItems; ++i) in.push_back(i);
  auto it = pool.Imap(TinyTask, in);
  usleep(rng() % 3000);
  const std::vector<pid_t> pids = pool.worker_pids();
  if (!pids.empty()) kill(pids[rng() % pids.size()], SIGKILL);
  int i = 0, failed = 0;
  for (auto& r : it) {
    if (!r.ok()) {
      ++failed;
      CHECK_OR_EXIT(r.status().code() == absl::StatusCode::kAborted, 20,
                    "item %d: %s", i, r.status().ToString().c_str());
      CHECK_OR_EXIT(board->runs[i].load() <= 1, 21, "failed item %d ran %d",
                    i, board->runs[i].load());
    } else {
      CHECK_OR_EXIT(*r == 2 * i, 22, "item %d = %d", i, *r);
      CHECK_OR_EXIT(board->runs[i].load() == 1, 23, "item %d ran %d times", i,
                    board->runs[i].load());
    }
    ++i;
  }
  CHECK_OR_EXIT(i == kItems && failed <= 1, 24, "%d results, %d failed", i,
                failed);
  auto again = pool.Map(TinyTask, in);
  CHECK_OR_EXIT(again.ok(), 25, "%s", again.status().ToString().c_str());
  return 0;
}

TEST(PoolCrashTest, RandomKillsNeverHangNorRunATaskTwice) {
  const int rounds = mp_test::CountFromEnv("MP_POOL_KILLS", 20);
  for (int r = 0; r < rounds; ++r) {
    const pid_t pid = mp_test::ForkChild([r] { return RandomKillRound(1000 + r); });
    ASSERT_EQ(mp_test::Watch(pid, "round " + std::to_string(r)), "");
  }
}

// Map with chunksize 1 sends its items as runs (many items to a message,
// each still its own task): a death inside a run fails the item the worker
// held and nothing else, and no item runs twice.
constexpr int kRunItems = 3000;
struct RunBoard {
  std::atomic<int> runs[kRunItems];
  std::atomic<int> worker_of[kRunItems];  // pid that started item i
  std::atomic<int> rounds_with_a_failure;
};
RunBoard* run_board = nullptr;  // mapped before any pool forks

int CountedTask(int i) {
  run_board->runs[i].fetch_add(1);
  return 2 * i;
}
// About 5 us of work: a Map of kRunItems lasts milliseconds, so a kill at a
// random moment lands inside a run.
int SlowCountedTask(int i) {
  run_board->worker_of[i].store(getpid());
  const auto until =
      std::chrono::steady_clock::now() + std::chrono::microseconds(5);
  while (std::chrono::steady_clock::now() < until) {
  }
  return CountedTask(i);
}
int ExitsAt2500(int i) {
  if (run_board->runs[i].fetch_add(1) == 0 && i == 2500) _exit(5);
  return 2 * i;
}

std::vector<int> RunInputs() {
  std::vector<int> in(kRunItems);
  for (int i = 0; i < kRunItems; ++i) in[i] = i;
  return in;
}

// The item a failed Map names ("item <i>: ..."), or -1.
int FailedItem(const absl::Status& s) {
  int i = -1;
  if (std::sscanf(std::string(s.message()).c_str(), "item %d:", &i) != 1) {
    return -1;
  }
  return i;
}

int HeldRunItemRound() {
  for (auto& r : run_board->runs) r = 0;
  mp::Pool pool(1);
  auto r = pool.Map(ExitsAt2500, RunInputs(), 1);
  CHECK_OR_EXIT(!r.ok() && r.status().code() == absl::StatusCode::kAborted,
                30, "%s", r.status().ToString().c_str());
  CHECK_OR_EXIT(FailedItem(r.status()) == 2500, 31, "%s",
                r.status().ToString().c_str());
  for (int k = 0; k < kRunItems; ++k) {
    CHECK_OR_EXIT(run_board->runs[k].load() == 1, 32, "item %d ran %d times",
                  k, run_board->runs[k].load());
  }
  for (auto& c : run_board->runs) c = 0;
  auto again = pool.Map(CountedTask, RunInputs(), 1);
  CHECK_OR_EXIT(again.ok() && (*again)[kRunItems - 1] == 2 * (kRunItems - 1),
                33, "%s", again.status().ToString().c_str());
  return 0;
}

TEST(PoolCrashTest, DeathInsideARunFailsOnlyTheHeldItem) {
  run_board = mp_test::MapShared<RunBoard>();
  const pid_t pid = mp_test::ForkChild([] { return HeldRunItemRound(); });
  EXPECT_EQ(mp_test::Watch(pid, "held run item"), "");
  mp_test::Unmap(run_board);
}

// A worker that has started an item of the Map (a worker the scheduler
// has not run yet holds nothing), once one has; 0 if none within 2 s.
pid_t AWorkerAtWork(const std::vector<pid_t>& pids, std::mt19937& rng) {
  for (int wait = 0; wait < 20000; ++wait) {
    std::vector<pid_t> busy;
    for (pid_t p : pids) {
      for (int i = 0; i < kRunItems; ++i) {
        if (run_board->worker_of[i].load() == p) {
          busy.push_back(p);
          break;
        }
      }
    }
    if (!busy.empty()) return busy[rng() % busy.size()];
    usleep(100);
  }
  return 0;
}

int RandomRunKillRound(unsigned seed) {
  for (auto& r : run_board->runs) r = 0;
  for (auto& w : run_board->worker_of) w = 0;
  std::mt19937 rng(seed);
  mp::Pool pool(2);
  auto result = pool.MapAsync(SlowCountedTask, RunInputs(), 1);
  const pid_t victim = AWorkerAtWork(pool.worker_pids(), rng);
  usleep(rng() % 3000);
  if (victim != 0) kill(victim, SIGKILL);
  auto r = result.Get();
  const int failed = r.ok() ? -1 : FailedItem(r.status());
  CHECK_OR_EXIT(r.ok() || (r.status().code() == absl::StatusCode::kAborted &&
                           failed >= 0),
                40, "%s", r.status().ToString().c_str());
  if (failed >= 0) run_board->rounds_with_a_failure.fetch_add(1);
  for (int k = 0; k < kRunItems; ++k) {
    const int runs = run_board->runs[k].load();
    CHECK_OR_EXIT(k == failed ? runs <= 1 : runs == 1, 41,
                  "item %d ran %d times (failed item %d)", k, runs, failed);
    if (r.ok()) CHECK_OR_EXIT((*r)[k] == 2 * k, 42, "item %d = %d", k, (*r)[k]);
  }
  return 0;
}

// MP_POOL_KILLS rounds of `round` (seeded seed0 + r) over a fresh
// run_board, each in a child the watchdog judges; prints in how many the
// kill caught a held task (`held`).
void RunBoardRounds(const std::string& label, const char* held,
                    unsigned seed0, int (*round)(unsigned)) {
  run_board = mp_test::MapShared<RunBoard>();
  const int rounds = mp_test::CountFromEnv("MP_POOL_KILLS", 20);
  for (int r = 0; r < rounds; ++r) {
    const pid_t pid = mp_test::ForkChild([&] { return round(seed0 + r); });
    ASSERT_EQ(mp_test::Watch(pid, label + " round " + std::to_string(r)), "");
  }
  std::printf("%d rounds, %d with the held %s failed\n", rounds,
              run_board->rounds_with_a_failure.load(), held);
  mp_test::Unmap(run_board);
}

TEST(PoolCrashTest, RandomKillsInsideRunsNeverHangNorRunAnItemTwice) {
  RunBoardRounds("run", "item", 5000, RandomRunKillRound);
}

// Synchronous Applies, one after another, run on the caller's thread when
// the pool is idle (pool.h, "Apply's round trip"): a worker killed at a
// random moment among them fails at most the one Apply it held (Aborted),
// every other returns its own answer, none runs twice, and the next Apply
// after the death works (the handler thread replaced the worker). A task
// takes 5 us, every third 40 us (past the caller's spin, so the handler
// thread takes those over): kills land in both kinds.
int ApplyTask(int i) {
  run_board->worker_of[i].store(getpid());
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::microseconds(i % 3 == 0 ? 40 : 5);
  while (std::chrono::steady_clock::now() < until) {
  }
  return CountedTask(i);
}

int RandomApplyKillRound(unsigned seed) {
  for (auto& r : run_board->runs) r = 0;
  for (auto& w : run_board->worker_of) w = 0;
  std::mt19937 rng(seed);
  mp::Pool pool(2);
  const std::vector<pid_t> pids = pool.worker_pids();
  const unsigned delay_us = rng() % 30000;
  std::thread killer([&] {
    const pid_t victim = AWorkerAtWork(pids, rng);
    usleep(delay_us);
    if (victim != 0) kill(victim, SIGKILL);
  });
  int failed = -1;
  for (int i = 0; i < kRunItems; ++i) {
    absl::StatusOr<int> r = pool.Apply(ApplyTask, i);
    if (!r.ok()) {
      CHECK_OR_EXIT(r.status().code() == absl::StatusCode::kAborted &&
                        failed < 0,
                    50, "apply %d: %s (an earlier one failed: %d)", i,
                    r.status().ToString().c_str(), failed);
      CHECK_OR_EXIT(
          r.status().message().find("killed by signal 9") != std::string::npos,
          51, "apply %d: %s", i, r.status().ToString().c_str());
      failed = i;
      continue;
    }
    CHECK_OR_EXIT(*r == 2 * i, 52, "apply %d = %d", i, *r);
  }
  killer.join();
  if (failed >= 0) run_board->rounds_with_a_failure.fetch_add(1);
  for (int k = 0; k < kRunItems; ++k) {
    const int runs = run_board->runs[k].load();
    CHECK_OR_EXIT(k == failed ? runs <= 1 : runs == 1, 53,
                  "apply %d ran %d times (failed: %d)", k, runs, failed);
  }
  return 0;
}

TEST(PoolCrashTest, RandomKillsAmongSynchronousAppliesFailAtMostTheHeldOne) {
  RunBoardRounds("apply", "Apply", 7000, RandomApplyKillRound);
}

// A stream of ApplyAsync tasks (single tasks of one function travel to a
// worker as runs, answered through its answer area) with a worker killed
// at a random moment: at most one task fails, Aborted; every other answer
// is right; none runs twice.
int RandomApplyAsyncKillRound(unsigned seed) {
  for (auto& r : run_board->runs) r = 0;
  for (auto& w : run_board->worker_of) w = 0;
  std::mt19937 rng(seed);
  mp::Pool pool(2);
  std::vector<mp::AsyncResult<int>> rs;
  rs.reserve(kRunItems);
  for (int i = 0; i < kRunItems; ++i) {
    rs.push_back(pool.ApplyAsync(SlowCountedTask, std::make_tuple(i)));
  }
  // After a random pause, a worker caught holding a task (started, not
  // done) is killed; if none is caught within the tries, any one at work.
  pid_t victim = AWorkerAtWork(pool.worker_pids(), rng);
  usleep(rng() % 3000);
  for (int tries = 0; tries < 200; ++tries) {
    pid_t holder = 0;
    for (int k = 0; k < kRunItems && holder == 0; ++k) {
      const pid_t p = run_board->worker_of[k].load();
      if (p != 0 && run_board->runs[k].load() == 0) holder = p;
    }
    if (holder != 0) {
      victim = holder;
      break;
    }
    usleep(20);
  }
  if (victim != 0) kill(victim, SIGKILL);
  int failed = -1;
  for (int i = 0; i < kRunItems; ++i) {
    absl::StatusOr<int> r = rs[i].Get();
    if (!r.ok()) {
      CHECK_OR_EXIT(r.status().code() == absl::StatusCode::kAborted &&
                        failed < 0,
                    60, "task %d: %s (an earlier one failed: %d)", i,
                    r.status().ToString().c_str(), failed);
      failed = i;
      continue;
    }
    CHECK_OR_EXIT(*r == 2 * i, 61, "task %d = %d", i, *r);
  }
  if (failed >= 0) run_board->rounds_with_a_failure.fetch_add(1);
  for (int k = 0; k < kRunItems; ++k) {
    const int runs = run_board->runs[k].load();
    CHECK_OR_EXIT(k == failed ? runs <= 1 : runs == 1, 62,
                  "task %d ran %d times (failed: %d)", k, runs, failed);
  }
  return 0;
}

TEST(PoolCrashTest, RandomKillsAmongApplyAsyncTasksFailAtMostTheHeldOne) {
  RunBoardRounds("apply_async", "ApplyAsync task", 9000,
                 RandomApplyAsyncKillRound);
}

// The mp-msg-* segments in /dev/shm that `pids` created.
// The side segments in /dev/shm that carry `marker` near their start (the
// test's own big arguments: tests running beside this one share /dev/shm,
// and in Bazel's sandbox their pids are the same numbers as ours).
std::vector<std::string> SideSegmentsWith(const std::string& marker) {
  std::vector<std::string> out;
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.rfind(mp::kSideSegmentPrefix, 0) != 0) continue;
    const int fd = open(("/dev/shm/" + name).c_str(), O_RDONLY | O_NOFOLLOW);
    if (fd < 0) continue;
    std::string head(4096, '\0');
    const ssize_t n = pread(fd, head.data(), head.size(), 0);
    if (n > 0 && head.substr(0, static_cast<size_t>(n)).find(marker) !=
                     std::string::npos) {
      out.push_back(name);
    }
    close(fd);
  }
  closedir(d);
  return out;
}

// Gone or a zombie (a process can vanish while it is being looked at: the
// library's own check copes with that).
bool Dead(pid_t pid) { return mp::liveness::TaskIsDead(static_cast<uint32_t>(pid)); }

TEST(PoolCrashTest, TerminateWhileBusyLeavesNoProcessNoSegment) {
  std::set<int> pids{getpid()};
  const std::string marker =
      "pool-crash-test-" + std::to_string(std::random_device{}()) + "-" +
      std::to_string(std::random_device{}());
  {
    ResetBoard();
    for (int i = 0; i < kItems; ++i) board->release[i] = 0;
    mp::Pool pool({.processes = 2, .window = 4});
    // Big arguments (side segments) queued in the workers' rings, behind
    // tasks that never return.
    std::vector<std::string> big(8, marker + std::string(1 << 20, 'x'));
    auto a = pool.MapAsync(
        +[](const std::string& s) {
          board->owner[0].store(getpid());
          while (board->release[0].load() == 0) usleep(200);
          return s.size();
        },
        big, 1);
    while (board->owner[0].load() == 0) usleep(100);
    for (pid_t p : pool.worker_pids()) pids.insert(p);
    ASSERT_TRUE(pool.Terminate().ok());
    EXPECT_EQ(a.Get().status().code(), absl::StatusCode::kCancelled);
    for (int p : pids) {
      if (p != getpid()) {
        EXPECT_TRUE(Dead(p)) << p;
      }
    }
  }
  EXPECT_TRUE(SideSegmentsWith(marker).empty());
}

TEST(PoolCrashTest, WorkersDieWithTheirParent) {
  auto* shared = mp_test::MapShared<std::array<std::atomic<int>, 4>>();
  const pid_t parent = mp_test::ForkChild([shared] {
    mp::Pool pool(3);
    const std::vector<pid_t> p = pool.worker_pids();
    for (int i = 0; i < 3; ++i) (*shared)[i].store(p[i]);
    (*shared)[3].store(1);
    pause();  // killed here
    return 0;
  });
  while ((*shared)[3].load() == 0) usleep(100);
  mp_test::KillAndReap(parent);
  // Each worker dies of the parent-death signal (the watchdog judges a
  // worker that never does).
  for (int i = 0; i < 3; ++i) {
    const pid_t w = (*shared)[i].load();
    const auto until = std::chrono::steady_clock::now() + mp_test::kHangAfter;
    while (!Dead(w) && std::chrono::steady_clock::now() < until) usleep(1000);
    EXPECT_TRUE(Dead(w)) << "worker " << w << " outlived its parent";
  }
  mp_test::Unmap(shared);
}

}  // namespace

int main(int argc, char** argv) {
  board = mp_test::MapShared<Board>();
  testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  mp_test::Unmap(board);
  return rc;
}
