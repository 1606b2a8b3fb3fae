// mp/sync/lock.h
// -----------------------------------------------------------------------------
// Lock and RLock: multiprocessing.Lock / RLock on a futex in shared memory,
// crash safe.
//
//   mp::Lock lock;                       // state in its own shared mapping
//   if (lock.Acquire(true, 0.5)) ...     // Python's acquire(timeout=0.5)
//   lock.Acquire(std::chrono::seconds(1)) == mp::LockResult::kOwnerDied
//   mp::Process p([&] { std::lock_guard g(lock); ... });   // child shares it
//   {
//     std::unique_lock l(lock);
//     if (lock.owner_died()) RepairSharedData();
//   }
//
// Two layers (DESIGN.md):
//  * `ResidentLock` / `ResidentRLock`: the state itself, a standard-layout
//    struct of plain words valid at any address in any process. All-zero
//    bytes are an unlocked lock, so one can live in a user's own segment.
//  * `Lock` / `RLock`: handles that own a resident lock in shared memory.
//    Copies share it; a handle made before Process::Start() works in the
//    child. A moved-from handle reports misuse (abort with a message, or
//    FailedPrecondition from Status-returning calls).
//
// Ownership: a lock is owned by the *thread* that acquired it (its TID is in
// the lock word) and must be released by that thread. Unlike Python's
// multiprocessing.Lock (a semaphore), releasing from another thread or
// process is an error: it is what makes owner-death detection possible.
//
// Crash safety: if the owning thread dies (process killed by SIGKILL
// included), the next acquirer gets the lock with `LockResult::kOwnerDied`
// (and `owner_died()` true until it releases), exactly once per death; a
// waiter blocked at the time is woken. Mechanism: the lock word has the
// kernel's robust-futex layout (owner TID | OWNER_DIED | WAITERS) and each
// held lock is linked into the owning thread's robust list, which glibc
// registered with the kernel; at thread exit the kernel marks every lock on
// the list OWNER_DIED and wakes a waiter. Fallback (no glibc robust head or
// an unexpected futex_offset, see internal/robust_list.h): waiters sleep in
// slices of 10 ms and test the owner with kill(tid, 0). Its limits: a dead
// owner is noticed only under contention, up to 10 ms late, and a recycled
// TID (pid_max wrap-around) looks alive.
// Even on the robust path a waiter sleeps in slices of 100 ms: a releaser
// killed between clearing the word and waking a sleeper, while another
// thread takes the free lock on its fast path, leaves the kernel nobody to
// wake (it sees a live owner); the slice bounds that stall (the model in
// verify/lock.pml finds the stranding without slices and proves it gone
// with them).
//
// Fast paths: an uncontended acquire or release is one atomic instruction and
// no system call (the TID is cached per thread, refreshed after fork). Under
// contention a waiter first yields its core and looks again, up to 64 times
// (tens of microseconds), and only then raises WAITERS and sleeps on the
// futex; it never spins on the word (a spinning waiter steals the line from
// the holder). Release wakes only when the WAITERS bit says someone may
// sleep. Why yield: locks are mostly held for a short update, so the holder
// is about to release. A waiter that slept at once made the holder pay a
// FUTEX_WAKE at nearly every release (woken, the waiter lost the race to
// the holder's next acquire and slept again), and two processes handed the
// lock back and forth every few updates; yielding leaves the holder whole
// stretches without a system call, and gives it the core if it shares the
// waiter's. lock_contended_2proc went from 22-33 M/s to 46-70 M/s (glibc's
// process-shared mutex: 24-35 M/s in the same runs), a Manager dict written
// by two processes from 6-8 M/s to 21-24 M/s. After a sleep the waiter
// yields again before it sleeps again.
//
// Lifetime: dropping the last handle in a process to a lock this thread
// holds gives the lock up as if the owner died (other processes' next
// Acquire returns kOwnerDied); dropping it while another thread of the
// process holds the lock aborts with a message. See OnLastHandleInProcess.
//
// Timeouts (README "Timeouts"): the handles' Acquire takes an mp::Deadline
// or a std::chrono duration and returns a LockResult (which tells owner
// death apart), or Python's (block, timeout_seconds) and returns bool;
// try_lock_for / try_lock_until are the std:: forms. The resident types
// take a Deadline only.
//
// Errors: the handles' constructors throw mp::Error (ResourceExhausted)
// when no shared mapping can be made; Create() returns it instead.
//
// Memory ordering: Acquire has acquire semantics and Release release
// semantics, as std::mutex.

#ifndef MP_SYNC_LOCK_H_
#define MP_SYNC_LOCK_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/sync/internal/fault_points.h"
#include "mp/sync/internal/robust_list.h"

namespace mp {

// What an acquire call did.
enum class LockResult {
  kAcquired,   // the lock is now held by the caller
  kOwnerDied,  // held by the caller, taken over from a thread that died
               // holding it: the data it protects may be half-updated
  kTimedOut,   // not acquired: the deadline passed
};

// True for kAcquired and kOwnerDied.
inline bool Acquired(LockResult r) { return r != LockResult::kTimedOut; }

namespace sync_internal {
struct LockLayout;
}  // namespace sync_internal

// The resident state of a Lock. 40 bytes, 8-aligned.
class ResidentLock {
 public:
  constexpr ResidentLock() = default;
  ResidentLock(const ResidentLock&) = delete;
  ResidentLock& operator=(const ResidentLock&) = delete;

  // Blocks until acquired or `deadline` passes (a past deadline: one try).
  // Acquiring a lock the calling thread already holds deadlocks until the
  // deadline, as Python's Lock does.
  LockResult Acquire(Deadline deadline = Deadline::Infinite());
  // One attempt, no waiting.
  LockResult TryAcquire() { return Acquire(Deadline::Past()); }
  // FailedPrecondition if the calling thread does not hold the lock
  // ("release unlocked lock"); the lock is unchanged then.
  absl::Status Release();

  // True while the current holder took the lock over from a dead owner;
  // cleared by Release. Meaningful to the holder.
  bool owner_died() const {
    return owner_died_.load(std::memory_order_relaxed) != 0;
  }
  // Whether any thread holds the lock (a snapshot).
  bool locked() const {
    return (word_.load(std::memory_order_relaxed) & kTidMaskPublic) != 0;
  }
  // Whether the calling thread holds the lock.
  bool HeldByCurrentThread() const;

  // Called by Shared<ResidentLock> (the Lock handle) just before this
  // process unmaps the lock, when its last handle here goes. A held lock is
  // linked into its owner thread's robust list, which must never point into
  // unmapped memory. Held by the calling thread: it is unlinked and given
  // up as the kernel does when an owner dies (word = OWNER_DIED, a sleeper
  // woken), so another process's next Acquire returns kOwnerDied; a line on
  // stderr says so. Held by another thread of this process: abort with a
  // message (that thread's list cannot be edited from here). Free, or held
  // in another process: nothing to do. A ResidentLock that a user places in
  // memory of their own must be released before that memory is unmapped.
  void OnLastHandleInProcess();

 private:
  friend struct sync_internal::LockLayout;
  static constexpr uint32_t kTidMaskPublic = 0x3fffffff;

  LockResult AcquireSlow(void* head, uint32_t tid, Deadline deadline);
  absl::Status ReleaseSlow(void* head, uint32_t word);
  absl::Status Unlock(void* head);
  LockResult TakeOver(void* head, uint32_t tid, uint32_t expected,
                      uint32_t desired, bool died);

  // Layout (offsets in bytes), fixed by the kernel/glibc robust-list
  // protocol: node (list_next_) + futex_offset (-32) == &word_.
  //
  //    0  word_        bits 0-29 owner TID (0: free), bit 30 OWNER_DIED
  //                    (set by the kernel when the owner died), bit 31
  //                    WAITERS (someone may sleep on the futex)
  //    4  owner_died_  1 while the holder took over from a dead owner
  //    8  reserved_    zero (room for RLock's count and future use)
  //   24  list_prev_   robust-list links, written only by the owning thread;
  //   32  list_next_   addresses in the owner's address space, read by the
  //                    kernel when that thread dies. Zero when free.
  //                    Release follows them only for a lock it finds on
  //                    its own thread's list.
  FutexWord word_{0};
  std::atomic<uint32_t> owner_died_{0};
  uint32_t reserved_[4] = {0, 0, 0, 0};
  uint64_t list_prev_ = 0;
  uint64_t list_next_ = 0;
};

// The fast paths, inline: one CAS (acquire) or one exchange (release) on the
// lock word, and the robust-list bookkeeping in thread-local memory. The
// thread's identity is read once; anything unusual goes out of line.
inline LockResult ResidentLock::Acquire(Deadline deadline) {
  const sync_internal::ThreadIdentity& id = sync_internal::CurrentThread();
  const uint32_t tid = id.tid;
  void* head = sync_internal::RobustHeadOf(id);
  if (head != nullptr) sync_internal::SetPending(head, &list_next_);
  MP_FAULT_POINT("lock.acquire.after_pending");
  uint32_t expected = 0;
  if (__builtin_expect(
          word_.compare_exchange_strong(expected, tid,
                                        std::memory_order_acquire,
                                        std::memory_order_relaxed),
          1)) {
    MP_FAULT_POINT("lock.acquire.after_cas");
    if (head != nullptr) {
      sync_internal::Enqueue(head, &list_next_);
      MP_FAULT_POINT("lock.acquire.after_link");
      sync_internal::ClearPending(head);
    }
    return LockResult::kAcquired;
  }
  return AcquireSlow(head, tid, deadline);
}

// The common release (held by this thread, no owner-died flag, the lock the
// first node of this thread's robust list) inline; the rest in
// ReleaseSlow, which also reports misuse.
inline absl::Status ResidentLock::Release() {
  const sync_internal::ThreadIdentity& id = sync_internal::CurrentThread();
  // The thread's list even while the fallback is forced (tests): a lock
  // linked before that must still come off it.
  void* head = id.robust_head;
  const uint32_t v = word_.load(std::memory_order_relaxed);
  if (__builtin_expect((v & sync_internal::kTidMask) != id.tid ||
                           owner_died_.load(std::memory_order_relaxed) != 0 ||
                           head == nullptr ||
                           !sync_internal::IsFirstNode(head, &list_next_),
                       0)) {
    return ReleaseSlow(head, v);
  }
  return Unlock(head);
}

// Held by this thread: unlink (when `head`, the list it is on), clear the
// word, wake a sleeper if WAITERS was set.
inline absl::Status ResidentLock::Unlock(void* head) {
  if (head != nullptr) {
    sync_internal::SetPending(head, &list_next_);
    sync_internal::Dequeue(&list_next_);
  }
  MP_FAULT_POINT("lock.release.after_unlink");
  const uint32_t old = word_.exchange(0, std::memory_order_release);
  MP_FAULT_POINT("lock.release.after_exchange");
  if (__builtin_expect((old & sync_internal::kWaiters) != 0, 0)) {
    FutexWakeOne(&word_);
  }
  MP_FAULT_POINT("lock.release.after_wake");
  if (head != nullptr) sync_internal::ClearPending(head);
  return absl::OkStatus();
}

namespace sync_internal {
struct LockLayout {
  static_assert(std::is_standard_layout_v<ResidentLock>);
  static_assert(std::is_trivially_destructible_v<ResidentLock>);
  static_assert(FutexWord::is_always_lock_free);
  static_assert(std::atomic<uint32_t>::is_always_lock_free);
  static_assert(offsetof(ResidentLock, word_) == 0);
  static_assert(offsetof(ResidentLock, list_prev_) == 24);
  static_assert(offsetof(ResidentLock, list_next_) == 32);
  static_assert(sizeof(ResidentLock) == 40);
  static_assert(alignof(ResidentLock) == 8);
};
}  // namespace sync_internal

// The resident state of an RLock: a ResidentLock and the recursion count.
class ResidentRLock {
 public:
  constexpr ResidentRLock() = default;
  ResidentRLock(const ResidentRLock&) = delete;
  ResidentRLock& operator=(const ResidentRLock&) = delete;

  // Re-entrant for the owning thread (count + 1, kAcquired). A lock taken
  // over from a dead owner starts at count 1 with kOwnerDied.
  LockResult Acquire(Deadline deadline = Deadline::Infinite());
  LockResult TryAcquire() { return Acquire(Deadline::Past()); }
  // FailedPrecondition ("cannot release un-acquired lock") if the calling
  // thread is not the owner. Releases for real when the count reaches 0.
  absl::Status Release();

  bool owner_died() const { return lock_.owner_died(); }
  bool locked() const { return lock_.locked(); }
  bool HeldByCurrentThread() const { return lock_.HeldByCurrentThread(); }
  // The recursion depth; meaningful to the owner only.
  uint32_t count() const { return count_; }

  // For Condition: give up every level of the lock at once / take it back.
  uint32_t ReleaseAll();
  LockResult AcquireRestore(uint32_t count);

  // As ResidentLock::OnLastHandleInProcess (every level is given up).
  void OnLastHandleInProcess();

 private:
  friend struct sync_internal::LockLayout;
  ResidentLock lock_;   // 0..39
  uint32_t count_ = 0;  // 40: written by the owner only
  uint32_t pad_ = 0;    // 44
};
static_assert(std::is_standard_layout_v<ResidentRLock>);
static_assert(std::is_trivially_destructible_v<ResidentRLock>);
static_assert(sizeof(ResidentRLock) == 48);

namespace sync_internal {
[[noreturn]] void Die(const char* what);
template <class R>
R& Checked(const Shared<R>& s, const char* type) {
  if (!s) Die((std::string("use of a moved-from ") + type + " handle").c_str());
  return *s;
}
}  // namespace sync_internal

namespace sync_internal {

// The handle behind Lock and RLock: owns a `Resident` in its own shared
// mapping; copies share it. Satisfies Lockable and TimedLockable, so
// std::lock_guard, std::unique_lock and std::scoped_lock work.
template <class Resident, const char* kName>
class LockHandle {
 public:
  // Throws mp::Error (ResourceExhausted) when no shared mapping can be made;
  // Lock::Create() / RLock::Create() return that status instead.
  LockHandle() : state_(Shared<Resident>::Make()) {}
  // A handle to a resident lock somewhere else (a named segment).
  explicit LockHandle(Shared<Resident> state) : state_(std::move(state)) {}

  // Blocks until acquired or `deadline` passes (a past deadline: one try).
  // kAcquired, kOwnerDied (acquired from a holder that died) or kTimedOut.
  LockResult Acquire(Deadline deadline) { return state().Acquire(deadline); }
  template <class Rep, class Period>
  LockResult Acquire(std::chrono::duration<Rep, Period> timeout) {
    return Acquire(Deadline::After(timeout));
  }
  // Python's acquire(block=True, timeout=None): true if acquired (owner
  // death included: ask owner_died()). block = false: one try.
  bool Acquire(bool block = true,
               std::optional<double> timeout_seconds = std::nullopt) {
    return Acquired(Acquire(Deadline::FromPython(block, timeout_seconds)));
  }
  // Python's acquire(0.5) means block=0.5 (truthy), not a timeout: spell
  // Acquire(true, 0.5).
  bool Acquire(double) = delete;
  LockResult TryAcquire() { return state().TryAcquire(); }
  // FailedPrecondition if not held by this thread, or on a moved-from handle.
  absl::Status Release() {
    if (!state_) {
      return absl::FailedPreconditionError(std::string("moved-from ") + kName);
    }
    return state_->Release();
  }
  bool owner_died() const { return state().owner_died(); }
  bool locked() const { return state().locked(); }

  // std names. unlock() aborts with a message on misuse.
  void lock() { Acquire(Deadline::Infinite()); }
  bool try_lock() { return Acquired(TryAcquire()); }
  template <class Rep, class Period>
  bool try_lock_for(std::chrono::duration<Rep, Period> timeout) {
    return Acquired(Acquire(Deadline::After(timeout)));
  }
  template <class Clock, class Duration>
  bool try_lock_until(std::chrono::time_point<Clock, Duration> t) {
    return try_lock_for(t - Clock::now());
  }
  void unlock() {
    absl::Status s = Release();
    if (!s.ok()) {
      Die((std::string(kName) + "::unlock: " + std::string(s.message()))
              .c_str());
    }
  }

  // The resident state (for Condition and users who need the raw object).
  Resident& state() const { return Checked(state_, kName); }

 private:
  Shared<Resident> state_;
};

inline constexpr char kLockName[] = "mp::Lock";
inline constexpr char kRLockName[] = "mp::RLock";

}  // namespace sync_internal

// A handle to a ResidentLock in its own shared mapping (see the banner).
//
// Named locks, for processes that are not parent and child: Create makes
// the /dev/shm segment `name` (O_EXCL, `mode`; AlreadyExists when taken),
// Open maps an existing one after checking its owner and mode
// (SegmentAccess, as SharedMemory::Open) and its common header (kind,
// format version, size: InvalidArgument for another kind of segment,
// DataLoss for one that is not mp's), Unlink removes the name (handles stay
// valid). Crash safety is the same as an anonymous lock's.
class Lock : public sync_internal::LockHandle<ResidentLock,
                                              sync_internal::kLockName> {
 public:
  Lock() = default;
  explicit Lock(Shared<ResidentLock> state) : LockHandle(std::move(state)) {}

  // An anonymous lock (as Lock()), or ResourceExhausted instead of a throw.
  static absl::StatusOr<Lock> Create() {
    absl::StatusOr<Shared<ResidentLock>> state = Shared<ResidentLock>::Create();
    if (!state.ok()) return state.status();
    return Lock(*std::move(state));
  }

  static absl::StatusOr<Lock> Create(std::string_view name,
                                     mode_t mode = 0600);
  static absl::StatusOr<Lock> Open(std::string_view name,
                                   const SegmentAccess& access = {});
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }
};

// A handle to a ResidentRLock. Same interface as Lock, re-entrant; named
// the same way.
class RLock : public sync_internal::LockHandle<ResidentRLock,
                                               sync_internal::kRLockName> {
 public:
  RLock() = default;
  explicit RLock(Shared<ResidentRLock> state)
      : LockHandle(std::move(state)) {}

  // An anonymous lock (as RLock()), or ResourceExhausted instead of a throw.
  static absl::StatusOr<RLock> Create() {
    absl::StatusOr<Shared<ResidentRLock>> state =
        Shared<ResidentRLock>::Create();
    if (!state.ok()) return state.status();
    return RLock(*std::move(state));
  }

  static absl::StatusOr<RLock> Create(std::string_view name,
                                      mode_t mode = 0600);
  static absl::StatusOr<RLock> Open(std::string_view name,
                                    const SegmentAccess& access = {});
  static absl::Status Unlink(std::string_view name) {
    return SharedMemory::Unlink(name);
  }
};

}  // namespace mp

#endif  // MP_SYNC_LOCK_H_
