#include "mp/sync/internal/robust_list.h"

#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>

namespace mp::sync_internal {

constinit thread_local ThreadIdentity tls_identity;
std::atomic<bool> robust_list_disabled{false};

namespace {


// A fork child has a new TID and (glibc resets it) an empty robust list:
// forget the cached identity so the next lock call recomputes it.
void ResetInChild() { tls_identity = ThreadIdentity{}; }

void RegisterAtFork() {
  static const bool once = [] {
    pthread_atfork(nullptr, nullptr, &ResetInChild);
    return true;
  }();
  (void)once;
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

bool RobustListAvailable() {
  return !robust_list_disabled.load(std::memory_order_relaxed) &&
         CurrentThread().robust_head != nullptr;
}

void SetRobustListDisabledForTesting(bool disabled) {
  robust_list_disabled.store(disabled, std::memory_order_relaxed);
}

bool ThreadIsDead(uint32_t tid) {
  return kill(static_cast<pid_t>(tid), 0) != 0 && errno == ESRCH;
}

bool IsLinkedPastFirst(void* head_ptr, void* node_ptr) {
  auto* head = static_cast<robust_list_head*>(head_ptr);
  const uintptr_t end = reinterpret_cast<uintptr_t>(&head->list);
  const uintptr_t node = reinterpret_cast<uintptr_t>(node_ptr);
  uintptr_t n = reinterpret_cast<uintptr_t>(head->list.next) & ~1ul;
  for (int i = 0; i < kRobustListLimit && n != end && n != 0; ++i) {
    if (n == node) return true;
    n = NextOf(n) & ~1ul;
  }
  return false;
}

}  // namespace mp::sync_internal
