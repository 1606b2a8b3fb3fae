// tests/watchdog.h: the outside watchdog of the crash tests. A survivor waits
// the way users wait, without a deadline; the test process, outside it,
// gives it a deadline far above any sleep slice of the library and calls a
// survivor still blocked then a hang (and kills and reaps it).

#ifndef MP_TESTS_WATCHDOG_H_
#define MP_TESTS_WATCHDOG_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

namespace mp_test {

// Well above every slice in mp (100 ms at most) and every recovery it makes.
inline constexpr std::chrono::seconds kHangAfter{10};

// Forks a child that runs `body` and leaves with _exit(body's int).
template <class F>
pid_t ForkChild(F body) {
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) _exit(body());
  return pid;
}

// Waits for `pid` up to `timeout`; its wait status, or -1 if it is still
// running then (it is left running).
inline int WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -2;  // not our child, or reaped already
    if (std::chrono::steady_clock::now() >= until) return -1;
    usleep(1000);
  }
}

inline void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

// The watchdog: waits for `pid` up to `timeout`; a child still running then
// is killed and reaped. Returns "" for a clean exit 0, else what happened
// ("hung", "exit 3", "signal 11").
inline std::string Watch(pid_t pid,
                         std::chrono::milliseconds timeout = kHangAfter) {
  const int status = WaitFor(pid, timeout);
  if (status == -1) {
    KillAndReap(pid);
    return "hung (still blocked after the watchdog's deadline)";
  }
  if (status == -2) return "not a child of this process";
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status) == 0
               ? ""
               : "exit " + std::to_string(WEXITSTATUS(status));
  }
  return "signal " + std::to_string(WTERMSIG(status));
}

}  // namespace mp_test

#endif  // MP_TESTS_WATCHDOG_H_
