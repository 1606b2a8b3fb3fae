// tests/watchdog.h: the outside watchdog of the crash tests. A survivor waits
// the way users wait, without a deadline; the test process, outside it,
// gives it a deadline far above any sleep slice of the library and calls a
// survivor still blocked then a hang (and kills and reaps it).

#ifndef MP_TESTS_WATCHDOG_H_
#define MP_TESTS_WATCHDOG_H_

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <new>
#include <string>

namespace mp_test {

// Well above every slice in mp (100 ms at most) and every recovery it makes.
inline constexpr std::chrono::seconds kHangAfter{10};

// `var` from the environment when it is a positive number, else `fallback`
// (how many rounds or kills a looped test makes).
inline int CountFromEnv(const char* var, int fallback) {
  const char* s = std::getenv(var);
  return s != nullptr && std::atoi(s) > 0 ? std::atoi(s) : fallback;
}

// Forks a child that runs `body` and leaves with _exit(body's int). Stdio is
// flushed first so that the child does not print the parent's buffers again.
template <class F>
pid_t ForkChild(F&& body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) std::abort();
  if (pid == 0) _exit(body());
  return pid;
}

// Waits for `pid` up to `timeout`; its wait status, or -1 if it is still
// running then (it is left running), or -2 if it is not our child.
inline int WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return status;
    if (r < 0) return -2;
    if (std::chrono::steady_clock::now() >= until) return -1;
    usleep(500);
  }
}

inline void KillAndReap(pid_t pid) {
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
}

// As WaitFor, but a child still running at `timeout` is killed and reaped
// (-1 is returned).
inline int WaitOrKill(pid_t pid,
                      std::chrono::milliseconds timeout = kHangAfter) {
  const int status = WaitFor(pid, timeout);
  if (status == -1) KillAndReap(pid);
  return status;
}

// A wait status in words; -1 is the watchdog's verdict.
inline std::string Describe(int status) {
  if (status == -1) return "hung (still blocked after the watchdog's deadline)";
  if (status == -2) return "not a child of this process";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  return "signal " + std::to_string(WTERMSIG(status));
}

// The watchdog: waits for `pid` up to `timeout`; a child still running then
// is killed and reaped. "" for a clean exit 0, else "<who>: what happened".
inline std::string Watch(pid_t pid, const std::string& who = "child",
                         std::chrono::milliseconds timeout = kHangAfter) {
  const int status = WaitOrKill(pid, timeout);
  if (status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return who + ": " + Describe(status);
}

// Waits (up to `limit`) until `pid` sleeps in the kernel (state S in
// /proc/<pid>/stat) rather than runs; false if it never does. A test that
// means to exercise a wake path waits for this before it wakes the sleeper.
inline bool AwaitAsleep(pid_t pid,
                        std::chrono::milliseconds limit = std::chrono::seconds(2)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  const std::string path = "/proc/" + std::to_string(pid) + "/stat";
  while (std::chrono::steady_clock::now() < until) {
    std::string stat;
    try {
      std::ifstream in(path);
      stat.assign(std::istreambuf_iterator<char>(in),
                  std::istreambuf_iterator<char>());
    } catch (const std::exception&) {
      // libstdc++ throws when the process vanishes during the read (ESRCH).
      return false;
    }
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() &&
        stat[paren + 2] == 'S') {
      return true;
    }
    usleep(500);
  }
  return false;
}

// A T in its own MAP_SHARED anonymous mapping, for a test and the children
// it forks (counters, flags, resident objects); Unmap destroys and unmaps it.
template <class T>
T* MapShared() {
  void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  return new (p) T();
}
template <class T>
void Unmap(T* p) {
  p->~T();
  munmap(p, sizeof(T));
}

}  // namespace mp_test

#endif  // MP_TESTS_WATCHDOG_H_
