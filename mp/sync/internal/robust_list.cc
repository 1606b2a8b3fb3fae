#include "mp/sync/internal/robust_list.h"

#include <linux/futex.h>
#include <sys/stat.h>

#include <cstdio>

#include <atomic>
#include <cstdint>

namespace mp::sync_internal {

std::atomic<bool> robust_list_disabled{false};

bool RobustListAvailable() {
  return !robust_list_disabled.load(std::memory_order_relaxed) &&
         CurrentThread().robust_head != nullptr;
}

void SetRobustListDisabledForTesting(bool disabled) {
  robust_list_disabled.store(disabled, std::memory_order_relaxed);
}

bool IsThreadOfThisProcess(uint32_t tid) {
  char path[64];
  std::snprintf(path, sizeof(path), "/proc/self/task/%u", tid);
  struct stat st;
  return stat(path, &st) == 0;
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
