// mp/sync/lock.cc
//
// The lock word follows Drepper's three-state futex mutex ("Futexes Are
// Tricky", mutex3) with the states spelled in the kernel's robust layout:
//
//   0                 unlocked
//   tid               locked, nobody sleeps
//   tid | WAITERS     locked, someone may sleep on the futex
//   OWNER_DIED [| WAITERS]   the owner died; the kernel cleared its TID
//
// Acquire: CAS 0 -> tid. Otherwise set WAITERS and sleep, with no spin
// first (as glibc's default mutex): a waiter polling the word takes the line
// from the holder at every poll, and two processes hammering one lock then
// run about 10% slower (bench/sync_bench lock_contended_2proc) with no gain
// elsewhere (condvar_pingpong's re-acquire included). A thread that has
// slept takes the lock with WAITERS set (it cannot know whether others
// still sleep), as mutex3 takes state 2.
// Release: exchange -> 0 and wake one sleeper if WAITERS was set.
// Robust list: list_op_pending is set around every CAS and unlink, as glibc
// does, so a death between the word change and the list change is still
// seen by the kernel (it checks the pending node's word for our TID).

#include "mp/sync/lock.h"

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "mp/sync/internal/named.h"
#include "mp/sync/internal/robust_list.h"

namespace mp {

using sync_internal::kOwnerDied;
using sync_internal::kTidMask;
using sync_internal::kWaiters;
using sync_internal::Die;

static_assert(sync_internal::kTidMask == 0x3fffffff);

namespace sync_internal {
void Die(const char* what) {
  std::fprintf(stderr, "mp: %s\n", what);
  std::fflush(stderr);
  std::abort();
}
}  // namespace sync_internal

LockResult ResidentLock::TakeOver(void* head, uint32_t tid, uint32_t expected,
                                  uint32_t desired, bool died) {
  if (!word_.compare_exchange_strong(expected, desired,
                                     std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    return LockResult::kTimedOut;  // lost the race: caller retries
  }
  MP_FAULT_POINT("lock.acquire.after_takeover");
  (void)tid;
  if (head != nullptr) {
    sync_internal::Enqueue(head, &list_next_);
    sync_internal::ClearPending(head);
  }
  if (died) {
    owner_died_.store(1, std::memory_order_relaxed);
    return LockResult::kOwnerDied;
  }
  return LockResult::kAcquired;
}

// How many times a waiter yields and looks again before it sleeps (lock.h).
constexpr int kYields = 64;

LockResult ResidentLock::AcquireSlow(void* head, uint32_t tid,
                                     Deadline deadline) {
  bool slept = false;
  int yields = 0;
  for (;;) {
    uint32_t v = word_.load(std::memory_order_relaxed);
    const uint32_t owner = v & kTidMask;
    if (owner == 0) {
      const bool died = (v & kOwnerDied) != 0;
      const uint32_t desired = tid | (v & kWaiters) | (slept ? kWaiters : 0);
      LockResult r = TakeOver(head, tid, v, desired, died);
      if (r != LockResult::kTimedOut) return r;
      continue;
    }
    if (head == nullptr && owner != tid && liveness::TaskIsDead(owner)) {
      // Fallback: the owner is gone and nobody will clear its TID for us.
      LockResult r = TakeOver(head, tid, v, tid | kWaiters, /*died=*/true);
      if (r != LockResult::kTimedOut) return r;
      continue;
    }
    if (deadline.Expired()) break;
    // Before sleeping: yield the core and look again, up to kYields times
    // (lock.h, "Fast paths").
    if (yields < kYields) {
      ++yields;
      sched_yield();
      continue;
    }
    if ((v & kWaiters) == 0) {
      if (!word_.compare_exchange_weak(v, v | kWaiters,
                                       std::memory_order_relaxed)) {
        continue;
      }
      v |= kWaiters;
    }
    // Sleep in slices, then look again. The fallback needs them to test the
    // owner's liveness. The robust path needs them too: a releaser killed
    // between its exchange and its FUTEX_WAKE, with a fast-path acquirer
    // slipping in before the kernel's death handling (which then sees a live
    // owner and wakes nobody), would otherwise strand us on a free lock for
    // ever (found by verify/lock.pml; glibc's robust mutexes share the gap).
    const Deadline until = Deadline::Earlier(
        deadline, Deadline::After(head == nullptr
                                      ? sync_internal::kFallbackSlice
                                      : sync_internal::kRobustSlice));
    MP_FAULT_POINT("lock.acquire.before_sleep");
    FutexWait(&word_, v, until);
    slept = true;
    yields = 0;  // woken: the next holder may be about to release too
  }
  if (head != nullptr) sync_internal::ClearPending(head);
  return LockResult::kTimedOut;
}

absl::Status ResidentLock::ReleaseSlow(void* head, uint32_t v) {
  if ((v & kTidMask) != sync_internal::CurrentThread().tid) {
    return absl::FailedPreconditionError(
        (v & kTidMask) == 0 ? "release unlocked lock"
                            : "release of a lock held by another thread");
  }
  if (owner_died_.load(std::memory_order_relaxed) != 0) {
    owner_died_.store(0, std::memory_order_relaxed);
  }
  // Linked iff acquired while the robust list was in use. The links are
  // bytes in shared memory: follow them only once the lock is found on this
  // thread's list (a writer may have put our TID in the word and anything
  // in the links); otherwise they are junk, and cleared.
  if (head != nullptr &&
      (list_next_ == 0 || !sync_internal::IsLinked(head, &list_next_))) {
    head = nullptr;
  }
  if (head == nullptr) {
    list_prev_ = 0;
    list_next_ = 0;
  }
  return Unlock(head);
}

void ResidentLock::OnLastHandleInProcess() {
  uint32_t v = word_.load(std::memory_order_relaxed);
  const uint32_t owner = v & kTidMask;
  if (owner == 0) return;
  const liveness::ThreadIdentity& id = sync_internal::CurrentThread();
  if (owner != id.tid) {
    if (sync_internal::IsThreadOfThisProcess(owner)) {
      Die("mp::Lock: the last handle in this process was dropped while "
          "another thread of it holds the lock; release it first");
    }
    return;  // another process's lock to release
  }
  std::fprintf(stderr,
               "mp: the last handle in this process to a lock held by this "
               "thread was dropped; the lock is given up as owner-died\n");
  // Off our robust list first: the kernel must never walk into the mapping
  // that is about to go. Follow the links only for a lock found on the list.
  void* head = id.robust_head;
  const bool linked = head != nullptr && list_next_ != 0 &&
                      sync_internal::IsLinked(head, &list_next_);
  if (linked) {
    sync_internal::SetPending(head, &list_next_);
    sync_internal::Dequeue(&list_next_);
  }
  list_prev_ = 0;
  list_next_ = 0;
  owner_died_.store(0, std::memory_order_relaxed);
  // What the kernel does for a dead owner (handle_futex_death): keep
  // WAITERS, set OWNER_DIED, wake one sleeper if any.
  while (!word_.compare_exchange_weak(v, (v & kWaiters) | kOwnerDied,
                                      std::memory_order_release,
                                      std::memory_order_relaxed)) {
  }
  if ((v & kWaiters) != 0) FutexWakeOne(&word_);
  if (linked) sync_internal::ClearPending(head);
}

bool ResidentLock::HeldByCurrentThread() const {
  return (word_.load(std::memory_order_relaxed) & kTidMask) ==
         sync_internal::CurrentThread().tid;
}

LockResult ResidentRLock::Acquire(Deadline deadline) {
  if (lock_.HeldByCurrentThread()) {
    ++count_;
    return LockResult::kAcquired;
  }
  LockResult r = lock_.Acquire(deadline);
  if (Acquired(r)) count_ = 1;
  return r;
}

absl::Status ResidentRLock::Release() {
  if (!lock_.HeldByCurrentThread() || count_ == 0) {
    return absl::FailedPreconditionError("cannot release un-acquired lock");
  }
  if (--count_ == 0) return lock_.Release();
  return absl::OkStatus();
}

uint32_t ResidentRLock::ReleaseAll() {
  const uint32_t c = count_;
  count_ = 0;
  (void)lock_.Release();
  return c;
}

void ResidentRLock::OnLastHandleInProcess() {
  if (lock_.HeldByCurrentThread()) count_ = 0;
  lock_.OnLastHandleInProcess();
}

LockResult ResidentRLock::AcquireRestore(uint32_t count) {
  LockResult r = lock_.Acquire();
  count_ = count;
  return r;
}

namespace {

template <class Handle, class Resident>
absl::StatusOr<Handle> CreateNamedLock(std::string_view name, mode_t mode) {
  auto mem = sync_internal::CreateNamed<Resident>(
      name, SegmentKind::kLock, mode, [](void* at) { new (at) Resident(); });
  if (!mem.ok()) return mem.status();
  return Handle(Shared<Resident>::At(*std::move(mem),
                                     sync_internal::kNamedStateOffset));
}

template <class Handle, class Resident>
absl::StatusOr<Handle> OpenNamedLock(std::string_view name,
                                     const SegmentAccess& access) {
  auto mem = sync_internal::OpenNamed<Resident>(name, SegmentKind::kLock,
                                                access);
  if (!mem.ok()) return mem.status();
  return Handle(Shared<Resident>::At(*std::move(mem),
                                     sync_internal::kNamedStateOffset));
}

}  // namespace

absl::StatusOr<Lock> Lock::Create(std::string_view name, mode_t mode) {
  return CreateNamedLock<Lock, ResidentLock>(name, mode);
}
absl::StatusOr<Lock> Lock::Open(std::string_view name,
                                const SegmentAccess& access) {
  return OpenNamedLock<Lock, ResidentLock>(name, access);
}
absl::StatusOr<RLock> RLock::Create(std::string_view name, mode_t mode) {
  return CreateNamedLock<RLock, ResidentRLock>(name, mode);
}
absl::StatusOr<RLock> RLock::Open(std::string_view name,
                                  const SegmentAccess& access) {
  return OpenNamedLock<RLock, ResidentRLock>(name, access);
}

}  // namespace mp
