#include "mp/core/logging.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "gtest/gtest.h"
#include "mp/core/process.h"
#include "tests/core/child_stderr.h"

namespace mp {
namespace {

std::string StderrOf(void (*body)()) { return testing::StderrOfChild(body); }

TEST(LoggingTest, LevelNames) {
  EXPECT_EQ(LevelName(DEBUG), "DEBUG");
  EXPECT_EQ(LevelName(SUBWARNING), "SUBWARNING");
  EXPECT_EQ(LevelName(7), "Level 7");
}

TEST(LoggingTest, NothingWithoutAHandler) {
  EXPECT_EQ(StderrOf([] {
              get_logger().SetLevel(DEBUG);
              get_logger().Error("invisible %d", 1);
            }),
            "");
}

TEST(LoggingTest, NotsetPassesWarningsOnly) {
  EXPECT_EQ(StderrOf([] {
              log_to_stderr();
              get_logger().Info("hidden");
              get_logger().Warning("shown %s", "here");
              get_logger().RemoveHandlers();
            }),
            "[WARNING/MainProcess] shown here\n");
}

TEST(LoggingTest, ChildLinesCarryTheChildName) {
  std::string err = StderrOf([] {
    log_to_stderr(INFO);
    Process p({.name = "kid"}, [] { get_logger().Info("hello"); });
    if (!p.Start().ok() || !p.Join().ok()) std::exit(2);
    get_logger().Debug("dropped");
  });
  EXPECT_NE(err.find("[INFO/kid] child process calling self.run()\n"
                     "[INFO/kid] hello\n"
                     "[INFO/kid] process shutting down\n"
                     "[INFO/kid] process exiting with exitcode 0\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("[INFO/MainProcess] process shutting down\n"),
            std::string::npos)
      << err;
  EXPECT_EQ(err.find("dropped"), std::string::npos);
}

// At exit a daemon is terminated and a live child joined, each with its
// line. The child n runs until the test has read its join line, and only
// then does the test end it: no timing decides whether n is still alive
// when the exiting parent gets to it.
TEST(LoggingTest, ExitJoinsAndTerminatesWithLogLines) {
  int err_pipe[2], pid_pipe[2];
  ASSERT_EQ(pipe(err_pipe), 0);
  ASSERT_EQ(pipe(pid_pipe), 0);
  std::fflush(nullptr);
  const pid_t parent = fork();
  ASSERT_GE(parent, 0);
  if (parent == 0) {
    dup2(err_pipe[1], STDERR_FILENO);
    close(err_pipe[0]);
    close(err_pipe[1]);
    close(pid_pipe[0]);
    static int report_fd = pid_pipe[1];
    log_to_stderr(INFO);
    static Process d({.name = "d", .daemon = true}, [] {
      for (;;) pause();
    });
    static Process n({.name = "n"}, [] {
      const pid_t me = getpid();
      (void)!write(report_fd, &me, sizeof me);
      for (;;) pause();
    });
    if (!d.Start().ok() || !n.Start().ok()) std::exit(2);
    close(report_fd);
    std::exit(0);  // exit terminates d, then joins n
  }
  close(err_pipe[1]);
  close(pid_pipe[1]);
  pid_t n = 0;
  EXPECT_EQ(read(pid_pipe[0], &n, sizeof n), static_cast<ssize_t>(sizeof n));
  close(pid_pipe[0]);
  // Read the parent's stderr; end n once its join is logged. A stall of
  // 10 s (no line, parent not exiting) is a hang: end everything.
  const std::string join_n = "[INFO/MainProcess] calling join() for process n\n";
  std::string err;
  bool n_ended = false;
  for (;;) {
    pollfd pfd{err_pipe[0], POLLIN, 0};
    const int ready = poll(&pfd, 1, 10000);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      ADD_FAILURE() << "the exiting parent stalled; stderr so far:\n" << err;
      break;
    }
    char buf[1024];
    const ssize_t got = read(err_pipe[0], buf, sizeof buf);
    if (got <= 0) break;
    err.append(buf, static_cast<size_t>(got));
    if (!n_ended && err.find(join_n) != std::string::npos) {
      kill(n, SIGKILL);  // its parent reaps it
      n_ended = true;
    }
  }
  close(err_pipe[0]);
  if (!n_ended && n > 0) kill(n, SIGKILL);
  int status = 0;
  if (!n_ended) kill(parent, SIGKILL);
  ASSERT_EQ(waitpid(parent, &status, 0), parent);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_NE(err.find("[INFO/MainProcess] calling terminate() for daemon d\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(join_n), std::string::npos) << err;
}

}  // namespace
}  // namespace mp
