#include "mp/core/shared_arena.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"

namespace mp {
namespace {

class SharedArenaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = SharedMemory::Anonymous(kSize);
    ASSERT_TRUE(m.ok()) << m.status();
    mem_ = *std::move(m);
    auto a = SharedArena::Format(mem_.data(), mem_.size());
    ASSERT_TRUE(a.ok()) << a.status();
    arena_ = *a;
  }
  static constexpr size_t kSize = 1 << 20;
  SharedMemory mem_;
  SharedArena* arena_ = nullptr;
};

TEST_F(SharedArenaTest, AllocationsAreAlignedDistinctAndWritable) {
  std::set<void*> seen;
  for (size_t size : {1, 7, 64, 65, 100, 1000, 4000}) {
    void* p = arena_->Allocate(size);
    ASSERT_NE(p, nullptr) << size;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
    std::memset(p, 0x5a, size);
    EXPECT_TRUE(seen.insert(p).second);
  }
}

TEST_F(SharedArenaTest, FreedBlocksAreReused) {
  void* a = arena_->Allocate(100);
  arena_->Deallocate(a);
  void* b = arena_->Allocate(100);
  EXPECT_EQ(a, b);
  arena_->Deallocate(b);
  size_t carved = arena_->BytesCarved();
  for (int i = 0; i < 1000; ++i) arena_->Deallocate(arena_->Allocate(100));
  EXPECT_EQ(arena_->BytesCarved(), carved);  // one block, recycled
}

TEST_F(SharedArenaTest, ExhaustionReturnsNull) {
  EXPECT_EQ(arena_->Allocate(kSize), nullptr);
  std::vector<void*> blocks;
  while (void* p = arena_->Allocate(1000)) blocks.push_back(p);
  EXPECT_GT(blocks.size(), 100u);
  arena_->Deallocate(blocks.back());
  EXPECT_NE(arena_->Allocate(1000), nullptr);  // usable again after a free
}

TEST_F(SharedArenaTest, BadAlignmentIsRefused) {
  EXPECT_EQ(arena_->Allocate(8, 128), nullptr);
  EXPECT_EQ(arena_->Allocate(8, 3), nullptr);
  EXPECT_NE(arena_->Allocate(8, 8), nullptr);
}

TEST_F(SharedArenaTest, NewAndDeleteConstructObjects) {
  struct Pair {
    int a;
    int b;
  };
  Pair* p = arena_->New<Pair>(Pair{1, 2});
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->b, 2);
  uint64_t off = arena_->OffsetOf(p);
  EXPECT_EQ(arena_->At<Pair>(off), p);
  arena_->Delete(p);
}

TEST_F(SharedArenaTest, ChildAllocatesParentSees) {
  auto* slot = arena_->New<std::atomic<uint64_t>>(0);
  pid_t pid = fork();
  if (pid == 0) {
    auto* msg = static_cast<char*>(arena_->Allocate(32));
    if (msg == nullptr) _exit(1);
    std::strcpy(msg, "from the child");
    slot->store(arena_->OffsetOf(msg));
    _exit(0);
  }
  int status;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ASSERT_NE(slot->load(), 0u);
  char* msg = arena_->At<char>(slot->load());
  EXPECT_STREQ(msg, "from the child");
  // The parent's next allocation does not overlap the child's block.
  char* mine = static_cast<char*>(arena_->Allocate(32));
  EXPECT_NE(mine, msg);
  arena_->Deallocate(msg);
}

TEST_F(SharedArenaTest, AttachValidatesTheHeader) {
  EXPECT_TRUE(SharedArena::Attach(mem_.data(), mem_.size()).ok());
  // A smaller mapping than the arena claims.
  EXPECT_EQ(SharedArena::Attach(mem_.data(), 8192).status().code(),
            absl::StatusCode::kDataLoss);
  auto other = SharedMemory::Anonymous(8192);
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(SharedArena::Attach(other->data(), other->size()).status().code(),
            absl::StatusCode::kDataLoss);
  std::memset(other->data(), 0xff, other->size());
  EXPECT_FALSE(SharedArena::Attach(other->data(), other->size()).ok());
  EXPECT_FALSE(SharedArena::Attach(nullptr, 4096).ok());
}

TEST_F(SharedArenaTest, FormatRejectsBadRegions) {
  EXPECT_FALSE(SharedArena::Format(mem_.data(), 100).ok());
  EXPECT_FALSE(
      SharedArena::Format(static_cast<char*>(mem_.data()) + 8, 8192).ok());
}

TEST_F(SharedArenaTest, DoubleFreeDies) {
  void* p = arena_->Allocate(10);
  arena_->Deallocate(p);
  EXPECT_DEATH(arena_->Deallocate(p), "double free");
  EXPECT_DEATH(arena_->Deallocate(static_cast<char*>(p) + 64),
               "did not allocate");
}

// Threads and processes hammer the lock-free free lists: every block handed
// out is owned by exactly one user at a time (checked by stamping it).
void Churn(SharedArena* arena, uint32_t stamp, int rounds, int* errors) {
  std::mt19937 rng(stamp);
  std::vector<uint32_t*> held;
  for (int i = 0; i < rounds; ++i) {
    if (held.size() < 8 && (rng() & 1)) {
      auto* p = static_cast<uint32_t*>(arena->Allocate(16 + rng() % 200));
      if (p == nullptr) continue;
      *p = stamp;
      held.push_back(p);
    } else if (!held.empty()) {
      uint32_t* p = held.back();
      held.pop_back();
      if (*p != stamp) ++*errors;
      arena->Deallocate(p);
    }
  }
  for (uint32_t* p : held) {
    if (*p != stamp) ++*errors;
    arena->Deallocate(p);
  }
}

TEST_F(SharedArenaTest, ConcurrentThreadsNeverShareABlock) {
  std::vector<std::thread> threads;
  std::vector<int> errors(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back(Churn, arena_, t + 1, 20000, &errors[t]);
  }
  for (auto& t : threads) t.join();
  for (int e : errors) EXPECT_EQ(e, 0);
}

TEST_F(SharedArenaTest, ConcurrentProcessesNeverShareABlock) {
  std::vector<pid_t> pids;
  for (int c = 0; c < 3; ++c) {
    pid_t pid = fork();
    if (pid == 0) {
      int errors = 0;
      Churn(arena_, 100 + c, 20000, &errors);
      _exit(errors == 0 ? 0 : 1);
    }
    pids.push_back(pid);
  }
  int errors = 0;
  Churn(arena_, 99, 20000, &errors);
  EXPECT_EQ(errors, 0);
  for (pid_t pid : pids) {
    int status;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
}

}  // namespace
}  // namespace mp
