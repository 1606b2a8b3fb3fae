// mp::Process with real children: names, exit codes, signals, timeouts,
// misuse errors, daemons and the exit-time cleanup.

#include "mp/core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>

#include "gtest/gtest.h"
#include "mp/core/shared_memory.h"
#include "tests/core/child_stderr.h"

namespace mp {
namespace {

using namespace std::chrono_literals;

using ::mp::testing::StderrOfChild;

TEST(ProcessTest, RunsTargetWithArguments) {
  auto seen = Shared<std::atomic<int>>::Make(0);
  Process p([seen](int a, int b) { seen->store(a * b); }, 6, 7);
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(p.Join().ok());
  EXPECT_EQ(seen->load(), 42);
  EXPECT_EQ(p.exitcode(), 0);
  EXPECT_GT(p.pid(), 0);
}

TEST(ProcessTest, ExitCodesFollowPython) {
  Process ok([] {});
  Process exit3([] { Exit(3); });
  Process raises([] { throw std::runtime_error("boom"); });
  Process throws_int([] { throw 5; });
  Process aborts([] { std::abort(); });
  Process std_exit([] { std::exit(4); });
  for (Process* p : {&ok, &exit3, &raises, &throws_int, &aborts, &std_exit}) {
    ASSERT_TRUE(p->Start().ok());
  }
  for (Process* p : {&ok, &exit3, &raises, &throws_int, &aborts, &std_exit}) {
    ASSERT_TRUE(p->Join().ok());
  }
  EXPECT_EQ(ok.exitcode(), 0);
  EXPECT_EQ(exit3.exitcode(), 3);
  EXPECT_EQ(raises.exitcode(), 1);
  EXPECT_EQ(throws_int.exitcode(), 1);
  EXPECT_EQ(aborts.exitcode(), -SIGABRT);
  EXPECT_EQ(std_exit.exitcode(), 4);
}

TEST(ProcessTest, UncaughtExceptionMessageGoesToStderr) {
  int status = 0;
  std::string err = StderrOfChild(
      [] {
        Process p({.name = "raiser"},
                  [] { throw std::invalid_argument("bad thing"); });
        if (!p.Start().ok() || !p.Join().ok()) std::exit(9);
        std::exit(*p.exitcode());
      },
      &status);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_NE(err.find("Process raiser:\nstd::invalid_argument: bad thing\n"),
            std::string::npos)
      << err;
}

TEST(ProcessTest, SignalsGiveNegativeExitCodes) {
  Process t([] { std::this_thread::sleep_for(60s); });
  Process k([] { std::this_thread::sleep_for(60s); });
  ASSERT_TRUE(t.Start().ok());
  ASSERT_TRUE(k.Start().ok());
  EXPECT_TRUE(t.IsAlive());
  EXPECT_EQ(t.exitcode(), std::nullopt);
  ASSERT_TRUE(t.Terminate().ok());
  ASSERT_TRUE(k.Kill().ok());
  ASSERT_TRUE(t.Join().ok());
  ASSERT_TRUE(k.Join().ok());
  EXPECT_EQ(t.exitcode(), -SIGTERM);
  EXPECT_EQ(k.exitcode(), -SIGKILL);
  EXPECT_FALSE(t.IsAlive());
  EXPECT_EQ(t.ToString(), "<Process(" + t.name() + ", stopped[SIGTERM])>");
  // Signalling a process that has exited is harmless.
  EXPECT_TRUE(t.Terminate().ok());
  EXPECT_TRUE(k.Kill().ok());
}

TEST(ProcessTest, JoinThatTimesOutIsNotAnError) {
  Process p([] { std::this_thread::sleep_for(60s); });
  ASSERT_TRUE(p.Start().ok());
  // As Python's join(timeout) returns None: OK, and the child still runs.
  absl::Status s = p.Join(50ms);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_TRUE(p.IsAlive());
  EXPECT_EQ(p.exitcode(), std::nullopt);
  EXPECT_TRUE(p.Join(Deadline::Past()).ok());
  EXPECT_TRUE(p.Join(0.01).ok());  // Python's seconds
  EXPECT_TRUE(p.Join(-1.0).ok());  // a negative timeout: a poll, as Python
  EXPECT_TRUE(p.IsAlive());
  ASSERT_TRUE(p.Kill().ok());
  EXPECT_TRUE(p.Join(10s).ok());
  EXPECT_FALSE(p.IsAlive());
  EXPECT_EQ(p.exitcode(), -SIGKILL);
  EXPECT_TRUE(p.Join().ok());  // joining again is fine
  EXPECT_TRUE(p.Join(std::nullopt).ok());
}

TEST(ProcessTest, IdentIsThePidAndNoneBeforeStart) {
  Process p([] {});
  EXPECT_EQ(p.ident(), std::nullopt);
  EXPECT_EQ(p.pid(), 0);
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(p.ident().has_value());
  EXPECT_GT(*p.ident(), 0);
  EXPECT_EQ(*p.ident(), p.pid());
  ASSERT_TRUE(p.Join().ok());
  EXPECT_EQ(*p.ident(), p.pid());  // kept after exit, as Python
}

TEST(ProcessTest, CloseRefusesARunningProcess) {
  Process p([] { std::this_thread::sleep_for(60s); });
  ASSERT_TRUE(p.Start().ok());
  absl::Status s = p.Close();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_FALSE(p.closed());
  EXPECT_TRUE(p.IsAlive());  // unchanged: still usable
  EXPECT_GE(p.sentinel(), 0);
  ASSERT_TRUE(p.Terminate().ok());
  ASSERT_TRUE(p.Join().ok());
  EXPECT_TRUE(p.Close().ok());
  EXPECT_TRUE(p.closed());
}

TEST(ProcessTest, ClosedProcessReportsEveryUse) {
  Process p({.name = "closing"}, [] {});
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(p.Join().ok());
  const int pidfd = p.sentinel();
  ASSERT_TRUE(p.Close().ok());
  EXPECT_TRUE(p.Close().ok());  // again: fine, as Python
  if (pidfd >= 0) {
    // The pidfd was released (nothing else in this test opens files).
    EXPECT_EQ(fcntl(pidfd, F_GETFD), -1);
  }
  for (absl::Status s : {p.Start(), p.Join(), p.Join(0.0), p.Terminate(),
                         p.Kill(), p.set_daemon(true)}) {
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
    EXPECT_EQ(s.message(), "process object is closed");
  }
  EXPECT_EQ(p.name(), "closing");
  EXPECT_EQ(p.ToString(), "<Process(closing, closed)>");
}

TEST(ProcessDeathTest, AccessorsAbortAfterClose) {
  Process p([] {});
  ASSERT_TRUE(p.Close().ok());  // before Start: allowed, as Python
  EXPECT_DEATH(p.IsAlive(), "IsAlive: process object is closed");
  EXPECT_DEATH(p.exitcode(), "exitcode: process object is closed");
  EXPECT_DEATH(p.pid(), "pid: process object is closed");
  EXPECT_DEATH(p.ident(), "ident: process object is closed");
  EXPECT_DEATH(p.sentinel(), "sentinel: process object is closed");
}

TEST(ProcessTest, SentinelIsReadableOnExit) {
  Process p([] { std::this_thread::sleep_for(50ms); });
  EXPECT_EQ(p.sentinel(), -1);
  ASSERT_TRUE(p.Start().ok());
  ASSERT_GE(p.sentinel(), 0);
  pollfd pfd{p.sentinel(), POLLIN, 0};
  EXPECT_EQ(poll(&pfd, 1, 10000), 1);
  ASSERT_TRUE(p.Join().ok());
}

TEST(ProcessTest, MisuseIsReported) {
  Process never([] {});
  EXPECT_EQ(never.Join().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(never.Terminate().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(never.IsAlive());
  EXPECT_EQ(never.exitcode(), std::nullopt);
  EXPECT_EQ(never.pid(), 0);

  Process p([] {});
  ASSERT_TRUE(p.Start().ok());
  absl::Status twice = p.Start();
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(twice.message(), "cannot start a process twice");
  EXPECT_EQ(p.set_daemon(true).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(p.Join().ok());
}

TEST(ProcessTest, ChildCannotJoinItselfOrASibling) {
  auto result = Shared<std::atomic<int>>::Make(0);
  Process sibling([] { std::this_thread::sleep_for(100ms); });
  ASSERT_TRUE(sibling.Start().ok());
  Process* self_ptr = nullptr;
  Process self([&] {
    int bits = 0;
    absl::Status self_join = self_ptr->Join();
    if (self_join.code() == absl::StatusCode::kFailedPrecondition &&
        self_join.message() == "a process cannot join itself") {
      bits |= 1;
    }
    absl::Status sibling_join = sibling.Join();
    if (sibling_join.code() == absl::StatusCode::kFailedPrecondition &&
        sibling_join.message() == "can only join a child process") {
      bits |= 2;
    }
    if (self_ptr->IsAlive()) bits |= 4;
    result->store(bits);
  });
  self_ptr = &self;
  ASSERT_TRUE(self.Start().ok());
  ASSERT_TRUE(self.Join().ok());
  ASSERT_TRUE(sibling.Join().ok());
  EXPECT_EQ(result->load(), 7);
}

TEST(ProcessTest, DaemonCannotStartChildren) {
  auto code = Shared<std::atomic<int>>::Make(-1);
  Process d({.daemon = true}, [code] {
    Process inner([] {});
    absl::Status s = inner.Start();
    code->store(static_cast<int>(s.code()));
  });
  EXPECT_TRUE(d.daemon());
  ASSERT_TRUE(d.Start().ok());
  ASSERT_TRUE(d.Join().ok());
  EXPECT_EQ(code->load(), static_cast<int>(absl::StatusCode::kFailedPrecondition));
}

TEST(ProcessTest, DefaultNamesCountProcessObjects) {
  Process a([] {});
  Process b([] {});
  // Names are Process-N with N counting every Process made here.
  int na = std::stoi(a.name().substr(a.name().find('-') + 1));
  int nb = std::stoi(b.name().substr(b.name().find('-') + 1));
  EXPECT_EQ(a.name().substr(0, 8), "Process-");
  EXPECT_EQ(nb, na + 1);
  Process named({.name = "svc"}, [] {});
  EXPECT_EQ(named.name(), "svc");
  named.set_name("renamed");
  EXPECT_EQ(named.name(), "renamed");
}

class Worker : public Process {
 public:
  explicit Worker(Shared<std::atomic<int>> hits) : hits_(hits) {}
  void Run() override { hits_->fetch_add(1); }

 private:
  Shared<std::atomic<int>> hits_;
};

TEST(ProcessTest, SubclassRunsRunAndIsNamedAfterItsClass) {
  auto hits = Shared<std::atomic<int>>::Make(0);
  Worker w(hits);
  EXPECT_EQ(w.name().rfind("Worker-", 0), 0u) << w.name();
  EXPECT_EQ(w.ToString(), "<Worker(" + w.name() + ", initial)>");
  ASSERT_TRUE(w.Start().ok());
  ASSERT_TRUE(w.Join().ok());
  EXPECT_EQ(hits->load(), 1);
  EXPECT_EQ(w.ToString(), "<Worker(" + w.name() + ", stopped)>");
}

TEST(ProcessTest, ReprShowsStateAndDaemonFlag) {
  Process p({.name = "x", .daemon = true}, [] { Exit(2); });
  EXPECT_EQ(p.ToString(), "<Process(x, initial daemon)>");
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(p.Join().ok());
  EXPECT_EQ(p.ToString(), "<Process(x, stopped[exitcode=2] daemon)>");
}

struct Names {
  char current[64];
  char parent[64];
  char nested[64];
  int parent_pid;
  int parent_is_main;
};

TEST(ProcessTest, CurrentAndParentProcess) {
  EXPECT_EQ(current_process().name(), "MainProcess");
  EXPECT_EQ(current_process().pid(), getpid());
  EXPECT_FALSE(parent_process().has_value());
  auto names = Shared<Names>::Make();
  Process p({.name = "kid"}, [names] {
    std::snprintf(names->current, 64, "%s", current_process().name().c_str());
    auto parent = parent_process();
    std::snprintf(names->parent, 64, "%s",
                  parent ? parent->name().c_str() : "none");
    names->parent_pid = parent ? parent->pid() : 0;
    Process nested([] {});
    std::snprintf(names->nested, 64, "%s", nested.name().c_str());
  });
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(p.Join().ok());
  EXPECT_STREQ(names->current, "kid");
  EXPECT_STREQ(names->parent, "MainProcess");
  EXPECT_EQ(names->parent_pid, getpid());
  // A child numbers its own children under its identity, as Python does.
  std::string nested = names->nested;
  EXPECT_EQ(nested.rfind("Process-", 0), 0u) << nested;
  EXPECT_NE(nested.find(":1"), std::string::npos) << nested;
}

TEST(ProcessTest, ActiveChildrenListsRunningOnes) {
  Process quick({.name = "quick"}, [] {});
  Process slow({.name = "slow"}, [] { std::this_thread::sleep_for(60s); });
  ASSERT_TRUE(quick.Start().ok());
  ASSERT_TRUE(slow.Start().ok());
  ASSERT_TRUE(quick.Join().ok());
  auto kids = active_children();
  ASSERT_EQ(kids.size(), 1u);
  EXPECT_EQ(kids[0].name(), "slow");
  EXPECT_EQ(kids[0].pid(), slow.pid());
  ASSERT_TRUE(slow.Kill().ok());
  ASSERT_TRUE(slow.Join().ok());
  EXPECT_TRUE(active_children().empty());
  EXPECT_GE(cpu_count(), 1);
}

TEST(ProcessTest, ChildStdinIsDevNull) {
  auto got = Shared<std::atomic<int>>::Make(-2);
  Process p([got] {
    char c;
    got->store(static_cast<int>(read(STDIN_FILENO, &c, 1)));
  });
  ASSERT_TRUE(p.Start().ok());
  ASSERT_TRUE(p.Join().ok());
  EXPECT_EQ(got->load(), 0);  // EOF at once
}

// --- What happens to children when their parent goes ----------------------

// The test process adopts orphans (PR_SET_CHILD_SUBREAPER) so it can reap a
// grandchild and see how it died.
class ParentExitTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0); }
  void TearDown() override { prctl(PR_SET_CHILD_SUBREAPER, 0); }

  // Forks an intermediate parent that runs `body(write_fd)`; returns its pid
  // and the read end of a pipe the grandchild reports its pid through.
  pid_t StartParent(const std::function<void(int)>& body, int* read_fd) {
    int fds[2];
    EXPECT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      body(fds[1]);
      std::exit(0);  // normal exit: atexit handlers run
    }
    close(fds[1]);
    *read_fd = fds[0];
    return pid;
  }

  static pid_t ReadPid(int fd) {
    pid_t pid = 0;
    EXPECT_EQ(read(fd, &pid, sizeof pid), static_cast<ssize_t>(sizeof pid));
    return pid;
  }

  static int WaitStatus(pid_t pid) {
    int status = 0;
    EXPECT_EQ(waitpid(pid, &status, 0), pid);
    return status;
  }
};

void SleepForever(int fd) {
  pid_t me = getpid();
  (void)!write(fd, &me, sizeof me);
  std::this_thread::sleep_for(600s);
}

TEST_F(ParentExitTest, DaemonIsKilledWhenParentIsKilled) {
  int fd;
  pid_t parent = StartParent(
      [](int wfd) {
        Process d({.daemon = true}, SleepForever, wfd);
        if (!d.Start().ok()) std::exit(3);
        std::this_thread::sleep_for(600s);
      },
      &fd);
  pid_t daemon = ReadPid(fd);
  close(fd);
  kill(parent, SIGKILL);
  EXPECT_TRUE(WIFSIGNALED(WaitStatus(parent)));
  int status = WaitStatus(daemon);  // adopted by us; must not hang
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST_F(ParentExitTest, DaemonIsTerminatedAtNormalExit) {
  int fd;
  pid_t parent = StartParent(
      [](int wfd) {
        // The daemon reports its pid to the test, then to us: we exit only
        // once it is running (and reported), whatever the timing.
        int ready[2];
        if (pipe(ready) != 0) std::exit(4);
        Process d(
            {.daemon = true},
            [](int wfd, int ready_fd) {
              pid_t me = getpid();
              (void)!write(wfd, &me, sizeof me);
              (void)!write(ready_fd, "r", 1);
              std::this_thread::sleep_for(600s);
            },
            wfd, ready[1]);
        if (!d.Start().ok()) std::exit(3);
        char c;
        if (read(ready[0], &c, 1) != 1) std::exit(5);
      },
      &fd);
  pid_t daemon = ReadPid(fd);
  close(fd);
  int parent_status = WaitStatus(parent);
  EXPECT_TRUE(WIFEXITED(parent_status) && WEXITSTATUS(parent_status) == 0);
  // The parent reaped its daemon on the way out: it is gone.
  EXPECT_EQ(kill(daemon, 0), -1);
  EXPECT_EQ(errno, ESRCH);
}

TEST_F(ParentExitTest, NonDaemonIsJoinedAtNormalExit) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t parent = fork();
  if (parent == 0) {
    close(fds[0]);
    int wfd = fds[1];
    Process child([wfd] {
      std::this_thread::sleep_for(200ms);
      (void)!write(wfd, "c", 1);
    });
    if (!child.Start().ok()) std::exit(3);
    close(wfd);
    std::exit(0);  // without joining: exit must join the child first
  }
  close(fds[1]);
  int status = WaitStatus(parent);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  // The child wrote before the parent was allowed to finish exiting.
  fcntl(fds[0], F_SETFL, O_NONBLOCK);
  char c = 0;
  EXPECT_EQ(read(fds[0], &c, 1), 1);
  EXPECT_EQ(c, 'c');
  close(fds[0]);
}

}  // namespace
}  // namespace mp
