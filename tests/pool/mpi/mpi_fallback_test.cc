// mp::mpi without mpirun: Init refuses with the command to use, unless
// InitOptions::allow_without_mpirun, and then mp::mpi::Pool is a one-host
// pool with the same calls.
#include <unistd.h>

#include <cstdlib>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "mp/pool/mpi/pool.h"

namespace {

int Twice(int x) { return x * 2; }
int Throws(int x) {
  if (x == 3) throw std::runtime_error("three is bad");
  return x;
}

std::vector<int> Iota(int n) {
  std::vector<int> v(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) v[static_cast<size_t>(i)] = i;
  return v;
}

TEST(MpiFallbackTest, PoolBeforeInitIsAnError) {
  EXPECT_EQ(mp::mpi::Pool::Make().status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MpiFallbackTest, InitSaysHowToStartUnlessAllowed) {
  ASSERT_EQ(std::getenv("OMPI_COMM_WORLD_SIZE"), nullptr);
  char name[] = "prog";
  char* args[] = {name, nullptr};
  char** argv = args;
  int argc = 1;
  absl::Status s = mp::mpi::Init(argc, argv);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("mpirun -n 3 prog"), absl::string_view::npos) << s;
  ASSERT_TRUE(mp::mpi::Init(argc, argv, {.allow_without_mpirun = true}).ok());
  EXPECT_FALSE(mp::mpi::Running());
  EXPECT_TRUE(mp::mpi::ServingRanks().empty());
  EXPECT_EQ(mp::mpi::Init(argc, argv, {.allow_without_mpirun = true}).code(),
            absl::StatusCode::kFailedPrecondition);  // twice
}

TEST(MpiFallbackTest, OneHostPoolHasTheSameCalls) {
  mp::mpi::Pool pool(2);
  EXPECT_EQ(pool.processes(), 2);
  EXPECT_EQ(pool.live_ranks(), 0);
  EXPECT_EQ(*pool.Map(Twice, Iota(100), 7), *pool.Map(Twice, Iota(100)));
  EXPECT_EQ((*pool.Map(Twice, Iota(100)))[99], 198);
  EXPECT_EQ(pool.Map(Throws, Iota(5)).status().code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(*pool.Apply(Twice, 4), 8);
  int n = 0;
  for (const absl::StatusOr<int>& r : pool.Imap(Twice, Iota(50))) {
    EXPECT_EQ(*r, 2 * n++);
  }
  EXPECT_EQ(n, 50);
  // An Imap still feeding after Close keeps the pool until it is done.
  auto it = pool.Imap(Twice, Iota(40), {.max_in_flight = 4});
  pool.Close();
  EXPECT_EQ(pool.Map(Twice, Iota(3)).status().code(),
            absl::StatusCode::kFailedPrecondition);
  for (int k = 0; k < 40; ++k) EXPECT_EQ(*it.Next(), 2 * k);
  EXPECT_EQ(it.Next().status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_TRUE(pool.Join().ok());
}

}  // namespace
