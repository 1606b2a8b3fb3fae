#include "mp/core/fence.h"

#include <linux/membarrier.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <mutex>

namespace mp {
namespace fence_internal {

std::atomic<int> membarrier_state{kUnknown};

namespace {

std::once_flag atfork_once;

// A forked child is a new mm: it registers again on first use.
void ResetAfterFork() {
  membarrier_state.store(kUnknown, std::memory_order_relaxed);
}

// A full fence. GCC rejects thread fences under ThreadSanitizer; there a
// seq_cst read-modify-write stands in (TSan builds of the ring do not rely
// on this pair, see ring.cc).
void SeqCstFence() {
#if defined(__SANITIZE_THREAD__)
  static std::atomic<int> word{0};
  word.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

long Membarrier(int cmd) { return syscall(SYS_membarrier, cmd, 0, 0); }

// Registers this process, once; returns the resulting state.
int Register() {
  int state = membarrier_state.load(std::memory_order_acquire);
  if (state != kUnknown) return state;
  std::call_once(atfork_once,
                 [] { pthread_atfork(nullptr, nullptr, ResetAfterFork); });
  long supported = Membarrier(MEMBARRIER_CMD_QUERY);
  bool ok = supported > 0 &&
            (supported & MEMBARRIER_CMD_GLOBAL_EXPEDITED) != 0 &&
            Membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
  state = ok ? kRegistered : kUnavailable;
  // Registering is idempotent, so two threads racing here agree.
  membarrier_state.store(state, std::memory_order_release);
  return state;
}

}  // namespace

void LightFenceSlow() {
  // Until registration is complete this process is not covered by other
  // processes' HeavyFence: a real fence keeps the pair correct meanwhile.
  SeqCstFence();
  if (membarrier_state.load(std::memory_order_relaxed) == kUnknown) Register();
}

}  // namespace fence_internal

void FullFence() { fence_internal::SeqCstFence(); }

bool HeavyFence() {
  using namespace fence_internal;
  if (Register() == kRegistered &&
      Membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0) {
    return true;
  }
  SeqCstFence();
  return false;
}

}  // namespace mp
