// Test helper: run code in a forked child and collect what it writes to
// stderr (logging lines, uncaught-exception reports).
#ifndef TESTS_CORE_CHILD_STDERR_H_
#define TESTS_CORE_CHILD_STDERR_H_

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <string>

namespace mp::testing {

// Runs `body` in a forked child whose stderr is a pipe, then std::exit(0)
// (so atexit handlers run, as at a normal end of main). Returns everything
// the child wrote to stderr; stores its wait status in `*status` if given.
inline std::string StderrOfChild(const std::function<void()>& body,
                                 int* status = nullptr) {
  int fds[2];
  if (pipe(fds) != 0) return "";
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], STDERR_FILENO);
    close(fds[0]);
    close(fds[1]);
    body();
    std::exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[1024];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(fds[0]);
  int ignored;
  waitpid(pid, status != nullptr ? status : &ignored, 0);
  return out;
}

}  // namespace mp::testing

#endif  // TESTS_CORE_CHILD_STDERR_H_
