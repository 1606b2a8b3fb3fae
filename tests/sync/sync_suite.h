// tests/sync/sync_suite.h
// -----------------------------------------------------------------------------
// One suite for every primitive, run twice: between forked processes
// (sync_process_test) and between threads (sync_thread_test, under tsan).
// The same resident state serves both. A worker reports failure by
// aborting (SYNC_CHECK), which fails a process's exit code or the test.

#ifndef TESTS_SYNC_SYNC_SUITE_H_
#define TESTS_SYNC_SYNC_SUITE_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/process.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/sync.h"

#define SYNC_CHECK(cond)                                              \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__,     \
                   __LINE__, #cond);                                  \
      std::abort();                                                   \
    }                                                                 \
  } while (0)

namespace mp_test {

// Runs fn(0..n-1) concurrently in n child processes; reaps them all.
struct ProcessRunner {
  static constexpr const char* kName = "processes";
  static void Run(int n, const std::function<void(int)>& fn) {
    std::vector<mp::Process> ps;
    for (int i = 0; i < n; ++i) ps.emplace_back(fn, i);
    for (auto& p : ps) ASSERT_TRUE(p.Start().ok());
    for (auto& p : ps) {
      ASSERT_TRUE(p.Join().ok());
      EXPECT_EQ(p.exitcode(), 0);
    }
  }
};

// Runs fn(0..n-1) concurrently in n threads.
struct ThreadRunner {
  static constexpr const char* kName = "threads";
  static void Run(int n, const std::function<void(int)>& fn) {
    std::vector<std::thread> ts;
    for (int i = 0; i < n; ++i) ts.emplace_back(fn, i);
    for (auto& t : ts) t.join();
  }
};

struct Counters {
  int64_t value;
  std::atomic<int32_t> active;
  std::atomic<int32_t> max_active;
  std::atomic<int32_t> flag;
  std::atomic<int32_t> hits;
};

template <class Runner>
class SyncSuite : public ::testing::Test {
 protected:
  void Run(int n, const std::function<void(int)>& fn) { Runner::Run(n, fn); }
  mp::Shared<Counters> c_ = mp::Shared<Counters>::Make();
};

TYPED_TEST_SUITE_P(SyncSuite);

TYPED_TEST_P(SyncSuite, LockMutualExclusion) {
  mp::Lock lock;
  auto c = this->c_;
  constexpr int kWorkers = 4, kIters = 20000;
  this->Run(kWorkers, [=](int) mutable {
    for (int i = 0; i < kIters; ++i) {
      std::lock_guard g(lock);
      ++c->value;
    }
  });
  EXPECT_EQ(c->value, int64_t{kWorkers} * kIters);
  EXPECT_FALSE(lock.locked());
}

TYPED_TEST_P(SyncSuite, RLockReentrantMutualExclusion) {
  mp::RLock lock;
  auto c = this->c_;
  constexpr int kWorkers = 3, kIters = 5000;
  this->Run(kWorkers, [=](int) mutable {
    for (int i = 0; i < kIters; ++i) {
      std::lock_guard g1(lock);
      std::lock_guard g2(lock);
      SYNC_CHECK(lock.state().count() == 2);
      ++c->value;
    }
  });
  EXPECT_EQ(c->value, int64_t{kWorkers} * kIters);
}

TYPED_TEST_P(SyncSuite, LockTimeoutWhileHeldElsewhere) {
  mp::Lock lock;
  mp::Event held, done;
  this->Run(2, [=](int i) mutable {
    if (i == 0) {
      lock.lock();
      held.Set();
      SYNC_CHECK(done.Wait(std::chrono::seconds(20)));
      lock.unlock();
    } else {
      SYNC_CHECK(held.Wait(std::chrono::seconds(20)));
      SYNC_CHECK(!lock.try_lock());
      SYNC_CHECK(!lock.try_lock_for(std::chrono::milliseconds(20)));
      SYNC_CHECK(lock.Acquire(mp::Deadline::Past()) == mp::LockResult::kTimedOut);
      done.Set();
      SYNC_CHECK(lock.Acquire(std::chrono::seconds(20)) ==
                 mp::LockResult::kAcquired);
      SYNC_CHECK(lock.Release().ok());
    }
  });
}

TYPED_TEST_P(SyncSuite, ConditionNotifyAllWithPredicate) {
  mp::Condition cond;
  auto c = this->c_;
  constexpr int kWaiters = 3;
  this->Run(kWaiters + 1, [=](int i) mutable {
    std::unique_lock l(cond);
    if (i < kWaiters) {
      c->hits.fetch_add(1);
      SYNC_CHECK(cond.WaitFor([&] { return c->flag.load() == 1; },
                              std::chrono::seconds(20)));
    } else {
      l.unlock();
      while (c->hits.load() < kWaiters) std::this_thread::yield();
      l.lock();
      c->flag.store(1);
      cond.NotifyAll();
    }
  });
}

TYPED_TEST_P(SyncSuite, ConditionProducerConsumer) {
  mp::Lock lock;
  mp::Condition cond(lock);
  auto c = this->c_;
  constexpr int kItems = 2000;
  this->Run(2, [=](int i) mutable {
    for (int n = 0; n < kItems; ++n) {
      std::unique_lock l(cond);
      if (i == 0) {  // producer: value 0 -> 1
        cond.WaitFor([&] { return c->value == 0; });
        c->value = 1;
      } else {       // consumer: 1 -> 0
        cond.WaitFor([&] { return c->value == 1; });
        c->value = 0;
        c->hits.fetch_add(1);
      }
      cond.Notify();
    }
  });
  EXPECT_EQ(c->hits.load(), kItems);
}

TYPED_TEST_P(SyncSuite, ConditionSequenceWrapAround) {
  // The sequence word starts just below UINT32_MAX and wraps mid-test.
  auto cond = mp::Shared<mp::ResidentCondition>::Make(UINT32_MAX - 5);
  auto lock = mp::Shared<mp::ResidentLock>::Make();
  auto c = this->c_;
  constexpr int kRounds = 50;
  this->Run(2, [=](int i) {
    for (int n = 0; n < kRounds; ++n) {
      lock->Acquire();
      while (c->value % 2 != i) cond->Wait(*lock);
      ++c->value;
      cond->Notify();
      SYNC_CHECK(lock->Release().ok());
    }
  });
  EXPECT_EQ(c->value, 2 * kRounds);
  EXPECT_LT(cond->seq_for_testing(), 1000u);  // it wrapped
}

TYPED_TEST_P(SyncSuite, ConditionWaitTimesOut) {
  mp::Condition cond;
  this->Run(2, [=](int) mutable {
    std::unique_lock l(cond);
    SYNC_CHECK(!cond.Wait(std::chrono::milliseconds(10)));
    SYNC_CHECK(!cond.Wait(mp::Deadline::Past()));
    SYNC_CHECK(!cond.WaitFor([] { return false; }, std::chrono::milliseconds(5)));
  });
}

TYPED_TEST_P(SyncSuite, EventWakesAllWaiters) {
  mp::Event e;
  auto c = this->c_;
  this->Run(4, [=](int i) mutable {
    if (i == 0) {
      while (c->hits.load() < 3) std::this_thread::yield();
      e.Set();
    } else {
      // Nobody sets it before every waiter has counted itself here.
      SYNC_CHECK(!e.IsSet());
      SYNC_CHECK(!e.Wait(mp::Deadline::Past()));
      c->hits.fetch_add(1);
      SYNC_CHECK(e.Wait(std::chrono::seconds(20)));
      SYNC_CHECK(e.IsSet());
    }
  });
  e.Clear();
  EXPECT_FALSE(e.IsSet());
  EXPECT_FALSE(e.Wait(std::chrono::milliseconds(5)));
  EXPECT_FALSE(e.Wait(mp::Deadline::Past()));
}

TYPED_TEST_P(SyncSuite, SemaphoreLimitsConcurrency) {
  mp::Semaphore s(2);
  auto c = this->c_;
  this->Run(4, [=](int) mutable {
    for (int n = 0; n < 300; ++n) {
      std::lock_guard g(s);
      int a = c->active.fetch_add(1) + 1;
      int m = c->max_active.load();
      while (a > m && !c->max_active.compare_exchange_weak(m, a)) {
      }
      c->active.fetch_sub(1);
    }
  });
  EXPECT_LE(c->max_active.load(), 2);
  EXPECT_EQ(s.GetValue(), 2);
}

TYPED_TEST_P(SyncSuite, SemaphoreHandOff) {
  mp::Semaphore ping(0), pong(0);
  this->Run(2, [=](int i) mutable {
    for (int n = 0; n < 1000; ++n) {
      if (i == 0) {
        ping.release();
        SYNC_CHECK(pong.try_acquire_for(std::chrono::seconds(20)));
      } else {
        SYNC_CHECK(ping.Acquire(std::chrono::seconds(20)));
        SYNC_CHECK(pong.Release().ok());
      }
    }
  });
  EXPECT_FALSE(ping.TryAcquire());
  EXPECT_FALSE(pong.Acquire(std::chrono::milliseconds(5)));
}

TYPED_TEST_P(SyncSuite, BarrierRoundsRunActionOnce) {
  auto c = this->c_;
  mp::Barrier b(3, [c] { c->hits.fetch_add(1); });
  constexpr int kRounds = 100;
  this->Run(3, [=](int) mutable {
    for (int n = 0; n < kRounds; ++n) {
      absl::StatusOr<int> index = b.Wait(std::chrono::seconds(20));
      SYNC_CHECK(index.ok());
      SYNC_CHECK(*index >= 0 && *index < 3);
      c->active.fetch_add(1 << (8 * *index));
    }
  });
  EXPECT_EQ(c->hits.load(), kRounds);
  // Every round handed out each index once.
  EXPECT_EQ(c->active.load(), kRounds * (1 + (1 << 8) + (1 << 16)));
  EXPECT_FALSE(b.Broken());
}

TYPED_TEST_P(SyncSuite, BarrierAbortBreaksWaiters) {
  mp::Barrier b(3);
  auto c = this->c_;
  this->Run(3, [=](int i) mutable {
    if (i == 2) {
      while (b.NWaiting() < 2) std::this_thread::yield();
      b.Abort();
    } else {
      absl::StatusOr<int> r = b.Wait(std::chrono::seconds(20));
      SYNC_CHECK(absl::IsAborted(r.status()));
    }
  });
  EXPECT_TRUE(b.Broken());
  EXPECT_TRUE(absl::IsAborted(b.Wait().status()));
  b.Reset();
  EXPECT_FALSE(b.Broken());
}

TYPED_TEST_P(SyncSuite, BarrierTimeoutBreaksAndResetRestores) {
  mp::Barrier b(2);
  EXPECT_TRUE(absl::IsAborted(b.Wait(std::chrono::milliseconds(10)).status()));
  EXPECT_TRUE(b.Broken());
  b.Reset();
  this->Run(2, [=](int) mutable {
    SYNC_CHECK(b.Wait(std::chrono::seconds(20)).ok());
  });
  // Reset while one party waits: it gets the broken error.
  this->Run(2, [=](int i) mutable {
    if (i == 0) {
      SYNC_CHECK(absl::IsAborted(b.Wait(std::chrono::seconds(20)).status()));
    } else {
      while (b.NWaiting() < 1) std::this_thread::yield();
      b.Reset();
    }
  });
  EXPECT_FALSE(b.Broken());
  this->Run(2, [=](int) mutable {
    SYNC_CHECK(b.Wait(std::chrono::seconds(20)).ok());
  });
}

REGISTER_TYPED_TEST_SUITE_P(SyncSuite, LockMutualExclusion,
                            RLockReentrantMutualExclusion,
                            LockTimeoutWhileHeldElsewhere,
                            ConditionNotifyAllWithPredicate,
                            ConditionProducerConsumer,
                            ConditionSequenceWrapAround, ConditionWaitTimesOut,
                            EventWakesAllWaiters, SemaphoreLimitsConcurrency,
                            SemaphoreHandOff, BarrierRoundsRunActionOnce,
                            BarrierAbortBreaksWaiters,
                            BarrierTimeoutBreaksAndResetRestores);

}  // namespace mp_test

#endif  // TESTS_SYNC_SYNC_SUITE_H_
