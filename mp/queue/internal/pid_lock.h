// mp/queue/internal/pid_lock.h
// -----------------------------------------------------------------------------
// PidLock: the ring's crash-safe futex lock (its producer and consumer
// locks), and the two halves of the wake-up handshake every sleeper in the
// ring uses. Resident type: plain atomics, valid at any address in any
// process mapping it.

#ifndef MP_QUEUE_INTERNAL_PID_LOCK_H_
#define MP_QUEUE_INTERNAL_PID_LOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <type_traits>

#include "mp/core/fence.h"
#include "mp/core/futex.h"

namespace mp::queue_internal {

// How long a lock waiter (and a kMpmc consumer waiting at a claim) sleeps
// before it asks whether the holder (the claimer) still lives.
inline constexpr auto kLivenessSlice = std::chrono::milliseconds(20);
// How long a sleeper whose HeavyFence could not cover the publishers (no
// membarrier in this process) sleeps before it looks again.
inline constexpr auto kUncoveredSlice = std::chrono::milliseconds(1);

// A futex lock whose word names its holder, so a holder's death is seen.
//
//   word:    holder tid in bits 30..0 (0: free); bit 31 is never set by
//            Lock or Unlock, and a word with no holder is free whatever
//            that bit says
//   waiters: 1 while someone may be asleep on the epoch
//   epoch:   the futex word sleepers wait on; bumped by every wake
//
// Lock: CAS 0 -> tid; after a short spin, read the epoch, raise `waiters`,
// HeavyFence, look at the word again and, if it still names the holder
// seen, sleep on the epoch in slices of 20 ms; after each slice, if the
// holder is dead, take the word over by CAS and report it.
// Unlock: a plain release store of 0, LightFence, and only if `waiters` is
// up: clear it, bump the epoch, FutexWake one. The store, fence, load pair
// against the waiter's raise, HeavyFence, load is the Dekker handshake of
// mp/core/fence.h: either the unlocker sees the flag or the waiter sees the
// free word, and a bump between the waiter's read of the epoch and its sleep
// makes FutexWait return at once. (The word itself cannot be slept on: the
// holder may unlock and lock again before the sleep, leaving the same tid.)
// The uncontended Unlock thus has no locked instruction: an exchange there
// stalled each kMpmc put until the claim's stores had left the store
// buffer, while consumers polled the same lines, and halved throughput.
// One wake per clear: a waiter that was woken and sleeps again raises the
// flag again; one that gets the lock after sleeping raises it for the
// sleepers it may have left behind, and one that gives up after sleeping
// raises it and passes a wake on. Memory ordering: Lock is acquire, Unlock
// release.
//
// Why not mp::ResidentLock (mp/sync/lock.h), the library's crash-safe lock?
// Both name their holder by tid and take a dead holder's lock over; they
// differ where the ring's hot path needs it. ResidentLock links each held
// lock into the owner's robust list (two extra stores per acquire and per
// release) so that the kernel marks it at the owner's death, and releases
// with an exchange that reads the WAITERS bit in the word; both cost the
// ring's kMpmc put path dearly (an exchange in Unlock halved throughput, see
// above), while the ring needs no owner-died report: a dead producer's claim
// is judged at the record (SkipDeadClaim), a dead consumer's count by the
// intent (Repair*Counts). PidLock instead keeps its waiters flag beside the
// word, unlocks with a plain store, and finds a dead holder by asking the
// kernel (liveness::TaskIsDead) after a slice, which only a waiter pays.
struct PidLock {
  static constexpr uint32_t kHolderMask = 0x7fffffffu;
  enum class Acquired { kNo, kYes, kFromDeadHolder };

  Acquired Lock(Deadline deadline);
  void Unlock();

  FutexWord word{0};
  std::atomic<uint32_t> waiters{0};
  FutexWord epoch{0};

 private:
  void Wake();
};
static_assert(std::is_standard_layout_v<PidLock>);
static_assert(sizeof(PidLock) == 12);

// Holds a PidLock (or nothing, for a kSpsc side) for a scope: every exit,
// a thrown exception included, releases it.
class ScopedPidLock {
 public:
  explicit ScopedPidLock(PidLock* lock) : lock_(lock) {}
  ~ScopedPidLock() { Unlock(); }
  ScopedPidLock(const ScopedPidLock&) = delete;
  ScopedPidLock& operator=(const ScopedPidLock&) = delete;

  PidLock::Acquired Lock(Deadline deadline) {
    if (lock_ == nullptr) return PidLock::Acquired::kYes;
    const PidLock::Acquired a = lock_->Lock(deadline);
    held_ = a != PidLock::Acquired::kNo;
    return a;
  }
  void Unlock() {
    if (held_) {
      held_ = false;
      lock_->Unlock();
    }
  }

 private:
  PidLock* const lock_;
  bool held_ = false;
};

// The hot half of the Dekker pair (see "Wake-up protocol" in ring.h): after publishing, read the
// waiters flag. LightFence is a compiler barrier (the sleeper pays with
// HeavyFence). GCC rejects thread fences under ThreadSanitizer (-Werror=tsan)
// and TSan cannot see membarrier, so a TSan build uses a seq_cst
// read-modify-write of the waiters word on both sides instead, which orders
// the same way at the price of a shared write.
inline uint32_t LoadWaitersAfterStore(std::atomic<uint32_t>& waiters) {
#if defined(__SANITIZE_THREAD__)
  return waiters.fetch_add(0, std::memory_order_seq_cst);
#else
  LightFence();
  return waiters.load(std::memory_order_relaxed);
#endif
}

// The sleeper's half: raise the flag, then fence. True when a sleep may be
// unbounded; false when the fence could not cover the hot sides (no
// membarrier here), so the sleeper must re-check in short slices.
inline bool RaiseWaitersBeforeLoad(std::atomic<uint32_t>& waiters) {
#if defined(__SANITIZE_THREAD__)
  waiters.exchange(1, std::memory_order_seq_cst);
  return true;
#else
  waiters.store(1, std::memory_order_relaxed);
  return HeavyFence();
#endif
}

}  // namespace mp::queue_internal

#endif  // MP_QUEUE_INTERNAL_PID_LOCK_H_
