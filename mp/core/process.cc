#include "mp/core/process.h"

#include <cxxabi.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>  // pthread_atfork only: a fork hook, not a lock
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <thread>
#include <typeinfo>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "mp/core/logging.h"

namespace mp {
namespace core_internal {

// A process-local spin lock. Not a std::mutex: it must be safe to re-create
// in a forked child whatever another thread of the parent was doing.
class SpinLock {
 public:
  void lock() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) sched_yield();
    }
  }
  void unlock() { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

struct ProcessState {
  ~ProcessState() {
    if (pidfd >= 0) close(pidfd);
  }
  SpinLock mu;               // guards reaping and the fields below
  std::string name;          // empty until first asked for
  std::string class_name;    // demangled type of the Process object
  std::vector<int> identity;
  bool daemon = false;
  bool started = false;
  pid_t pid = 0;
  pid_t parent_pid = 0;
  int pidfd = -1;
  std::optional<int> exitcode;
  bool lost = false;  // reaped by someone else (waitpid(-1) elsewhere)
  std::atomic<bool> closed{false};  // Close() succeeded: the object is spent
};

namespace {

// Everything this process knows about itself and its children. Replaced
// wholesale in a forked child: the parent's children are not the child's.
struct Globals {
  SpinLock mu;
  std::string name = "MainProcess";
  std::vector<int> identity;  // empty in the main process
  bool daemon = false;
  std::optional<ProcessInfo> parent;
  int next_identity = 1;
  std::vector<std::shared_ptr<ProcessState>> children;  // started, unreaped
  bool exiting = false;
  pid_t pid = 0;
  // The parent's Globals, dropped at fork but kept reachable (its lock may
  // be held by a thread that does not exist here, so it is never reused).
  Globals* before_fork = nullptr;
};

Globals* g = new Globals();
std::atomic<bool> g_exit_handler_registered{false};

// In any forked child (mp's own or a raw fork()): the parent's children are
// not this process's, and the exit handler now acts for this process. The
// old Globals, whose lock another thread may have held at fork, is dropped.
void AfterForkInChild() {
  Globals* old = g;
  auto* fresh = new Globals();
  fresh->name = old->name;
  fresh->identity = old->identity;
  fresh->daemon = old->daemon;
  fresh->parent = old->parent;
  fresh->next_identity = old->next_identity;
  fresh->pid = getpid();
  fresh->before_fork = old;
  for (auto& k : old->children) {
    if (k->pidfd >= 0) close(k->pidfd);
    k->pidfd = -1;
  }
  g = fresh;
}

[[maybe_unused]] const bool g_atfork_registered =
    pthread_atfork(nullptr, nullptr, AfterForkInChild) == 0;

std::string Demangle(const char* mangled) {
  int status = 0;
  char* s = abi::__cxa_demangle(mangled, nullptr, nullptr, &status);
  std::string out = status == 0 && s != nullptr ? s : mangled;
  std::free(s);
  return out;
}

// "ns::(anonymous namespace)::Worker<int>" -> "Worker".
std::string ShortClassName(const std::type_info& t) {
  std::string full = Demangle(t.name());
  size_t angle = full.find('<');
  if (angle != std::string::npos) full.resize(angle);
  size_t colon = full.rfind("::");
  return colon == std::string::npos ? full : full.substr(colon + 2);
}

int PidfdOpen(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd >= 0) {
    fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return static_cast<int>(fd);
  }
#endif
  (void)pid;
  return -1;
}

void RemoveChild(const ProcessState* s) {
  std::lock_guard<SpinLock> l(g->mu);
  auto& v = g->children;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it->get() == s) {
      v.erase(it);
      return;
    }
  }
}

// Reaps the child if it has exited. Call with s.mu held. True once reaped.
bool TryReapLocked(ProcessState& s) {
  if (s.exitcode.has_value() || s.lost) return true;
  int status = 0;
  pid_t r;
  do {
    r = waitpid(s.pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  if (r == s.pid) {
    if (WIFEXITED(status)) {
      s.exitcode = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      s.exitcode = -WTERMSIG(status);
    } else {
      return false;  // stopped or continued: not an exit
    }
  } else {
    s.lost = true;  // ECHILD: someone else reaped it
  }
  RemoveChild(&s);
  return true;
}

bool TryReap(ProcessState& s) {
  std::lock_guard<SpinLock> l(s.mu);
  return TryReapLocked(s);
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat(sig);
}

void FlushStdio() {
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
}

constexpr char kClosedMessage[] = "process object is closed";

absl::Status ClosedError() {
  return absl::FailedPreconditionError(kClosedMessage);
}

// The accessors Python makes raise ValueError after close() cannot return a
// status: misuse is reported loudly, never answered with a made-up value.
void DieIfClosed(const ProcessState& s, const char* what) {
  if (!s.closed) return;
  std::string msg =
      absl::StrCat("mp::Process::", what, ": ", kClosedMessage, "\n");
  std::fputs(msg.c_str(), stderr);
  std::abort();
}

absl::Status Signal(ProcessState& s, int sig) {
  std::lock_guard<SpinLock> l(s.mu);
  if (s.closed) return ClosedError();
  if (!s.started) {
    return absl::FailedPreconditionError("process has not been started");
  }
  if (s.exitcode.has_value() || s.lost) return absl::OkStatus();
  int rc = -1;
#ifdef SYS_pidfd_send_signal
  if (s.pidfd >= 0) {
    rc = static_cast<int>(syscall(SYS_pidfd_send_signal, s.pidfd, sig,
                                  nullptr, 0));
  }
#endif
  if (rc != 0 && s.pidfd < 0) rc = kill(s.pid, sig);
  if (rc != 0 && errno != ESRCH) {
    return absl::InternalError(
        absl::StrCat("sending ", SignalName(sig), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

// Python's multiprocessing.util._exit_function.
void ExitFunction() {
  if (g->pid != 0 && g->pid != getpid()) return;  // inherited registration
  {
    std::lock_guard<SpinLock> l(g->mu);
    if (g->exiting) return;
    g->exiting = true;
  }
  Logger& log = get_logger();
  log.Info("process shutting down");
  log.Debug("running all \"atexit\" finalizers with priority >= 0");
  std::vector<std::shared_ptr<ProcessState>> kids;
  {
    std::lock_guard<SpinLock> l(g->mu);
    kids = g->children;
  }
  for (auto& k : kids) {
    if (k->daemon && !TryReap(*k)) {
      log.Info("calling terminate() for daemon %s", k->name);
      (void)Signal(*k, SIGTERM);
    }
  }
  for (auto& k : kids) {
    if (TryReap(*k)) continue;
    log.Info("calling join() for process %s", k->name);
    while (!TryReap(*k)) {
      if (k->pidfd >= 0) {
        pollfd pfd{k->pidfd, POLLIN, 0};
        poll(&pfd, 1, -1);
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
  }
  log.Debug("running the remaining \"atexit\" finalizers");
  FlushStdio();
}

}  // namespace

void EnsureExitHandler() {
  if (!g_exit_handler_registered.exchange(true)) {
    g->pid = getpid();
    std::atexit(ExitFunction);
  }
}

}  // namespace core_internal

using core_internal::g;
using core_internal::ProcessState;

Process::Process(ProcessOptions options)
    : state_(std::make_shared<ProcessState>()) {
  std::lock_guard<core_internal::SpinLock> l(g->mu);
  state_->identity = g->identity;
  state_->identity.push_back(g->next_identity++);
  state_->name = std::move(options.name);
  state_->daemon = options.daemon.value_or(g->daemon);
}

Process::Process(Process&&) noexcept = default;
Process& Process::operator=(Process&&) noexcept = default;
Process::~Process() = default;

const std::string& Process::name() const {
  if (state_->name.empty()) {
    state_->name = absl::StrCat(core_internal::ShortClassName(typeid(*this)),
                                "-", absl::StrJoin(state_->identity, ":"));
  }
  return state_->name;
}

void Process::set_name(std::string name) { state_->name = std::move(name); }

bool Process::daemon() const { return state_->daemon; }

absl::Status Process::set_daemon(bool daemonic) {
  if (state_->closed) return core_internal::ClosedError();
  if (state_->started) {
    return absl::FailedPreconditionError("process has already started");
  }
  state_->daemon = daemonic;
  return absl::OkStatus();
}

pid_t Process::pid() const {
  core_internal::DieIfClosed(*state_, "pid");
  return state_->pid;
}

std::optional<pid_t> Process::ident() const {
  core_internal::DieIfClosed(*state_, "ident");
  if (!state_->started) return std::nullopt;
  return state_->pid;
}

int Process::sentinel() const {
  core_internal::DieIfClosed(*state_, "sentinel");
  return state_->parent_pid == getpid() ? state_->pidfd : -1;
}

bool Process::closed() const { return state_->closed; }

absl::Status Process::Close() {
  auto& s = *state_;
  if (s.closed) return absl::OkStatus();
  if (s.started) {
    // The child itself, or the parent while the child runs: still running.
    const bool ours = s.parent_pid == getpid();
    if (s.pid == getpid() || (ours && !core_internal::TryReap(s))) {
      return absl::FailedPreconditionError(
          "Cannot close a process while it is still running. You should "
          "first call join() or terminate().");
    }
  }
  std::lock_guard<core_internal::SpinLock> l(s.mu);
  if (s.pidfd >= 0) close(s.pidfd);
  s.pidfd = -1;
  s.closed = true;
  return absl::OkStatus();
}

void Process::Run() {
  if (target_) target_();
}

// The child's side of Start(): Python's BaseProcess._bootstrap.
int core_internal_Bootstrap(Process& p) {
  auto& log = get_logger();
  int exitcode = 0;
  try {
    try {
      log.Info("child process calling self.run()");
      p.Run();
      exitcode = 0;
    } catch (...) {
      core_internal::ExitFunction();
      throw;
    }
    core_internal::ExitFunction();
  } catch (const SystemExit& e) {
    exitcode = e.code;
  } catch (const std::exception& e) {
    exitcode = 1;
    core_internal::FlushStdio();
    std::string msg = absl::StrCat(
        "Process ", p.name(), ":\n",
        core_internal::Demangle(typeid(e).name()), ": ", e.what(), "\n");
    std::fputs(msg.c_str(), stderr);
  } catch (...) {
    exitcode = 1;
    core_internal::FlushStdio();
    std::string msg = absl::StrCat("Process ", p.name(),
                                   ":\nunknown exception\n");
    std::fputs(msg.c_str(), stderr);
  }
  log.Info("process exiting with exitcode %d", exitcode);
  core_internal::FlushStdio();
  return exitcode;
}

absl::Status Process::Start() {
  auto& s = *state_;
  if (s.closed) return core_internal::ClosedError();
  if (s.started) {
    return absl::FailedPreconditionError("cannot start a process twice");
  }
  {
    std::lock_guard<core_internal::SpinLock> l(g->mu);
    if (g->daemon) {
      return absl::FailedPreconditionError(
          "daemonic processes are not allowed to have children");
    }
  }
  core_internal::EnsureExitHandler();
  const std::string& my_name = name();  // fixed before fork: both sides agree
  core_internal::FlushStdio();
  const pid_t parent_pid = getpid();

  g->mu.lock();
  const std::string parent_name = g->name;
  const bool parent_daemon = g->daemon;
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    g->mu.unlock();
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(err)));
  }
  if (pid == 0) {
    // Child: AfterForkInChild gave it fresh Globals; become `my_name`, with
    // its own numbering for the children it starts.
    g->name = my_name;
    g->identity = s.identity;
    g->daemon = s.daemon;
    g->parent = ProcessInfo(parent_name, parent_pid, parent_daemon);
    g->next_identity = 1;
    if (s.daemon) {
      // The safety net: die with the parent, however it dies.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent_pid) _exit(1);
    }
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull >= 0) {
      dup2(devnull, STDIN_FILENO);
      close(devnull);
    }
    s.started = true;
    s.pid = getpid();
    int code = core_internal_Bootstrap(*this);
    _exit(code & 0xff);
  }
  // Parent.
  s.pid = pid;
  s.parent_pid = parent_pid;
  s.pidfd = core_internal::PidfdOpen(pid);
  s.started = true;
  g->children.push_back(state_);
  g->mu.unlock();
  return absl::OkStatus();
}

absl::Status Process::Join(Deadline deadline) {
  auto& s = *state_;
  if (s.closed) return core_internal::ClosedError();
  if (!s.started) {
    return absl::FailedPreconditionError("can only join a started process");
  }
  if (s.pid == getpid()) {
    return absl::FailedPreconditionError("a process cannot join itself");
  }
  if (s.parent_pid != getpid()) {
    return absl::FailedPreconditionError("can only join a child process");
  }
  for (;;) {
    if (core_internal::TryReap(s)) {
      if (s.lost) {
        return absl::InternalError(absl::StrCat(
            "process ", s.pid, " was reaped outside mp (waitpid elsewhere)"));
      }
      return absl::OkStatus();
    }
    // Still running at the deadline: not an error, as Python's join.
    if (deadline.Expired()) return absl::OkStatus();
    if (s.pidfd >= 0) {
      pollfd pfd{s.pidfd, POLLIN, 0};
      int rc = poll(&pfd, 1, deadline.PollMillis());
      if (rc < 0 && errno != EINTR) {
        return absl::InternalError(
            absl::StrCat("poll on pidfd: ", std::strerror(errno)));
      }
    } else {
      auto step = std::min<Deadline::Clock::duration>(
          deadline.Remaining(), std::chrono::milliseconds(1));
      std::this_thread::sleep_for(step);
    }
  }
}

bool Process::IsAlive() {
  auto& s = *state_;
  core_internal::DieIfClosed(s, "IsAlive");
  if (!s.started) return false;
  if (s.pid == getpid()) return true;  // the child asking about itself
  if (s.parent_pid != getpid()) return false;
  return !core_internal::TryReap(s);
}

std::optional<int> Process::exitcode() {
  auto& s = *state_;
  core_internal::DieIfClosed(s, "exitcode");
  if (!s.started || s.parent_pid != getpid()) return std::nullopt;
  core_internal::TryReap(s);
  std::lock_guard<core_internal::SpinLock> l(s.mu);
  return s.exitcode;
}

absl::Status Process::Terminate() {
  return core_internal::Signal(*state_, SIGTERM);
}
absl::Status Process::Kill() { return core_internal::Signal(*state_, SIGKILL); }

std::string Process::ToString() {
  auto& s = *state_;
  std::string status;
  if (s.closed) {
    status = "closed";
  } else if (s.started && s.pid == getpid()) {
    status = "started";
  } else if (s.started && s.parent_pid != getpid()) {
    status = "unknown";
  } else if (!s.started) {
    status = "initial";
  } else {
    std::optional<int> code = exitcode();
    if (!code.has_value()) {
      status = "started";
    } else if (*code == 0) {
      status = "stopped";
    } else if (*code < 0) {
      status = absl::StrCat("stopped[", core_internal::SignalName(-*code), "]");
    } else {
      status = absl::StrCat("stopped[exitcode=", *code, "]");
    }
  }
  return absl::StrCat("<", core_internal::ShortClassName(typeid(*this)), "(",
                      name(), ", ", status, s.daemon ? " daemon" : "", ")>");
}

ProcessInfo current_process() {
  std::lock_guard<core_internal::SpinLock> l(g->mu);
  return ProcessInfo(g->name, getpid(), g->daemon);
}

std::optional<ProcessInfo> parent_process() {
  std::lock_guard<core_internal::SpinLock> l(g->mu);
  return g->parent;
}

std::vector<ProcessInfo> active_children() {
  std::vector<std::shared_ptr<ProcessState>> kids;
  {
    std::lock_guard<core_internal::SpinLock> l(g->mu);
    kids = g->children;
  }
  std::vector<ProcessInfo> alive;
  for (auto& k : kids) {
    if (!core_internal::TryReap(*k)) {
      alive.emplace_back(k->name, k->pid, k->daemon);
    }
  }
  return alive;
}

int cpu_count() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace mp
