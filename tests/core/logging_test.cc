#include "mp/core/logging.h"

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

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

TEST(LoggingTest, ExitJoinsAndTerminatesWithLogLines) {
  std::string err = StderrOf([] {
    log_to_stderr(INFO);
    // n lives exactly as long as d: it reads a pipe whose only writer is d
    // until end of file. So at exit n is still running when the daemon is
    // terminated, and it is joined after that, whatever the timing.
    static int fds[2];
    if (pipe(fds) != 0) std::exit(2);
    static Process d({.name = "d", .daemon = true}, [] {
      for (;;) pause();
    });
    if (!d.Start().ok()) std::exit(2);
    close(fds[1]);
    static Process n({.name = "n"}, [] {
      // (A watchdog's bound: should exit never terminate d, n still ends
      // and the missing line fails the test instead of hanging it.)
      pollfd pfd{fds[0], POLLIN, 0};
      while (poll(&pfd, 1, 20000) < 0 && errno == EINTR) {
      }
    });
    if (!n.Start().ok()) std::exit(2);
  });
  EXPECT_NE(err.find("[INFO/MainProcess] calling terminate() for daemon d\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("[INFO/MainProcess] calling join() for process n\n"),
            std::string::npos)
      << err;
}

}  // namespace
}  // namespace mp
