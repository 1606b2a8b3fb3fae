#include "mp/core/liveness.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>  // pthread_atfork only: a fork hook
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace mp::liveness {

constinit thread_local ThreadIdentity tls_identity;

namespace {

// A fork child has a new TID and (glibc resets it) an empty robust list:
// forget the cached identity so the next call recomputes it.
void ResetInChild() { tls_identity = ThreadIdentity{}; }

void RegisterAtFork() {
  static const bool once = [] {
    pthread_atfork(nullptr, nullptr, &ResetInChild);
    return true;
  }();
  (void)once;
}

// What /proc/<tid>/stat says about a task.
struct Stat {
  enum { kGone, kUnknown, kRead } found = kUnknown;
  char state = '?';
  uint64_t start_time = 0;
};

Stat ReadStat(uint32_t tid) {
  Stat st;
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/%u/stat", tid);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT || errno == ESRCH) st.found = Stat::kGone;
    return st;
  }
  char buf[1024];
  const ssize_t n = read(fd, buf, sizeof(buf) - 1);
  const int read_errno = errno;
  close(fd);
  if (n <= 0) {
    // The task went between open and read.
    if (n < 0 && read_errno == ESRCH) st.found = Stat::kGone;
    return st;
  }
  buf[n] = '\0';
  // "pid (comm) S ...": comm may hold spaces and parentheses, so the fields
  // start after the last ')'. Field 3 is the state, field 22 the start time.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ' || p[2] == '\0') return st;
  p += 2;
  st.state = *p;
  for (int field = 3; field < 22; ++field) {
    p = std::strchr(p, ' ');
    if (p == nullptr) return st;
    ++p;
  }
  char* end = nullptr;
  st.start_time = std::strtoull(p, &end, 10);
  if (end == p) st.start_time = 0;
  st.found = Stat::kRead;
  return st;
}

bool IsZombie(char state) {
  return state == 'Z' || state == 'X' || state == 'x';
}

}  // namespace

ThreadIdentity& CurrentThreadSlow() {
  RegisterAtFork();
  ThreadIdentity& id = tls_identity;
  id.tid = static_cast<uint32_t>(syscall(SYS_gettid));
  id.robust_head = nullptr;
  robust_list_head* head = nullptr;
  size_t len = 0;
  if (syscall(SYS_get_robust_list, 0, &head, &len) == 0 && head != nullptr &&
      len == sizeof(robust_list_head) &&
      head->futex_offset == kRobustFutexOffset) {
    id.robust_head = head;
  }
  return id;
}

bool TaskIsDead(uint32_t tid) { return TaskIsDead(tid, 0); }

uint64_t TaskStartTime(uint32_t tid) {
  if (tid == 0) return 0;
  const Stat st = ReadStat(tid);
  return st.found == Stat::kRead ? st.start_time : 0;
}

bool TaskIsDead(uint32_t tid, uint64_t start_time, uint64_t start_mask) {
  if (tid == 0) return false;
  // Cheap first: a task the kernel no longer has at all.
  if (kill(static_cast<pid_t>(tid), 0) == -1 && errno == ESRCH) return true;
  const Stat st = ReadStat(tid);
  switch (st.found) {
    case Stat::kGone:
      return true;
    case Stat::kUnknown:
      return false;  // cannot tell: treat as alive (never take over wrongly)
    case Stat::kRead:
      break;
  }
  if (IsZombie(st.state)) return true;
  start_time &= start_mask;
  return start_time != 0 && st.start_time != 0 &&
         (st.start_time & start_mask) != start_time;
}

}  // namespace mp::liveness
