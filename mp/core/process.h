// mp/core/process.h
// -----------------------------------------------------------------------------
// mp::Process: the C++ twin of multiprocessing.Process, started with fork().
//
//   void worker(int num) { std::cout << "Worker: " << num << "\n"; }
//
//   mp::Process p(worker, 3);            // target and its arguments
//   MP_CHECK_OK(p.Start());
//   MP_CHECK_OK(p.Join());               // or p.Join(1.5), p.Join(2s)
//   p.exitcode();                        // 0
//   MP_CHECK_OK(p.Close());              // Python 3.7's close()
//
//   mp::Process service({.name = "my_service"}, my_service);
//
//   class Worker : public mp::Process {  // or subclass and override Run()
//     void Run() override { std::cout << "In " << name() << "\n"; }
//   };
//
// The target is any callable; it and its arguments are copied into the child
// by fork itself, so nothing is serialised. The child runs the target,
// flushes stdio and leaves with _exit(), running no destructors and no atexit
// handlers of the parent.
//
// Names: a Process without a name is called "<Class>-N" ("Process-3",
// "Worker-1"), N counting the Process objects created in this process, and
// in a child "<Class>-1:N", as Python numbers them.
//
// Exit codes follow Python: 0 when the target returns, `code` for
// mp::Exit(code), 1 for an uncaught exception (its type and message go to
// stderr under "Process <name>:"), -N when the child was killed by signal N.
//
// Daemons: a daemon child is terminated (SIGTERM) when its parent exits
// normally, and killed (SIGKILL, through PR_SET_PDEATHSIG) when its parent
// dies any other way. Limit: the kernel ties the parent-death signal to the
// *thread* that called Start(); start daemons from a thread that lives as
// long as the process (normally the main thread). Non-daemon children are
// joined when the parent exits normally (std::exit or return from main).
// A daemon may not start children of its own.
//
// Misuse is reported as Python reports it (its ValueError and
// AssertionError alike), as a FailedPrecondition status: starting twice,
// joining a process never started, joining from a process that is not the
// parent, changing `daemon` after Start, using the object after Close.
// A Join that times out is not an error (Python's join returns None).
//
// Timeouts (README "Timeouts"): Join takes an mp::Deadline, a
// std::chrono duration, or Python's seconds (std::optional<double>).
//
// Threads: a Process object may be used from several threads of its parent;
// Start() forks only the calling thread (POSIX semantics).

#ifndef MP_CORE_PROCESS_H_
#define MP_CORE_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "mp/core/futex.h"

namespace mp {

// What Python passes as keyword arguments to Process().
struct ProcessOptions {
  std::string name{};           // empty: "<Class>-N"
  std::optional<bool> daemon{}; // unset: inherit the creating process's flag
};

// A snapshot of a process's identity, as current_process(),
// parent_process() and active_children() describe one.
class ProcessInfo {
 public:
  ProcessInfo() = default;
  ProcessInfo(std::string name, pid_t pid, bool daemon)
      : name_(std::move(name)), pid_(pid), daemon_(daemon) {}
  const std::string& name() const { return name_; }
  pid_t pid() const { return pid_; }
  bool daemon() const { return daemon_; }

 private:
  std::string name_;
  pid_t pid_ = 0;
  bool daemon_ = false;
};

// Thrown by mp::Exit to leave a child's target with an exit code, as
// sys.exit() raises SystemExit. Deliberately not a std::exception, so that
// `catch (const std::exception&)` in user code does not swallow it.
struct SystemExit {
  int code = 0;
};
[[noreturn]] inline void Exit(int code = 0) { throw SystemExit{code}; }

namespace core_internal {
struct ProcessState;
}  // namespace core_internal

class Process {
 public:
  // For subclasses that override Run().
  Process() : Process(ProcessOptions{}) {}
  explicit Process(ProcessOptions options);

  // `target(args...)` runs in the child. Arguments are stored by value.
  template <class F, class... Args>
    requires std::invocable<std::decay_t<F>&, std::decay_t<Args>&...>
  explicit Process(F&& target, Args&&... args)
      : Process(ProcessOptions{}, std::forward<F>(target),
                std::forward<Args>(args)...) {}

  template <class F, class... Args>
    requires std::invocable<std::decay_t<F>&, std::decay_t<Args>&...>
  Process(ProcessOptions options, F&& target, Args&&... args)
      : Process(std::move(options)) {
    target_ = [f = std::forward<F>(target),
               tup = std::make_tuple(std::forward<Args>(args)...)]() mutable {
      std::apply([&f](auto&... a) { std::invoke(f, a...); }, tup);
    };
  }

  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // Does not stop or join the child: an unjoined non-daemon child is still
  // joined at exit, a daemon still terminated, as in Python.
  virtual ~Process();

  // Forks the child, which calls Run(). FailedPrecondition if already
  // started, closed, or if this process is a daemon; Internal if fork fails.
  absl::Status Start();

  // Waits for the child to exit, at most until the deadline, and reaps it
  // if it has. As Python's join, a timeout is not an error: OK whether or
  // not the child exited (also when it already had); ask IsAlive() or
  // exitcode() which. FailedPrecondition for misuse Python reports: never
  // started ("can only join a started process"), called in the child on
  // itself ("a process cannot join itself") or in any process but the
  // parent ("can only join a child process"), after Close ("process object
  // is closed"). Internal if the child was reaped outside mp (a
  // waitpid(-1) elsewhere), so its exit code is lost.
  absl::Status Join(Deadline deadline);
  template <class Rep, class Period>
  absl::Status Join(std::chrono::duration<Rep, Period> timeout) {
    return Join(Deadline::After(timeout));
  }
  // Python's join(timeout=None): seconds; nullopt waits for the exit.
  absl::Status Join(std::optional<double> timeout_seconds = std::nullopt) {
    return Join(Deadline::FromPython(timeout_seconds));
  }

  // Python 3.7's close(): releases what the Process object holds (the
  // child's pidfd, its place in active_children). FailedPrecondition while
  // the child is still running ("Cannot close a process while it is still
  // running..."; Join or Terminate first), and nothing changes. OK before
  // Start and when called again. Afterwards every other Status call returns
  // FailedPrecondition "process object is closed", and the accessors Python
  // makes raise (IsAlive, exitcode, pid, ident, sentinel) abort with that
  // message; name(), daemon() and ToString() still answer.
  absl::Status Close();
  bool closed() const;

  // Whether the child has been started and has not exited (reaps it if it
  // has). False before Start, and in any process but the parent.
  bool IsAlive();

  // SIGTERM / SIGKILL to the child (through its pidfd, so a recycled pid is
  // never hit). OK if it had already exited; FailedPrecondition if never
  // started or closed.
  absl::Status Terminate();
  absl::Status Kill();

  // The child's pid; 0 before Start (Python's None).
  pid_t pid() const;
  // Python's ident (an alias of pid): nullopt before Start.
  std::optional<pid_t> ident() const;
  // Python's rules; nullopt while running or before Start.
  std::optional<int> exitcode();
  // Python's sentinel: a pidfd that becomes readable when the child exits
  // (poll/epoll it; owned by this object, closed by Close). -1 before
  // Start, in a process other than the parent, or where the kernel has no
  // pidfd_open (Linux < 5.3).
  int sentinel() const;

  const std::string& name() const;
  void set_name(std::string name);
  bool daemon() const;
  // FailedPrecondition after Start ("process has already started") or
  // Close.
  absl::Status set_daemon(bool daemonic);

  // Python's repr: "<Process(Process-1, started daemon)>".
  std::string ToString();

 protected:
  // Runs in the child. The default calls the target given to the
  // constructor; subclasses override it.
  virtual void Run();

 private:
  friend int core_internal_Bootstrap(Process& p);
  std::shared_ptr<core_internal::ProcessState> state_;
  std::function<void()> target_;
};

inline std::ostream& operator<<(std::ostream& os, Process& p) {
  return os << p.ToString();
}

// The running process: "MainProcess" in the program's first process, the
// Process's name in a child.
ProcessInfo current_process();
// The process that started this one; nullopt in the main process.
std::optional<ProcessInfo> parent_process();
// Children started by this process that are still running (finished ones
// are reaped, as Python's active_children() does).
std::vector<ProcessInfo> active_children();
// Number of online CPUs.
int cpu_count();

}  // namespace mp

#endif  // MP_CORE_PROCESS_H_
