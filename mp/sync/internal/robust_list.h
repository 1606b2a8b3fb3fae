// mp/sync/internal/robust_list.h
// -----------------------------------------------------------------------------
// The kernel robust-futex list of the calling thread, as glibc registered it
// (its head comes with the thread's identity, mp/core/liveness.h). Used by
// ResidentLock; not a public interface.

#ifndef MP_SYNC_INTERNAL_ROBUST_LIST_H_
#define MP_SYNC_INTERNAL_ROBUST_LIST_H_

#include <sys/types.h>

#include <linux/futex.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "mp/core/futex.h"
#include "mp/core/liveness.h"

namespace mp::sync_internal {

// Lock-word bits: exactly the kernel's robust-futex layout
// (linux/futex.h): FUTEX_TID_MASK, FUTEX_OWNER_DIED, FUTEX_WAITERS.
inline constexpr uint32_t kTidMask = 0x3fffffff;
inline constexpr uint32_t kOwnerDied = 0x40000000;
inline constexpr uint32_t kWaiters = 0x80000000;

// The thread identity cache lives in mp/core/liveness.h (one for every
// package); the offset it checks glibc's head against is the lock layout's.
using liveness::CurrentThread;
using liveness::kRobustFutexOffset;
using liveness::ThreadIdentity;

// Whether owner-died detection uses the kernel robust list (true on glibc
// x86_64/aarch64) or the liveness-check fallback.
bool RobustListAvailable();
// Tests only: force the fallback (or back) for the calling process.
void SetRobustListDisabledForTesting(bool disabled);
extern std::atomic<bool> robust_list_disabled;

// The calling thread's robust-list head, or null when the fallback is used.
inline void* RobustHeadOf(const ThreadIdentity& id) {
  if (__builtin_expect(robust_list_disabled.load(std::memory_order_relaxed), 0)) {
    return nullptr;
  }
  return id.robust_head;
}
inline void* RobustHead() { return RobustHeadOf(CurrentThread()); }

// Robust-list operations on a node (the address of a lock's list_next word),
// same thread only. Mirrors glibc's doubly linked protocol (the prev word
// sits 8 bytes before the next word, for the head too: struct pthread's
// robust_prev) so glibc's own robust mutexes and ours can share the list and
// be released in any order. The compiler fences keep the kernel's view (at
// thread death, on this thread) consistent with program order.
inline uintptr_t& NextOf(uintptr_t node) {
  return *reinterpret_cast<uintptr_t*>(node);
}
inline uintptr_t& PrevOf(uintptr_t node) {
  return *reinterpret_cast<uintptr_t*>(node - sizeof(uintptr_t));
}

inline void SetPending(void* head, void* node) {
  static_cast<robust_list_head*>(head)->list_op_pending =
      static_cast<robust_list*>(node);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void ClearPending(void* head) {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  static_cast<robust_list_head*>(head)->list_op_pending = nullptr;
}

inline void Enqueue(void* head_ptr, void* node_ptr) {
  auto* head = static_cast<robust_list_head*>(head_ptr);
  const uintptr_t node = reinterpret_cast<uintptr_t>(node_ptr);
  const uintptr_t first = reinterpret_cast<uintptr_t>(head->list.next) & ~1ul;
  PrevOf(first) = node;
  NextOf(node) = reinterpret_cast<uintptr_t>(head->list.next);
  PrevOf(node) = reinterpret_cast<uintptr_t>(&head->list);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  head->list.next = reinterpret_cast<robust_list*>(node);
}

// The kernel's bound on a robust list walk (ROBUST_LIST_LIMIT).
inline constexpr int kRobustListLimit = 2048;

// Whether `node_ptr` is on the robust list at `head_ptr` (the calling
// thread's). A lock's links live in shared memory, where another process may
// have written anything: Release follows them only for a lock found here.
// The lock released is nearly always the one taken last, the first node.
bool IsLinkedPastFirst(void* head_ptr, void* node_ptr);
inline bool IsFirstNode(void* head_ptr, void* node_ptr) {
  auto* head = static_cast<robust_list_head*>(head_ptr);
  return (reinterpret_cast<uintptr_t>(head->list.next) & ~1ul) ==
         reinterpret_cast<uintptr_t>(node_ptr);
}
inline bool IsLinked(void* head_ptr, void* node_ptr) {
  return IsFirstNode(head_ptr, node_ptr) ||
         IsLinkedPastFirst(head_ptr, node_ptr);
}

inline void Dequeue(void* node_ptr) {
  const uintptr_t node = reinterpret_cast<uintptr_t>(node_ptr);
  const uintptr_t next = NextOf(node) & ~1ul;
  const uintptr_t prev = PrevOf(node) & ~1ul;
  PrevOf(next) = PrevOf(node);
  NextOf(prev) = NextOf(node);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  PrevOf(node) = 0;
  NextOf(node) = 0;
}

// Whether `tid` names a thread of the calling process (/proc/self/task).
bool IsThreadOfThisProcess(uint32_t tid);

// Busy-wait budgets before sleeping on a futex (one unit: one CPU pause,
// about 20 ns here): long enough to cover a peer's reply over a shared cache
// line, short next to a futex sleep/wake round trip.
inline constexpr int kSpinIterations = 1000;

// A lock waiter sleeps at most this long before it looks at the word again:
// on the fallback path to test the owner's liveness, on the robust path to
// recover from a releaser killed between its exchange and its wake.
inline constexpr std::chrono::milliseconds kFallbackSlice{10};
inline constexpr std::chrono::milliseconds kRobustSlice{100};

// The deadline of one sliced sleep: `deadline`, or kRobustSlice from now if
// that comes first. Event, Semaphore and Condition sleep in such slices and
// look at their words again after each, so that a waiter never depends on a
// wake-up owed by a process that was killed before making it. An idle
// waiter costs one futex round trip per slice (10 per second).
inline Deadline SliceOf(Deadline deadline) {
  return Deadline::Earlier(deadline, Deadline::After(kRobustSlice));
}

}  // namespace mp::sync_internal

#endif  // MP_SYNC_INTERNAL_ROBUST_LIST_H_
