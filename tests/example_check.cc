// Runs an example binary with stdout and stderr on one pipe (as a terminal
// user or the seed's cog run sees them) and checks every line against the
// expected regular expressions. Used by examples/example_test.bzl.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace {

std::string g_binary;
std::string g_expected;

std::vector<std::string> SplitLines(const std::string& s) {
  std::vector<std::string> lines;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Runs `binary`; returns its merged output and exit status.
std::string RunMerged(const std::string& binary, int* status) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    execl(binary.c_str(), binary.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  waitpid(pid, status, 0);
  return out;
}

TEST(ExampleTest, PrintsWhatTheSeedPrints) {
  std::ifstream f(g_expected);
  ASSERT_TRUE(f) << "cannot read " << g_expected;
  std::vector<std::string> expected;
  bool unordered = false;
  // "# optional N REGEX" (unordered files): up to N more lines matching
  // REGEX may appear, for examples whose process count varies from run to
  // run (a pool replacing workers under maxtasksperchild).
  std::vector<std::pair<std::string, int>> optional;
  size_t optional_total = 0;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("# optional ", 0) == 0) {
      std::istringstream in(line.substr(11));
      int n = 0;
      in >> n;
      std::string pattern;
      std::getline(in >> std::ws, pattern);
      optional.emplace_back(pattern, n);
      optional_total += static_cast<size_t>(n);
      continue;
    }
    if (expected.empty() && line == "# unordered") {
      unordered = true;
      continue;
    }
    // "# per-cpu K REGEX": REGEX repeated K * cpu_count() times, for
    // examples that start a process per CPU (as the seeds do).
    if (line.rfind("# per-cpu ", 0) == 0) {
      std::istringstream in(line.substr(10));
      int k = 0;
      in >> k;
      std::string pattern;
      std::getline(in >> std::ws, pattern);
      long cpus = sysconf(_SC_NPROCESSORS_ONLN);
      for (long i = 0; i < k * cpus; ++i) expected.push_back(pattern);
      continue;
    }
    expected.push_back(line);
  }
  int status = 0;
  std::string out = RunMerged(g_binary, &status);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << g_binary << " exited with status " << status << "\n" << out;
  std::vector<std::string> actual = SplitLines(out);
  if (optional.empty()) {
    ASSERT_EQ(actual.size(), expected.size()) << "output was:\n" << out;
  } else {
    ASSERT_TRUE(unordered) << "# optional needs # unordered";
    ASSERT_GE(actual.size(), expected.size()) << "output was:\n" << out;
    ASSERT_LE(actual.size(), expected.size() + optional_total)
        << "output was:\n" << out;
  }
  if (!unordered) {
    for (size_t i = 0; i < actual.size(); ++i) {
      EXPECT_TRUE(std::regex_match(actual[i], std::regex(expected[i])))
          << "line " << i + 1 << ": '" << actual[i] << "' does not match '"
          << expected[i] << "'\noutput was:\n" << out;
    }
    return;
  }
  // Unordered: every expected pattern consumes one distinct actual line.
  std::vector<bool> used(actual.size(), false);
  for (const auto& pattern : expected) {
    std::regex re(pattern);
    bool found = false;
    for (size_t i = 0; i < actual.size() && !found; ++i) {
      if (!used[i] && std::regex_match(actual[i], re)) used[i] = found = true;
    }
    EXPECT_TRUE(found) << "no output line matches '" << pattern
                       << "'\noutput was:\n" << out;
  }
  for (size_t i = 0; i < actual.size(); ++i) {
    if (used[i]) continue;
    bool found = false;
    for (auto& [pattern, left] : optional) {
      if (left > 0 && std::regex_match(actual[i], std::regex(pattern))) {
        --left;
        found = true;
        break;
      }
    }
    EXPECT_TRUE(found) << "unexpected line '" << actual[i]
                       << "'\noutput was:\n" << out;
  }
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " EXAMPLE_BINARY EXPECTED_FILE\n";
    return 2;
  }
  g_binary = argv[1];
  g_expected = argv[2];
  return RUN_ALL_TESTS();
}
