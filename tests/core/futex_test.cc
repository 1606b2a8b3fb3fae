// Futex wait/wake over private, anonymous shared and named (file-backed)
// memory, between threads and between processes, as the kernel's own
// selftests do.

#include "mp/core/futex.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "tests/watchdog.h"

namespace mp {
namespace {

using namespace std::chrono_literals;

TEST(DeadlineTest, InfiniteNeverExpires) {
  Deadline d = Deadline::Infinite();
  EXPECT_TRUE(d.infinite());
  EXPECT_FALSE(d.Expired());
  EXPECT_EQ(d.PollMillis(), -1);
}

TEST(DeadlineTest, PastAndNegativeAreAlreadyExpired) {
  EXPECT_TRUE(Deadline::Past().Expired());
  EXPECT_TRUE(Deadline::After(-5s).Expired());
  EXPECT_TRUE(Deadline::AfterSeconds(-1).Expired());
  EXPECT_TRUE(Deadline::AfterSeconds(0).Expired());
  EXPECT_EQ(Deadline::After(-5s).Remaining(), Deadline::Clock::duration(0));
  EXPECT_EQ(Deadline::Past().PollMillis(), 0);
}

TEST(DeadlineTest, FutureDeadlineHasTimeLeft) {
  Deadline d = Deadline::AfterSeconds(100);
  EXPECT_FALSE(d.Expired());
  EXPECT_GT(d.Remaining(), 99s);
  EXPECT_GT(d.PollMillis(), 99000);
}

TEST(FutexTest, MismatchReturnsAtOnce) {
  FutexWord w{1};
  EXPECT_EQ(FutexWait(&w, 0), FutexResult::kValueMismatch);
  EXPECT_EQ(FutexWait(&w, 0, Deadline::After(1h)), FutexResult::kValueMismatch);
}

TEST(FutexTest, TimeoutIsReportedAsSuch) {
  FutexWord w{0};
  EXPECT_EQ(FutexWait(&w, 0, Deadline::After(20ms)), FutexResult::kTimedOut);
  EXPECT_EQ(FutexWait(&w, 0, Deadline::Past()), FutexResult::kTimedOut);
}

TEST(FutexTest, WakeWithNoSleeperWakesNobody) {
  FutexWord w{0};
  EXPECT_EQ(FutexWakeAll(&w), 0);
}

pid_t Gettid() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Sleeps on `w` until it is set; counts the sleeps that a wake ended.
void WaitUntilSet(FutexWord* w, FutexScope scope, std::atomic<pid_t>* tid,
                  std::atomic<int>* woken) {
  tid->store(Gettid());
  while (w->load() == 0) {
    if (FutexWait(w, 0, Deadline::Infinite(), scope) == FutexResult::kWoken) {
      woken->fetch_add(1);
    }
  }
}

TEST(FutexTest, ThreadsPrivateAndShared) {
  for (FutexScope scope : {FutexScope::kPrivate, FutexScope::kShared}) {
    FutexWord w{0};
    std::atomic<pid_t> tid{0};
    std::atomic<int> woken{0};
    std::thread t(WaitUntilSet, &w, scope, &tid, &woken);
    while (tid.load() == 0) std::this_thread::yield();
    // The thread sleeps in the kernel (on w: nothing else puts it to sleep).
    EXPECT_TRUE(mp_test::AwaitAsleep(tid.load()));
    w.store(1);
    EXPECT_EQ(FutexWake(&w, 1, scope), 1);  // the wake found the sleeper
    t.join();
    EXPECT_EQ(w.load(), 1u);
    EXPECT_GE(woken.load(), 1);
  }
}

// Parent wakes a child sleeping on a futex in `mem`.
void WakeChildThrough(SharedMemory& mem) {
  auto* w = new (mem.data()) FutexWord(0);
  auto* ready = new (static_cast<char*>(mem.data()) + 64) FutexWord(0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ready->store(1);
    FutexWakeAll(ready);
    while (w->load() == 0) FutexWait(w, 0);
    _exit(w->load() == 42 ? 0 : 1);
  }
  while (ready->load() == 0) FutexWait(ready, 0);
  EXPECT_TRUE(mp_test::AwaitAsleep(pid));  // in its wait on w
  w->store(42);
  EXPECT_EQ(FutexWakeAll(w), 1);  // the wake found the sleeper
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

TEST(FutexTest, ProcessesOverAnonymousSharedMemory) {
  auto mem = SharedMemory::Anonymous(4096);
  ASSERT_TRUE(mem.ok()) << mem.status();
  WakeChildThrough(*mem);
}

TEST(FutexTest, ProcessesOverNamedSegment) {
  std::string name = "/mp_futex_test_" + std::to_string(getpid());
  auto mem = SharedMemory::Create(name, 4096);
  ASSERT_TRUE(mem.ok()) << mem.status();
  WakeChildThrough(*mem);
  EXPECT_TRUE(SharedMemory::Unlink(name).ok());
}

// A signal that interrupts the wait must not end it early: the wait goes on
// with the time that is left.
TEST(FutexTest, SignalDoesNotCutTheWaitShort) {
  struct sigaction sa {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old), 0);
  FutexWord w{0};
  std::atomic<pid_t> tid{0};
  FutexResult result = FutexResult::kWoken;
  pthread_t waiter_handle;
  std::thread t([&] {
    waiter_handle = pthread_self();
    tid = Gettid();
    result = FutexWait(&w, 0, Deadline::After(300ms));
  });
  while (tid.load() == 0) std::this_thread::yield();
  // Each signal lands on the sleeping wait (and the handler has run before
  // it sleeps again: AwaitAsleep sees it back in the kernel).
  for (int i = 0; i < 5; ++i) {
    if (!mp_test::AwaitAsleep(tid.load())) break;  // timed out meanwhile
    pthread_kill(waiter_handle, SIGUSR1);
  }
  t.join();
  EXPECT_EQ(result, FutexResult::kTimedOut);
  sigaction(SIGUSR1, &old, nullptr);
}

}  // namespace
}  // namespace mp
