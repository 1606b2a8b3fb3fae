// FunctionRef: a task reference means the same function in this process, in
// a forked child and in a process that exec'd the same binary (not forked
// from us: another load address under ASLR), and refuses references it
// cannot vouch for.
#include "mp/pool/internal/function_ref.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "gtest/gtest.h"
#include "tests/watchdog.h"

namespace {

using mp::pool_internal::FunctionRef;

int Triple(int x) { return 3 * x; }
int Square(int x) { return x * x; }

TEST(FunctionRefTest, RoundTripsInThisProcess) {
  auto ref = mp::pool_internal::RefOf(&Triple);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_TRUE(ref->portable());  // Bazel's linker writes a build id
  auto p = ref->Resolve();
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(*p, reinterpret_cast<const void*>(&Triple));
  auto ref2 = mp::pool_internal::RefOf(&Square);
  ASSERT_TRUE(ref2.ok());
  EXPECT_EQ(ref2->object, ref->object);
  EXPECT_NE(ref2->offset, ref->offset);
}

TEST(FunctionRefTest, FunctionsInSharedLibrariesToo) {
  // libc's strlen lives in libc.so, another object with its own id.
  auto libc = FunctionRef::Of(reinterpret_cast<const void*>(&strlen));
  ASSERT_TRUE(libc.ok()) << libc.status();
  auto mine = mp::pool_internal::RefOf(&Triple);
  EXPECT_NE(libc->object, mine->object);
  auto p = libc->Resolve();
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(*p, reinterpret_cast<const void*>(&strlen));
}

TEST(FunctionRefTest, RefusesWhatItCannotVouchFor) {
  auto ref = mp::pool_internal::RefOf(&Triple);
  ASSERT_TRUE(ref.ok());
  FunctionRef other_build = *ref;
  other_build.object ^= 0x100;
  EXPECT_EQ(other_build.Resolve().status().code(), absl::StatusCode::kNotFound);
  FunctionRef outside = *ref;
  outside.offset = uint64_t{1} << 60;
  EXPECT_EQ(outside.Resolve().status().code(),
            absl::StatusCode::kInvalidArgument);
  int data = 0;
  EXPECT_EQ(FunctionRef::Of(&data).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(FunctionRefTest, MeansTheSameFunctionInAProcessNotForkedFromUs) {
  auto ref = mp::pool_internal::RefOf(&Square);
  ASSERT_TRUE(ref.ok());
  const std::string arg = std::to_string(ref->object) + ":" +
                          std::to_string(ref->offset);
  std::fflush(nullptr);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    setenv("MP_FUNCTION_REF_CHILD", arg.c_str(), 1);
    execl("/proc/self/exe", "function_ref_test", nullptr);
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[256];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof(buf))) > 0) out.append(buf, n);
  close(fds[0]);
  const int status = mp_test::WaitOrKill(pid);
  ASSERT_TRUE(WIFEXITED(status)) << mp_test::Describe(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(out, "49\n");  // Square(7), called through the reference there
}

}  // namespace

int main(int argc, char** argv) {
  if (const char* r = std::getenv("MP_FUNCTION_REF_CHILD")) {
    FunctionRef ref;
    if (std::sscanf(r, "%" SCNu64 ":%" SCNu64, &ref.object, &ref.offset) != 2) {
      return 2;
    }
    auto p = ref.Resolve();
    if (!p.ok()) return 3;
    auto f = reinterpret_cast<int (*)(int)>(const_cast<void*>(*p));
    std::printf("%d\n", f(7));
    return 0;
  }
  testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
