// Queue bookkeeping after a loss (issue 16, hole 4): a process killed at a
// fault point must leave qsize(), lost_records() and JoinableQueue's task
// count exact, so that a survivor's Get() and Join() WITHOUT a deadline
// return. The test process is the outside watchdog: it gives each survivor
// kWatchdog (far above any sleep slice in the library), and reports one
// still running then as a hang, killing and reaping it.
//
//   bazel test --config=fault //tests/fault:queue_hang_test
//
// Each case runs MP_HANG_ROUNDS rounds (20). In a build without fault points
// the cases are skipped.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mp/core/fault.h"
#include "mp/queue/queue.h"
#include "tests/watchdog.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

using mp_test::Describe;
using mp_test::WaitOrKill;

constexpr auto kWatchdog = mp_test::kHangAfter;

int Rounds() { return mp_test::CountFromEnv("MP_HANG_ROUNDS", 20); }

// In a survivor: a failed check ends it with exit code 3 and says why.
#define SURVIVOR_CHECK(cond)                                              \
  do {                                                                    \
    if (!(cond)) {                                                        \
      std::fprintf(stderr, "%s:%d: survivor check failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                      \
      _exit(3);                                                           \
    }                                                                     \
  } while (0)

template <class F>
pid_t Fork(F&& body) {
  return mp_test::ForkChild(std::forward<F>(body));
}

// Forks a victim armed to die at the `nth` hit of `point`, runs `body` in
// it, and waits for its death there. Empty on success, else what went wrong.
std::string KillVictimAt(std::string_view point, uint64_t nth,
                         const std::function<void()>& body) {
  pid_t victim = Fork([&] {
    if (!mp::fault::Arm(point, nth, mp::fault::Action::kKill).ok()) return 99;
    body();
    return 98;  // never reached the point
  });
  const int status = WaitOrKill(victim, kWatchdog);
  if (status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
    return "";
  }
  return absl::StrCat("victim did not die at ", std::string(point), ": ",
                      Describe(status));
}

// Runs `body` in a survivor under the watchdog; empty when it exits 0.
std::string Survive(const std::function<int()>& body) {
  const int status = WaitOrKill(Fork(body), kWatchdog);
  if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return "survivor: " + Describe(status);
}

class QueueHangTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!mp::fault::kEnabled) {
      GTEST_SKIP() << "needs --config=fault";
    }
  }
};

// A producer killed after writing its payload, before the commit: its record
// is lost and counted once; the item it was putting is no task (Join does
// not wait for it), and qsize() reads 0 once the queue is drained.
TEST_F(QueueHangTest, ProducerKilledAfterPayload) {
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 4096});
    ASSERT_EQ(KillVictimAt("ring.put.after_payload", 1,
                           [&] { (void)q.Put(int64_t{41}); }),
              "");
    EXPECT_EQ(Survive([&] {
                SURVIVOR_CHECK(q.Put(int64_t{42}).ok());
                absl::StatusOr<int64_t> v = q.Get();  // no deadline
                SURVIVOR_CHECK(v.ok() && *v == 42);
                SURVIVOR_CHECK(q.lost_records() == 1);
                SURVIVOR_CHECK(q.qsize() == 0);
                SURVIVOR_CHECK(q.TaskDone().ok());
                SURVIVOR_CHECK(q.Join().ok());  // no deadline
                SURVIVOR_CHECK(q.unfinished_tasks() == 0);
                SURVIVOR_CHECK(q.Put(int64_t{43}).ok());
                SURVIVOR_CHECK(q.qsize() == 1);
                return 0;
              }),
              "");
  }
}

// A producer killed between publishing its claim (tail) and counting it:
// the count is completed by the next producer, the record lost once.
TEST_F(QueueHangTest, ProducerKilledBetweenClaimAndCount) {
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 4096});
    ASSERT_EQ(KillVictimAt("ring.put.after_tail", 1,
                           [&] { (void)q.Put(int64_t{41}); }),
              "");
    EXPECT_EQ(Survive([&] {
                SURVIVOR_CHECK(q.Put(int64_t{42}).ok());
                absl::StatusOr<int64_t> v = q.Get();
                SURVIVOR_CHECK(v.ok() && *v == 42);
                SURVIVOR_CHECK(q.lost_records() == 1);
                SURVIVOR_CHECK(q.qsize() == 0);
                SURVIVOR_CHECK(q.TaskDone().ok());
                SURVIVOR_CHECK(q.Join().ok());
                SURVIVOR_CHECK(q.Put(int64_t{43}).ok());
                SURVIVOR_CHECK(q.qsize() == 1);
                return 0;
              }),
              "");
  }
}

// A producer killed while blocked in Put on a full JoinableQueue: it never
// got room, so it never counted (as in Python, where a bounded put waits for
// space before it counts the item). Join returns once the items in the ring
// are done.
TEST_F(QueueHangTest, ProducerKilledBlockedInPut) {
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 64});
    int items = 0;
    while (q.PutNowait(int64_t{items}).ok()) ++items;
    ASSERT_GT(items, 0);
    ASSERT_EQ(KillVictimAt("ring.put.before_sleep", 1,
                           [&] { (void)q.Put(int64_t{-1}); }),
              "");
    EXPECT_EQ(Survive([&] {
                SURVIVOR_CHECK(q.qsize() == static_cast<size_t>(items));
                for (int i = 0; i < items; ++i) {
                  absl::StatusOr<int64_t> v = q.Get();
                  SURVIVOR_CHECK(v.ok() && *v == i);
                  SURVIVOR_CHECK(q.TaskDone().ok());
                }
                SURVIVOR_CHECK(q.Join().ok());
                SURVIVOR_CHECK(q.qsize() == 0);
                SURVIVOR_CHECK(q.lost_records() == 0);
                SURVIVOR_CHECK(q.unfinished_tasks() == 0);
                return 0;
              }),
              "");
  }
}

// A consumer killed between moving head past a record and counting it: the
// record went with it (delivered), counted out exactly once, so qsize()
// stays exact.
TEST_F(QueueHangTest, ConsumerKilledBetweenHeadAndCount) {
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::Queue<int64_t> q(mp::QueueOptions{.capacity_bytes = 4096});
    for (int64_t i = 0; i < 3; ++i) ASSERT_TRUE(q.Put(i).ok());
    ASSERT_EQ(KillVictimAt("ring.get.after_head", 1, [&] { (void)q.Get(); }),
              "");
    EXPECT_EQ(Survive([&] {
                SURVIVOR_CHECK(q.qsize() == 2);
                for (int64_t i = 1; i < 3; ++i) {
                  absl::StatusOr<int64_t> v = q.Get();
                  SURVIVOR_CHECK(v.ok() && *v == i);
                }
                SURVIVOR_CHECK(q.qsize() == 0);
                SURVIVOR_CHECK(q.Put(int64_t{3}).ok());
                SURVIVOR_CHECK(q.qsize() == 1);
                absl::StatusOr<int64_t> v = q.Get();
                SURVIVOR_CHECK(v.ok() && *v == 3);
                SURVIVOR_CHECK(q.qsize() == 0);
                return 0;
              }),
              "");
  }
}

// A consumer killed between Get and TaskDone abandons its task: Join (no
// deadline) returns once the survivor has done the rest, and
// abandoned_tasks() counts the one abandoned.
TEST_F(QueueHangTest, ConsumerKilledBetweenGetAndTaskDone) {
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 4096});
    for (int64_t i = 0; i < 3; ++i) ASSERT_TRUE(q.Put(i).ok());
    ASSERT_EQ(KillVictimAt("queue.joinable.after_get", 1,
                           [&] { (void)q.Get(); }),
              "");
    EXPECT_EQ(Survive([&] {
                for (int64_t i = 1; i < 3; ++i) {
                  absl::StatusOr<int64_t> v = q.Get();
                  SURVIVOR_CHECK(v.ok() && *v == i);
                  SURVIVOR_CHECK(q.TaskDone().ok());
                }
                SURVIVOR_CHECK(q.Join().ok());  // no deadline
                SURVIVOR_CHECK(q.abandoned_tasks() == 1);
                SURVIVOR_CHECK(q.unfinished_tasks() == 0);
                SURVIVOR_CHECK(q.qsize() == 0);
                SURVIVOR_CHECK(q.lost_records() == 0);
                // More work after the loss is counted as before.
                SURVIVOR_CHECK(q.Put(int64_t{9}).ok());
                SURVIVOR_CHECK(q.unfinished_tasks() == 1);
                SURVIVOR_CHECK(q.Get().ok() && q.TaskDone().ok());
                SURVIVOR_CHECK(q.Join().ok());
                SURVIVOR_CHECK(q.abandoned_tasks() == 1);
                return 0;
              }),
              "");
  }
}

// The same, with the consumer killed inside its Get, between moving head
// and counting the take: the take is still its own (the next consumer
// completes the count), so exactly one task is abandoned, none twice.
TEST_F(QueueHangTest, JoinableConsumerKilledBetweenHeadAndCount) {
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 4096});
    for (int64_t i = 0; i < 3; ++i) ASSERT_TRUE(q.Put(i).ok());
    ASSERT_EQ(KillVictimAt("ring.get.after_head", 1, [&] { (void)q.Get(); }),
              "");
    EXPECT_EQ(Survive([&] {
                SURVIVOR_CHECK(q.abandoned_tasks() == 1);
                SURVIVOR_CHECK(q.qsize() == 2);
                for (int64_t i = 1; i < 3; ++i) {
                  absl::StatusOr<int64_t> v = q.Get();
                  SURVIVOR_CHECK(v.ok() && *v == i);
                  SURVIVOR_CHECK(q.TaskDone().ok());
                }
                SURVIVOR_CHECK(q.Join().ok());
                SURVIVOR_CHECK(q.abandoned_tasks() == 1);
                SURVIVOR_CHECK(q.unfinished_tasks() == 0);
                SURVIVOR_CHECK(q.qsize() == 0);
                return 0;
              }),
              "");
  }
}

// Slots of dead consumers are reused without losing their counts: many
// consumers, each killed after its Get, one after another.
TEST_F(QueueHangTest, DeadSlotsAreReusedExactly) {
  const int victims = 2 * static_cast<int>(mp::queue_internal::Ring::kTaskSlots) + 3;
  mp::JoinableQueue<int64_t> q(mp::QueueOptions{.capacity_bytes = 1 << 14});
  for (int64_t i = 0; i < victims + 1; ++i) ASSERT_TRUE(q.Put(i).ok());
  for (int v = 0; v < victims; ++v) {
    ASSERT_EQ(KillVictimAt("queue.joinable.after_get", 1,
                           [&] { (void)q.Get(); }),
              "");
  }
  EXPECT_EQ(Survive([&] {
              absl::StatusOr<int64_t> v = q.Get();
              SURVIVOR_CHECK(v.ok() && *v == victims);
              SURVIVOR_CHECK(q.TaskDone().ok());
              SURVIVOR_CHECK(q.Join().ok());
              SURVIVOR_CHECK(q.abandoned_tasks() ==
                             static_cast<uint64_t>(victims));
              SURVIVOR_CHECK(q.unfinished_tasks() == 0);
              return 0;
            }),
            "");
}

// kSpsc has no locks: its one consumer / producer completes a dead
// predecessor's count at its next call.
TEST_F(QueueHangTest, SpscCountsAfterAKill) {
  const mp::QueueOptions spsc{.capacity_bytes = 4096,
                              .mode = mp::QueueMode::kSpsc};
  for (int round = 0; round < Rounds(); ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    mp::Queue<int64_t> q(spsc);
    for (int64_t i = 0; i < 3; ++i) ASSERT_TRUE(q.Put(i).ok());
    ASSERT_EQ(KillVictimAt("ring.get.after_head", 1, [&] { (void)q.Get(); }),
              "");
    ASSERT_EQ(KillVictimAt("ring.put.after_tail", 1,
                           [&] { (void)q.Put(int64_t{-1}); }),
              "");
    EXPECT_EQ(Survive([&] {
                SURVIVOR_CHECK(q.qsize() == 3);  // 1, 2 and the dead claim
                SURVIVOR_CHECK(q.Put(int64_t{3}).ok());
                for (int64_t i = 1; i <= 3; ++i) {
                  absl::StatusOr<int64_t> v = q.Get();
                  SURVIVOR_CHECK(v.ok() && *v == i);
                }
                SURVIVOR_CHECK(q.lost_records() == 1);
                SURVIVOR_CHECK(q.qsize() == 0);
                return 0;
              }),
              "");
  }
}

}  // namespace
