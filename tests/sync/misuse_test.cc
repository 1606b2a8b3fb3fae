// Misuse and bad input: clear errors, never corruption.
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>

#include "gtest/gtest.h"
#include "mp/sync/sync.h"

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

TEST(SemaphoreMisuseDeathTest, NegativeConstructorAborts) {
  EXPECT_DEATH(mp::Semaphore(-1), "must be >= 0");
  EXPECT_DEATH(mp::BoundedSemaphore(-1), "must be >= 0");
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
  EXPECT_DEATH(mp::Barrier(0), "parties must be >= 1");
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

}  // namespace
