// Misuse and bad input: clear errors, never corruption.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

#include "gtest/gtest.h"
#include "mp/core/error.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/sync.h"
#include "tests/watchdog.h"

namespace {

TEST(LockMisuseTest, ReleaseUnlockedIsFailedPrecondition) {
  mp::Lock lock;
  EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release()));
  lock.lock();
  EXPECT_TRUE(lock.Release().ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release()));
  EXPECT_TRUE(lock.try_lock());  // still usable
  lock.unlock();
}

TEST(LockMisuseTest, SelfDeadlockTimesOut) {
  mp::Lock lock;
  std::lock_guard g(lock);
  EXPECT_EQ(lock.Acquire(std::chrono::milliseconds(5)),
            mp::LockResult::kTimedOut);
  EXPECT_FALSE(lock.try_lock());
}

TEST(LockMisuseDeathTest, UnlockUnlockedAborts) {
  mp::Lock lock;
  EXPECT_DEATH(lock.unlock(), "release unlocked lock");
}

TEST(LockMisuseDeathTest, MovedFromHandleAborts) {
  mp::Lock lock;
  mp::Lock other = std::move(lock);
  EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release()));  // NOLINT
  EXPECT_DEATH(lock.lock(), "moved-from mp::Lock");         // NOLINT
  other.lock();
  other.unlock();
}

TEST(RLockMisuseTest, ReleaseByNonOwner) {
  mp::RLock lock;
  EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release()));
  lock.lock();
  lock.lock();
  std::thread t([&] { EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release())); });
  t.join();
  EXPECT_TRUE(lock.Release().ok());
  EXPECT_TRUE(lock.locked());
  EXPECT_TRUE(lock.Release().ok());
  EXPECT_FALSE(lock.locked());
  EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release()));
}

TEST(LockMisuseTest, ReleaseByOtherThreadRefused) {
  mp::Lock lock;
  lock.lock();
  std::thread t([&] { EXPECT_TRUE(absl::IsFailedPrecondition(lock.Release())); });
  t.join();
  EXPECT_TRUE(lock.locked());
  lock.unlock();
}

TEST(ConditionMisuseDeathTest, WaitOrNotifyWithoutLockAborts) {
  mp::Condition cond;
  EXPECT_DEATH(cond.Wait(), "cannot wait on un-acquired lock");
  EXPECT_DEATH(cond.Notify(), "cannot notify on un-acquired lock");
  EXPECT_DEATH(cond.NotifyAll(), "cannot notify on un-acquired lock");
}

TEST(SemaphoreMisuseTest, BadCounts) {
  EXPECT_TRUE(absl::IsInvalidArgument(mp::Semaphore::Create(-1).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(mp::BoundedSemaphore::Create(-5).status()));
  EXPECT_TRUE(mp::Semaphore::Create(0).ok());
  mp::Semaphore s(0);
  EXPECT_TRUE(absl::IsInvalidArgument(s.Release(0)));
  EXPECT_TRUE(absl::IsInvalidArgument(s.Release(-3)));
  EXPECT_FALSE(s.TryAcquire());
  EXPECT_FALSE(s.Acquire(mp::Deadline::Past()));
  EXPECT_TRUE(s.Release(3).ok());
  EXPECT_EQ(s.GetValue(), 3);
  EXPECT_TRUE(absl::IsFailedPrecondition(s.Release(0x7fffffff)));
  EXPECT_EQ(s.GetValue(), 3);
}

// The status a constructor threw as mp::Error; OK if it threw nothing.
template <class F>
absl::StatusCode ThrownCode(F make) {
  try {
    make();
  } catch (const mp::Error& e) {
    return e.code();
  }
  return absl::StatusCode::kOk;
}

TEST(SemaphoreMisuseTest, NegativeConstructorThrowsInvalidArgument) {
  EXPECT_EQ(ThrownCode([] { mp::Semaphore s(-1); }),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ThrownCode([] { mp::BoundedSemaphore s(-1); }),
            absl::StatusCode::kInvalidArgument);
  try {
    mp::Semaphore s(-1);
  } catch (const mp::Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be >= 0"), std::string::npos)
        << e.what();
  }
}

TEST(BoundedSemaphoreTest, OverReleaseIsError) {
  mp::BoundedSemaphore s(2);
  EXPECT_TRUE(absl::IsFailedPrecondition(s.Release()));
  EXPECT_EQ(s.GetValue(), 2);
  EXPECT_TRUE(s.TryAcquire());
  EXPECT_TRUE(absl::IsFailedPrecondition(s.Release(2)));
  EXPECT_TRUE(s.Release().ok());
  EXPECT_EQ(s.GetValue(), 2);
  mp::BoundedSemaphore zero(0);
  EXPECT_TRUE(absl::IsFailedPrecondition(zero.Release()));
  EXPECT_DEATH(s.release(), "released too many times");
}

TEST(BarrierMisuseTest, BadParties) {
  EXPECT_TRUE(absl::IsInvalidArgument(mp::Barrier::Create(0).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(mp::Barrier::Create(-2).status()));
  EXPECT_EQ(ThrownCode([] { mp::Barrier b(0); }),
            absl::StatusCode::kInvalidArgument);
  auto one = mp::Barrier::Create(1);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one->Wait(), 0);
  EXPECT_EQ(*one->Wait(mp::Deadline::Past()), 0);
}

TEST(BarrierTest, ActionThatThrowsBreaksTheBarrier) {
  mp::Barrier b(1, [] { throw std::runtime_error("boom"); });
  EXPECT_THROW((void)b.Wait(), std::runtime_error);
  EXPECT_TRUE(b.Broken());
  EXPECT_TRUE(absl::IsAborted(b.Wait().status()));
}

TEST(BarrierTest, DefaultTimeoutBreaks) {
  mp::Barrier b(2, {}, std::chrono::milliseconds(5));
  EXPECT_TRUE(absl::IsAborted(b.Wait().status()));
  EXPECT_TRUE(b.Broken());
  EXPECT_EQ(b.Parties(), 2);
  EXPECT_EQ(b.NWaiting(), 0);
}

// No shared memory left: every handle's factory says ResourceExhausted and
// its constructor throws mp::Error with that code (never std::bad_alloc).
// Run in a child whose address space is capped at what it uses now.
TEST(SyncOutOfMemoryTest, FactoriesReturnAndConstructorsThrowTheStatus) {
  const pid_t pid = mp_test::ForkChild([] {
    std::ifstream statm("/proc/self/statm");
    long pages = 0;
    statm >> pages;
    // Room for no new mapping; the heap already mapped serves small news.
    const rlim_t limit = static_cast<rlim_t>(pages) * getpagesize();
    rlimit cap{limit, limit};
    if (setrlimit(RLIMIT_AS, &cap) != 0) return 90;
    int bit = 1, failed = 0;
    auto expect = [&](absl::StatusCode c) {
      if (c != absl::StatusCode::kResourceExhausted) failed |= bit;
      bit <<= 1;
    };
    expect(mp::Shared<mp::ResidentEvent>::Create().status().code());
    expect(mp::Lock::Create().status().code());
    expect(mp::RLock::Create().status().code());
    expect(mp::Event::Create().status().code());
    expect(mp::Condition::Create().status().code());
    expect(mp::Semaphore::Create(1).status().code());
    expect(mp::BoundedSemaphore::Create(1).status().code());
    expect(mp::Barrier::Create(2).status().code());
    expect(ThrownCode([] { mp::Lock l; }));
    expect(ThrownCode([] { mp::RLock l; }));
    expect(ThrownCode([] { mp::Event e; }));
    expect(ThrownCode([] { mp::Condition c; }));
    expect(ThrownCode([] { mp::Semaphore s(1); }));
    expect(ThrownCode([] { mp::Barrier b(2); }));
    return failed == 0 ? 0 : 1 + (failed & 0x7f);  // low bits: which one
  });
  const int status = mp_test::WaitOrKill(pid);
  ASSERT_TRUE(WIFEXITED(status)) << mp_test::Describe(status);
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "first failures (bits): " << WEXITSTATUS(status) - 1;
}

// Every primitive takes the same three timeout forms (README "Timeouts"):
// a Deadline, a std::chrono duration, Python's seconds. Unavailable: each
// form gives up (false); available: each form succeeds at once.
TEST(TimeoutFormsTest, EveryPrimitiveTakesTheSameThreeForms) {
  using std::chrono::milliseconds;
  mp::Lock lock;
  ASSERT_TRUE(lock.Acquire());  // Python's acquire(): blocks, then true
  std::thread([&] {
    EXPECT_EQ(lock.Acquire(mp::Deadline::Past()), mp::LockResult::kTimedOut);
    EXPECT_EQ(lock.Acquire(milliseconds(1)), mp::LockResult::kTimedOut);
    EXPECT_FALSE(lock.Acquire(true, 0.001));
    EXPECT_FALSE(lock.Acquire(false));
    EXPECT_FALSE(lock.Acquire(false, 100.0));  // block=false: one try
    EXPECT_FALSE(lock.try_lock_for(milliseconds(1)));
    EXPECT_FALSE(lock.try_lock_until(std::chrono::steady_clock::now()));
  }).join();
  ASSERT_TRUE(lock.Release().ok());
  EXPECT_TRUE(lock.Acquire(false));
  ASSERT_TRUE(lock.Release().ok());

  mp::RLock rlock;
  EXPECT_TRUE(rlock.Acquire(true, 0.0));
  EXPECT_EQ(rlock.Acquire(milliseconds(1)), mp::LockResult::kAcquired);
  ASSERT_TRUE(rlock.Release().ok());
  ASSERT_TRUE(rlock.Release().ok());

  mp::Event event;
  EXPECT_FALSE(event.Wait(mp::Deadline::Past()));
  EXPECT_FALSE(event.Wait(milliseconds(1)));
  EXPECT_FALSE(event.Wait(0.001));
  event.Set();
  EXPECT_TRUE(event.Wait());
  EXPECT_TRUE(event.Wait(0.0));
  EXPECT_TRUE(event.Wait(std::nullopt));

  mp::Semaphore sem(0);
  EXPECT_FALSE(sem.Acquire(mp::Deadline::Past()));
  EXPECT_FALSE(sem.Acquire(milliseconds(1)));
  EXPECT_FALSE(sem.Acquire(true, 0.001));
  EXPECT_FALSE(sem.Acquire(false));
  ASSERT_TRUE(sem.Release(2).ok());
  EXPECT_TRUE(sem.Acquire());
  EXPECT_TRUE(sem.Acquire(false));

  mp::Condition cond;
  {
    std::unique_lock l(cond);
    EXPECT_FALSE(cond.Wait(mp::Deadline::Past()));
    EXPECT_FALSE(cond.Wait(milliseconds(1)));
    EXPECT_FALSE(cond.Wait(0.001));
    EXPECT_FALSE(cond.WaitFor([] { return false; }, 0.001));
    EXPECT_FALSE(cond.WaitFor([] { return false; }, milliseconds(1)));
    EXPECT_TRUE(cond.WaitFor([] { return true; }));  // true at once
  }
  EXPECT_TRUE(cond.Acquire(true, 1.0));
  ASSERT_TRUE(cond.Release().ok());

  // Barrier: a Wait that times out breaks it (Python); each form alike.
  for (int form = 0; form < 3; ++form) {
    mp::Barrier b(2);
    absl::StatusOr<int> r = form == 0   ? b.Wait(mp::Deadline::Past())
                            : form == 1 ? b.Wait(milliseconds(1))
                                        : b.Wait(0.001);
    EXPECT_TRUE(absl::IsAborted(r.status())) << form << r.status();
    EXPECT_TRUE(b.Broken());
  }
  mp::Barrier seconds_default(2, {}, 0.001);  // Python's timeout=0.001
  EXPECT_TRUE(absl::IsAborted(seconds_default.Wait().status()));
  mp::Barrier one(1, {}, 0.001);
  EXPECT_EQ(*one.Wait(std::nullopt), 0);
}

}  // namespace
