// fuzz/sync_fuzz.cc
// -----------------------------------------------------------------------------
// The resident sync types with bytes another process wrote. The input
// (sync_input.h): a selector byte (the type, and whether to write this
// thread's TID into the lock word, and whether to use the liveness fallback
// instead of the kernel's robust list), then the object's bytes, in a heap
// block of exactly its size, then one operation per byte (at most 48).
//
// Every wait has a past or a 1 us deadline: a hostile lock word naming a
// live task makes a timed wait last until its deadline, never longer. The
// properties are the headers' contracts: an operation on a free lock
// succeeds; a release by a thread that does not hold the lock is
// FailedPrecondition and changes nothing; Event, Semaphore and Barrier
// answer as documented; nothing crashes, hangs or touches memory outside
// the object. At the end of each input the thread holds no lock and its
// robust list is as it was.

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/sync_input.h"
#include "mp/core/futex.h"
#include "mp/queue/internal/ring.h"
#include "mp/sync/barrier.h"
#include "mp/sync/condition.h"
#include "mp/sync/event.h"
#include "mp/sync/internal/robust_list.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"

namespace {

using mp::Deadline;
using mp::LockResult;
using mp::fuzz::AlignedBytes;
using mp::fuzz::InputReader;

constexpr int kMaxOps = 48;
constexpr uint32_t kTidMask = mp::sync_internal::kTidMask;
constexpr uint32_t kOwnerDied = mp::sync_internal::kOwnerDied;

uint32_t MyTid() { return static_cast<uint32_t>(syscall(SYS_gettid)); }

Deadline PastOrTiny(uint8_t op) {
  return (op & mp::fuzz::kTinyWait) != 0
             ? Deadline::After(std::chrono::microseconds(1))
             : Deadline::Past();
}

uint32_t LoadWord(const void* p) {
  uint32_t w;
  std::memcpy(&w, p, sizeof(w));
  return w;
}

// The state bytes in a block of exactly sizeof(T), viewed as the T another
// process left there (resident types are valid at any address, whatever
// process wrote their bytes).
template <class T>
struct Resident {
  Resident(InputReader& in, bool own_tid, uint32_t tid_mask)
      : bytes(nullptr, 0, sizeof(T), alignof(T) < 64 ? 64 : alignof(T)) {
    in.Bytes(bytes.data(), sizeof(T));
    if (own_tid) {
      uint32_t w = LoadWord(bytes.data());
      w = (w & ~tid_mask) | (MyTid() & tid_mask);
      std::memcpy(bytes.data(), &w, sizeof(w));
    }
  }
  T& get() { return *std::launder(reinterpret_cast<T*>(bytes.data())); }
  uint32_t word() const { return LoadWord(bytes.data()); }
  AlignedBytes bytes;
};

// ---- Lock and RLock ---------------------------------------------------------

void CheckAcquired(LockResult r, uint32_t word_before, bool held_before) {
  if (held_before) return;
  if ((word_before & kTidMask) == 0) {
    // A free lock (owner-died or waiters bits aside) is taken at once.
    FUZZ_CHECK(r == ((word_before & kOwnerDied) != 0 ? LockResult::kOwnerDied
                                                     : LockResult::kAcquired));
  }
}

template <class L>
void ReleaseAndCheck(Resident<L>& lock) {
  L& l = lock.get();
  const bool held = l.HeldByCurrentThread();
  const uint32_t before = lock.word();
  absl::Status s = l.Release();
  if (!held) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
    FUZZ_CHECK(lock.word() == before);
    return;
  }
  if constexpr (std::is_same_v<L, mp::ResidentRLock>) {
    // An RLock whose count says it is not held reports that instead.
    if (!s.ok()) {
      FUZZ_CHECK(s.code() == absl::StatusCode::kFailedPrecondition);
      return;
    }
  }
  FUZZ_CHECK(s.ok());
}

void RunLock(InputReader& in, bool own_tid) {
  Resident<mp::ResidentLock> lock(in, own_tid, kTidMask);
  mp::ResidentLock& l = lock.get();
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    switch (op % 4) {
      case 0:
      case 1: {
        const uint32_t before = lock.word();
        const bool held = l.HeldByCurrentThread();
        LockResult r = op % 4 == 0 ? l.TryAcquire() : l.Acquire(PastOrTiny(op));
        CheckAcquired(r, before, held);
        if (mp::Acquired(r)) {
          FUZZ_CHECK(l.HeldByCurrentThread() && l.locked());
          // (Not the converse: a stale owner_died flag a writer left in a
          // free lock stays until the next Release clears it.)
          if (r == LockResult::kOwnerDied) FUZZ_CHECK(l.owner_died());
        }
        break;
      }
      case 2:
        ReleaseAndCheck(lock);
        break;
      case 3:
        (void)l.locked();
        (void)l.owner_died();
        break;
    }
  }
  if (l.HeldByCurrentThread()) {
    FUZZ_CHECK(l.Release().ok());
    FUZZ_CHECK(!l.HeldByCurrentThread() && !l.owner_died());
  }
}

void RunRLock(InputReader& in, bool own_tid) {
  Resident<mp::ResidentRLock> lock(in, own_tid, kTidMask);
  mp::ResidentRLock& l = lock.get();
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    switch (op % 3) {
      case 0: {
        const uint32_t before = lock.word();
        const bool held = l.HeldByCurrentThread();
        const uint32_t count = l.count();
        LockResult r = l.Acquire(PastOrTiny(op));
        CheckAcquired(r, before, held);
        if (held) {
          FUZZ_CHECK(r == LockResult::kAcquired && l.count() == count + 1);
        } else if (mp::Acquired(r)) {
          FUZZ_CHECK(l.HeldByCurrentThread() && l.count() == 1);
        }
        break;
      }
      case 1:
        ReleaseAndCheck(lock);
        break;
      case 2:
        (void)l.locked();
        (void)l.count();
        break;
    }
  }
  if (l.HeldByCurrentThread()) {
    (void)l.ReleaseAll();
    FUZZ_CHECK(!l.HeldByCurrentThread());
  }
}

// ---- Condition --------------------------------------------------------------

template <class L>
void RunCondition(InputReader& in) {
  Resident<mp::ResidentCondition> cond(in, false, 0);
  mp::ResidentCondition& c = cond.get();
  L lock;  // the user's lock is ours; the condition's bytes are not
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    switch (op % 5) {
      case 0:
        if (!lock.HeldByCurrentThread()) {
          FUZZ_CHECK(mp::Acquired(lock.TryAcquire()));
        }
        break;
      case 1:
        if (lock.HeldByCurrentThread()) {
          if constexpr (std::is_same_v<L, mp::ResidentRLock>) {
            (void)lock.ReleaseAll();
          } else {
            FUZZ_CHECK(lock.Release().ok());
          }
        }
        break;
      case 2:
        c.Notify(static_cast<int>(static_cast<int8_t>(in.Byte())));
        break;
      case 3:
        c.NotifyAll();
        break;
      case 4:
        // Wait needs the lock held (the handle aborts otherwise, by contract).
        if (lock.HeldByCurrentThread()) {
          (void)c.Wait(lock, PastOrTiny(op));
          FUZZ_CHECK(lock.HeldByCurrentThread());
        }
        break;
    }
  }
  if (lock.HeldByCurrentThread()) {
    if constexpr (std::is_same_v<L, mp::ResidentRLock>) {
      (void)lock.ReleaseAll();
    } else {
      FUZZ_CHECK(lock.Release().ok());
    }
  }
}

// ---- Event ------------------------------------------------------------------

void RunEvent(InputReader& in) {
  Resident<mp::ResidentEvent> event(in, false, 0);
  mp::ResidentEvent& e = event.get();
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    switch (op % 4) {
      case 0:
        e.Set();
        FUZZ_CHECK(e.IsSet() && e.Wait(Deadline::Past()));
        break;
      case 1:
        e.Clear();
        FUZZ_CHECK(!e.IsSet() && !e.Wait(PastOrTiny(op)));
        break;
      case 2: {
        const bool set = e.IsSet();
        FUZZ_CHECK(e.Wait(PastOrTiny(op)) == set);
        break;
      }
      case 3:
        (void)e.IsSet();
        break;
    }
  }
}

// ---- Semaphore --------------------------------------------------------------

void RunSemaphore(InputReader& in) {
  Resident<mp::ResidentSemaphore> sem(in, false, 0);
  mp::ResidentSemaphore& s = sem.get();
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    const uint32_t before = s.GetValue();
    switch (op % 3) {
      case 0: {
        const bool got =
            (op & 0x40) != 0 ? s.TryAcquire() : s.Acquire(PastOrTiny(op));
        // Alone with it: a unit is taken exactly when there is one.
        FUZZ_CHECK(got == (before > 0));
        FUZZ_CHECK(s.GetValue() == (got ? before - 1 : before));
        break;
      }
      case 1: {
        const int n = static_cast<int8_t>(in.Byte());
        absl::Status st = s.Release(n);
        if (n < 1) {
          FUZZ_CHECK(st.code() == absl::StatusCode::kInvalidArgument);
        }
        if (st.ok()) {
          FUZZ_CHECK(s.GetValue() == before + static_cast<uint32_t>(n));
          // Never past SEM_VALUE_MAX, whatever the bound word says.
          FUZZ_CHECK(s.GetValue() <= mp::ResidentSemaphore::kMaxValue);
        } else {
          FUZZ_CHECK(s.GetValue() == before);
          FUZZ_CHECK(st.code() == absl::StatusCode::kInvalidArgument ||
                     st.code() == absl::StatusCode::kFailedPrecondition);
        }
        break;
      }
      case 2:
        (void)s.GetValue();
        break;
    }
  }
}

// ---- Barrier ----------------------------------------------------------------

void RunBarrier(InputReader& in, bool own_tid) {
  Resident<mp::ResidentBarrier> barrier(in, own_tid, kTidMask);
  mp::ResidentBarrier& b = barrier.get();
  int actions = 0;
  const std::function<void()> action = [&actions] { ++actions; };
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    // The barrier's lock is its first member (barrier.h's layout). Abort
    // and Reset wait for it without a deadline, as Python's do: only call
    // them when it is free.
    const bool lock_free = (barrier.word() & kTidMask) == 0;
    switch (op % 4) {
      case 0: {
        const int before = actions;
        const bool mine = (barrier.word() & kTidMask) == MyTid();
        absl::StatusOr<int> r = b.Wait(PastOrTiny(op), &action);
        if (r.ok()) {
          FUZZ_CHECK(*r >= 0 && *r < b.Parties());
          // The last party runs the action, exactly once.
          FUZZ_CHECK((actions - before) == (*r == b.Parties() - 1 ? 1 : 0));
        } else {
          FUZZ_CHECK(r.status().code() == absl::StatusCode::kAborted ||
                     r.status().code() == absl::StatusCode::kDeadlineExceeded);
          FUZZ_CHECK(actions == before);
        }
        // Wait leaves the lock as it found it: not held by this thread
        // (unless a writer had put this thread's TID there).
        if (!mine) FUZZ_CHECK((barrier.word() & kTidMask) != MyTid());
        break;
      }
      case 1:
        if (lock_free) {
          b.Abort();
          FUZZ_CHECK(b.Broken());
        }
        break;
      case 2:
        if (lock_free) b.Reset();
        break;
      case 3:
        (void)b.Broken();
        (void)b.NWaiting();
        (void)b.Parties();
        break;
    }
  }
}

// ---- PidLock (the ring's and PipeQueue's lock) ------------------------------

void RunPidLock(InputReader& in, bool own_tid) {
  using mp::queue_internal::PidLock;
  Resident<PidLock> lock(in, own_tid, PidLock::kHolderMask);
  PidLock& l = lock.get();
  bool held = false;
  for (int i = 0; i < kMaxOps && in.remaining() > 0; ++i) {
    const uint8_t op = in.Byte();
    if (op % 2 == 0 && !held) {
      const uint32_t before = lock.word();
      PidLock::Acquired a = l.Lock(PastOrTiny(op));
      // A word that names no holder (a waiters bit aside) is a free lock.
      if ((before & PidLock::kHolderMask) == 0) {
        FUZZ_CHECK(a != PidLock::Acquired::kNo);
      }
      held = a != PidLock::Acquired::kNo;
      if (held) {
        FUZZ_CHECK((lock.word() & PidLock::kHolderMask) == MyTid());
      }
    } else if (op % 2 == 1 && held) {
      l.Unlock();
      held = false;
      FUZZ_CHECK(lock.word() == 0);
    }
  }
  if (held) l.Unlock();
}

// The thread's robust list head, for the balance check.
uintptr_t RobustListFirst() {
  void* head = mp::sync_internal::CurrentThread().robust_head;
  if (head == nullptr) return 0;
  return reinterpret_cast<uintptr_t>(
      static_cast<robust_list_head*>(head)->list.next);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  InputReader in(data, size);
  const uint8_t selector = in.Byte();
  const bool own_tid = (selector & mp::fuzz::kOwnTid) != 0;
  mp::sync_internal::SetRobustListDisabledForTesting(
      (selector & mp::fuzz::kNoRobustList) != 0);
  const uintptr_t robust_first = RobustListFirst();
  switch (selector & 0x07) {
    case mp::fuzz::kLockType:
      RunLock(in, own_tid);
      break;
    case mp::fuzz::kRLockType:
      RunRLock(in, own_tid);
      break;
    case mp::fuzz::kConditionOverLock:
      RunCondition<mp::ResidentLock>(in);
      break;
    case mp::fuzz::kConditionOverRLock:
      RunCondition<mp::ResidentRLock>(in);
      break;
    case mp::fuzz::kEventType:
      RunEvent(in);
      break;
    case mp::fuzz::kSemaphoreType:
      RunSemaphore(in);
      break;
    case mp::fuzz::kBarrierType:
      RunBarrier(in, own_tid);
      break;
    case mp::fuzz::kPidLockType:
      RunPidLock(in, own_tid);
      break;
  }
  // Every lock taken was released and unlinked: the list is as it was.
  FUZZ_CHECK(RobustListFirst() == robust_first);
  mp::sync_internal::SetRobustListDisabledForTesting(false);
  return 0;
}
