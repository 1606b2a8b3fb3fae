// Named Lock, RLock, Event, Semaphore, BoundedSemaphore and Condition: the
// processes here share no handle, only a name (each child opens it anew),
// as unrelated processes would. Survivors wait without a deadline under the
// outside watchdog (tests/watchdog.h).

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"
#include "mp/sync/sync.h"
#include "tests/watchdog.h"

namespace {

using mp_test::ForkChild;
using mp_test::Watch;

std::string UniqueName(const char* what) {
  return "/mp_named_sync_test_" + std::string(what) + "_" +
         std::to_string(getpid());
}

// Anonymous shared words for the test's own bookkeeping.
struct Board {
  std::atomic<uint64_t> counter{0};
  std::atomic<int> ready{0};
  std::atomic<int> flag{0};
};

class NamedSyncTest : public ::testing::Test {
 protected:
  void TearDown() override { mp::SharedMemory::Unlink(name_).IgnoreError(); }
  std::string name_ = UniqueName("obj");
  mp::Shared<Board> board_ = mp::Shared<Board>::Make();
};

TEST_F(NamedSyncTest, LockExcludesProcessesThatOnlyShareItsName) {
  auto lock = mp::Lock::Create(name_);
  ASSERT_TRUE(lock.ok()) << lock.status();
  constexpr int kPerChild = 5000;
  pid_t kids[2];
  for (pid_t& kid : kids) {
    kid = ForkChild([&] {
      auto l = mp::Lock::Open(name_);
      if (!l.ok()) return 2;
      for (int i = 0; i < kPerChild; ++i) {
        l->lock();
        // Not atomic as a whole: only the lock keeps the increments apart.
        const uint64_t v = board_->counter.load(std::memory_order_relaxed);
        board_->counter.store(v + 1, std::memory_order_relaxed);
        l->unlock();
      }
      return 0;
    });
  }
  for (pid_t kid : kids) EXPECT_EQ(Watch(kid), "");
  EXPECT_EQ(board_->counter.load(), 2u * kPerChild);
}

TEST_F(NamedSyncTest, NamedLockReportsItsDeadOwner) {
  auto lock = mp::Lock::Create(name_);
  ASSERT_TRUE(lock.ok()) << lock.status();
  const pid_t holder = ForkChild([&] {
    auto l = mp::Lock::Open(name_);
    if (!l.ok()) return 2;
    l->lock();
    board_->ready.store(1);
    for (;;) pause();
    return 0;
  });
  while (board_->ready.load() == 0) std::this_thread::yield();
  mp_test::KillAndReap(holder);
  EXPECT_EQ(lock->Acquire(mp::Deadline::Infinite()),
            mp::LockResult::kOwnerDied);
  lock->unlock();
}

TEST_F(NamedSyncTest, RLockIsReentrantThroughItsName) {
  auto created = mp::RLock::Create(name_);
  ASSERT_TRUE(created.ok()) << created.status();
  auto opened = mp::RLock::Open(name_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  opened->lock();
  created->lock();  // the same lock, the same thread: re-entrant
  EXPECT_EQ(created->state().count(), 2u);
  created->unlock();
  opened->unlock();
  EXPECT_FALSE(created->locked());
}

TEST_F(NamedSyncTest, EventWakesAWaiterThatOpenedItByName) {
  auto event = mp::Event::Create(name_);
  ASSERT_TRUE(event.ok()) << event.status();
  const pid_t waiter = ForkChild([&] {
    auto e = mp::Event::Open(name_);
    if (!e.ok()) return 2;
    board_->ready.store(1);
    return e->Wait() ? 0 : 3;  // no deadline
  });
  while (board_->ready.load() == 0) std::this_thread::yield();
  event->Set();
  EXPECT_EQ(Watch(waiter), "");
}

TEST_F(NamedSyncTest, SemaphoreCountsAcrossProcesses) {
  auto sem = mp::Semaphore::Create(name_, 0);
  ASSERT_TRUE(sem.ok()) << sem.status();
  const pid_t waiter = ForkChild([&] {
    auto s = mp::Semaphore::Open(name_);
    if (!s.ok()) return 2;
    board_->ready.store(1);
    return s->Acquire() && s->Acquire() ? 0 : 3;  // no deadline
  });
  while (board_->ready.load() == 0) std::this_thread::yield();
  ASSERT_TRUE(sem->Release(2).ok());
  EXPECT_EQ(Watch(waiter), "");
  EXPECT_EQ(sem->GetValue(), 0);
  EXPECT_EQ(mp::Semaphore::Create(UniqueName("neg"), -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(NamedSyncTest, BoundedSemaphoreKeepsItsBoundInTheSegment) {
  auto bounded = mp::BoundedSemaphore::Create(name_, 1);
  ASSERT_TRUE(bounded.ok()) << bounded.status();
  auto opened = mp::Semaphore::Open(name_);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->Release().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(opened->Acquire(std::chrono::seconds(5)));
  EXPECT_TRUE(opened->Release().ok());
}

TEST_F(NamedSyncTest, ConditionAndItsLockShareOneName) {
  auto cond = mp::Condition::Create(name_);
  ASSERT_TRUE(cond.ok()) << cond.status();
  const pid_t waiter = ForkChild([&] {
    auto c = mp::Condition::Open(name_);
    if (!c.ok()) return 2;
    std::unique_lock l(*c);
    board_->ready.store(1);
    // No deadline: only the notifier's flag ends this.
    const bool ok = c->WaitFor([&] { return board_->flag.load() == 1; });
    return ok ? 0 : 3;
  });
  while (board_->ready.load() == 0) std::this_thread::yield();
  {
    std::unique_lock l(*cond);  // the waiter's lock: free once it waits
    board_->flag.store(1);
    cond->NotifyAll();
  }
  EXPECT_EQ(Watch(waiter), "");
}

TEST_F(NamedSyncTest, OpenRefusesWhatIsNotTheKindAskedFor) {
  auto lock = mp::Lock::Create(name_);
  ASSERT_TRUE(lock.ok()) << lock.status();
  EXPECT_EQ(mp::Lock::Create(name_).status().code(),
            absl::StatusCode::kAlreadyExists);
  auto event = mp::Event::Open(name_);
  EXPECT_EQ(event.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(event.status().message().find("segment of kind lock, expected kind event"),
            std::string::npos)
      << event.status();
  EXPECT_EQ(mp::Semaphore::Open(name_).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mp::Condition::Open(name_).status().code(),
            absl::StatusCode::kInvalidArgument);
  // An RLock's state is larger than a Lock's: same kind, another size.
  EXPECT_EQ(mp::RLock::Open(name_).status().code(),
            absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(mp::Lock::Unlink(name_).ok());
  EXPECT_EQ(mp::Lock::Open(name_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(lock->TryAcquire() == mp::LockResult::kAcquired);  // mapped
  lock->unlock();
}

TEST_F(NamedSyncTest, ForeignOrDamagedSegmentsAreDataLossNotACrash) {
  // Bytes that were never an mp header: garbage, then all zero.
  for (const int fill : {0x5a, 0x00}) {
    auto mem = mp::SharedMemory::Create(name_, 4096);
    ASSERT_TRUE(mem.ok()) << mem.status();
    std::memset(mem->data(), fill, mem->size());
    EXPECT_EQ(mp::Lock::Open(name_).status().code(),
              absl::StatusCode::kDataLoss);
    EXPECT_EQ(mp::Event::Open(name_).status().code(),
              absl::StatusCode::kDataLoss);
    ASSERT_TRUE(mp::SharedMemory::Unlink(name_).ok());
  }
  // A named queue is not a lock.
  auto q = mp::Queue<int>::Create(name_);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE(mp::Lock::Open(name_).ok());
}

TEST_F(NamedSyncTest, OpenChecksTheModeAsSharedMemoryDoes) {
  auto event = mp::Event::Create(name_, 0666);
  ASSERT_TRUE(event.ok()) << event.status();
  EXPECT_EQ(mp::Event::Open(name_).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(mp::Event::Open(name_, {.permissions = 0666}).ok());
}

}  // namespace
