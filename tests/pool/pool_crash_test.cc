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
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <set>
#include <string>
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
