// PidLock between processes: mutual exclusion with sleeping waiters, and a
// holder killed by SIGKILL while others sleep on the lock: one of them takes
// it over (and only one), nobody hangs. The thread variant: pid_lock_test.

#include <signal.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/futex.h"
#include "mp/core/process.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/internal/ring.h"
#include "tests/queue/test_util.h"

namespace {

using mp::Deadline;
using mp::queue_internal::PidLock;

struct Shared {
  PidLock lock;
  uint64_t counter = 0;               // guarded by lock
  std::atomic<uint32_t> takeovers{0};
  std::atomic<uint32_t> holding{0};   // the victim holds the lock
};

Shared* MapShared(mp::SharedMemory& mem) {
  auto m = mp::SharedMemory::Anonymous(sizeof(Shared));
  EXPECT_TRUE(m.ok());
  mem = std::move(*m);
  return new (mem.data()) Shared();
}

TEST(PidLockProcessTest, MutualExclusionAcrossProcesses) {
  mp::SharedMemory mem;
  Shared* s = MapShared(mem);
  constexpr int kProcs = 3, kRounds = 20000;
  std::vector<std::unique_ptr<mp::Process>> procs;
  for (int p = 0; p < kProcs; ++p) {
    procs.push_back(std::make_unique<mp::Process>([s] {
      for (int i = 0; i < kRounds; ++i) {
        CHILD_CHECK(s->lock.Lock(Deadline::Infinite()) ==
                    PidLock::Acquired::kYes);
        ++s->counter;
        if (i % 64 == 0) sched_yield();
        s->lock.Unlock();
      }
    }));
    ASSERT_TRUE(procs.back()->Start().ok());
  }
  for (auto& p : procs) {
    ASSERT_TRUE(p->Join().ok());
    EXPECT_EQ(p->exitcode(), 0);
  }
  EXPECT_EQ(s->counter, uint64_t{kProcs} * kRounds);
  EXPECT_EQ(s->lock.word.load(), 0u);
  EXPECT_EQ(s->lock.waiters.load(), 0u);
}

TEST(PidLockProcessTest, HolderKilledWhileOthersSleep) {
  mp::SharedMemory mem;
  Shared* s = MapShared(mem);
  mp::Process victim([s] {
    CHILD_CHECK(s->lock.Lock(Deadline::Infinite()) == PidLock::Acquired::kYes);
    s->holding = 1;
    for (;;) pause();
  });
  ASSERT_TRUE(victim.Start().ok());
  while (s->holding.load() == 0) sched_yield();
  constexpr int kWaiters = 2;
  std::vector<std::unique_ptr<mp::Process>> waiters;
  for (int w = 0; w < kWaiters; ++w) {
    waiters.push_back(std::make_unique<mp::Process>([s] {
      PidLock::Acquired a = s->lock.Lock(Deadline::Infinite());
      CHILD_CHECK(a != PidLock::Acquired::kNo);
      if (a == PidLock::Acquired::kFromDeadHolder) s->takeovers.fetch_add(1);
      ++s->counter;
      s->lock.Unlock();
    }));
    ASSERT_TRUE(waiters.back()->Start().ok());
  }
  // Let the waiters spin out and sleep, then kill the holder.
  while (s->lock.waiters.load() == 0) sched_yield();
  ASSERT_TRUE(victim.Kill().ok());
  ASSERT_TRUE(victim.Join().ok());
  for (auto& w : waiters) {
    ASSERT_TRUE(w->Join().ok());
    EXPECT_EQ(w->exitcode(), 0);
  }
  EXPECT_EQ(s->takeovers.load(), 1u);
  EXPECT_EQ(s->counter, uint64_t{kWaiters});
  EXPECT_EQ(s->lock.word.load(), 0u);
}

}  // namespace
