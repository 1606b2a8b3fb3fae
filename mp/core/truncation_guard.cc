#include "mp/core/truncation_guard.h"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mutex>

namespace mp::truncation_guard {
namespace {

// The watched mappings. A slot is taken by a CAS of `begin` from 0 and
// filled before `end` is published (release); the handler reads `end`
// (acquire) and then `begin`. Unwatch clears `end` first, so the handler
// never matches a range being reused.
struct Slot {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<uint32_t> truncated{0};
};
Slot g_slots[kSlots];
const std::atomic<uint32_t> g_never{0};

struct sigaction g_previous;
std::once_flag g_installed_once;
bool g_installed = false;

void ChainToPrevious(int sig, siginfo_t* info, void* context) {
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 &&
      g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  // Default (or ignored, which the kernel overrides for a fault): restore it
  // and return; the faulting access runs again and the kernel acts.
  signal(sig, SIG_DFL);
}

void OnSigbus(int sig, siginfo_t* info, void* context) {
  const uintptr_t at = reinterpret_cast<uintptr_t>(info->si_addr);
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  for (Slot& s : g_slots) {
    const uintptr_t end = s.end.load(std::memory_order_acquire);
    if (end == 0) continue;
    const uintptr_t begin = s.begin.load(std::memory_order_relaxed);
    if (at < begin || at >= end) continue;
    const uintptr_t from = at & ~(page - 1);
    void* p = mmap(reinterpret_cast<void*>(from), end - from,
                   PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) break;
    s.truncated.store(1, std::memory_order_release);
    return;
  }
  ChainToPrevious(sig, info, context);
}

void Install() {
  struct sigaction sa = {};
  sa.sa_sigaction = OnSigbus;
  sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  g_installed = sigaction(SIGBUS, &sa, &g_previous) == 0;
}

}  // namespace

int Watch(void* addr, size_t size) {
  std::call_once(g_installed_once, Install);
  if (!g_installed || addr == nullptr || size == 0) return kNotWatched;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(addr);
  for (int i = 0; i < kSlots; ++i) {
    uintptr_t expected = 0;
    if (g_slots[i].begin.compare_exchange_strong(expected, begin,
                                                 std::memory_order_relaxed)) {
      g_slots[i].truncated.store(0, std::memory_order_relaxed);
      g_slots[i].end.store(begin + size, std::memory_order_release);
      return i;
    }
  }
  return kNotWatched;
}

void Unwatch(int slot) {
  if (slot < 0 || slot >= kSlots) return;
  g_slots[slot].end.store(0, std::memory_order_release);
  g_slots[slot].begin.store(0, std::memory_order_release);
}

const std::atomic<uint32_t>* Flag(int slot) {
  if (slot < 0 || slot >= kSlots) return &g_never;
  return &g_slots[slot].truncated;
}

}  // namespace mp::truncation_guard
