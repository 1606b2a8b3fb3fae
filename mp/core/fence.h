// mp/core/fence.h
// -----------------------------------------------------------------------------
// An asymmetric fence pair across processes, for Dekker-style "store, fence,
// load" handshakes where one side runs on every operation and the other only
// when it is about to sleep.
//
//   hot side (every message)            rare side (about to sleep)
//   tail.store(t, release);             waiting.store(1, relaxed);
//   LightFence();                       bool complete = HeavyFence();
//   if (waiting.load(relaxed)) wake;    if (tail unchanged) sleep;
//
// The pair orders like a seq_cst fence on both sides: either the hot side
// sees the flag or the rare side sees the new tail. LightFence is a compiler
// barrier only; HeavyFence makes every running thread of every registered
// process execute a full barrier (membarrier(2) MEMBARRIER_CMD_GLOBAL_EXPEDITED,
// an IPI to the CPUs running them; a thread that is not running passes a full
// barrier when it is switched back in). That moves the cost of the fence (an
// MFENCE or locked instruction, tens of nanoseconds per message) onto the
// sleeper, which is about to spend microseconds in the kernel anyway.
//
// Registration: each process registers itself (once; again in a forked child)
// the first time it calls either function. Where the kernel refuses
// (membarrier absent or filtered by seccomp), LightFence is a real seq_cst
// fence in that process, so it stays covered, and HeavyFence returns false:
// a hot side in another, registered, process may then not be covered, so the
// caller must not sleep without bound (sleep in short slices and re-check).
//
// Cost (2-vCPU AMD EPYC VM): LightFence 0 instructions; HeavyFence about
// 1 µs.

#ifndef MP_CORE_FENCE_H_
#define MP_CORE_FENCE_H_

#include <atomic>

namespace mp {
namespace fence_internal {

enum : int { kUnknown = 0, kRegistered = 1, kUnavailable = 2 };
extern std::atomic<int> membarrier_state;
void LightFenceSlow();

}  // namespace fence_internal

// The hot side's fence. See above.
inline void LightFence() {
  if (fence_internal::membarrier_state.load(std::memory_order_relaxed) ==
      fence_internal::kRegistered) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    fence_internal::LightFenceSlow();
  }
}

// The rare side's fence. True when every registered process's LightFence is
// covered; false when this process could not use membarrier (a full fence
// was executed, but hot sides elsewhere may be uncovered: do not sleep
// without bound).
bool HeavyFence();

// A full (seq_cst) fence, for a handshake that puts one on each side
// instead of the pair above (where neither side is hot enough to need the
// asymmetry). Under ThreadSanitizer, which rejects thread fences, a seq_cst
// read-modify-write stands in (a full barrier on x86).
void FullFence();

}  // namespace mp

#endif  // MP_CORE_FENCE_H_
