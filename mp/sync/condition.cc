// mp/sync/condition.cc
//
// Invariant (under the user's lock): the number of threads inside Wait ==
// waiting_ + signals_. A waiter leaves either by consuming a signal
// (notified) or, on timeout with no signal left, by decrementing waiting_.
// A waiter woken with no signal to take (another took it) stays counted,
// snapshots seq_ again and sleeps again. The snapshot is taken under the
// lock and Notify bumps seq_ under the lock, so a notify between unlocking
// and sleeping makes the futex wait return at once: no lost wake-up.

#include "mp/sync/condition.h"

#include "mp/core/fault.h"
#include "mp/sync/internal/robust_list.h"

namespace mp {

bool ResidentCondition::SleepWhile(uint32_t seq, Deadline deadline) {
  for (int i = 0; i < sync_internal::kSpinIterations; ++i) {
    if (seq_.load(std::memory_order_acquire) != seq) return true;
    CpuRelax();
  }
  for (;;) {
    if (seq_.load(std::memory_order_acquire) != seq) return true;
    // Announce, then let FUTEX_WAIT re-check seq_ (the Dekker pair with
    // Notify's bump-then-read; both RMWs are seq_cst).
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    const FutexResult r = FutexWait(&seq_, seq, deadline);
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
    if (r == FutexResult::kTimedOut) {
      return seq_.load(std::memory_order_acquire) != seq;
    }
  }
}

template <class L, class ReleaseFn, class ReacquireFn>
bool ResidentCondition::WaitImpl(L& lock, Deadline deadline,
                                 ReleaseFn release, ReacquireFn reacquire) {
  if (!lock.HeldByCurrentThread()) {
    sync_internal::Die("cannot wait on un-acquired lock");
  }
  waiting_.fetch_add(1, std::memory_order_relaxed);
  for (;;) {
    const uint32_t seq = seq_.load(std::memory_order_relaxed);
    auto saved = release();
    MP_FAULT_POINT("condition.wait.after_release");
    const bool moved = SleepWhile(seq, deadline);
    MP_FAULT_POINT("condition.wait.after_wake");
    reacquire(saved);
    (void)moved;
    uint32_t s = signals_.load(std::memory_order_relaxed);
    if (s > 0) {
      signals_.store(s - 1, std::memory_order_relaxed);
      return true;
    }
    if (deadline.Expired()) {
      waiting_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
  }
}

bool ResidentCondition::Wait(ResidentLock& lock, Deadline deadline) {
  return WaitImpl(
      lock, deadline,
      [&lock] {
        (void)lock.Release();
        return 0;
      },
      [&lock](int) { lock.Acquire(); });
}

bool ResidentCondition::Wait(ResidentRLock& lock, Deadline deadline) {
  return WaitImpl(
      lock, deadline, [&lock] { return lock.ReleaseAll(); },
      [&lock](uint32_t count) { lock.AcquireRestore(count); });
}

void ResidentCondition::Notify(int n) {
  if (n <= 0) return;
  const uint32_t w = waiting_.load(std::memory_order_relaxed);
  const uint32_t k = std::min<uint32_t>(w, static_cast<uint32_t>(n));
  if (k == 0) return;
  waiting_.store(w - k, std::memory_order_relaxed);
  signals_.fetch_add(k, std::memory_order_relaxed);
  MP_FAULT_POINT("condition.notify.after_signal");
  seq_.fetch_add(1, std::memory_order_seq_cst);
  // A waiter still spinning sees seq_ move; only one that announced a sleep
  // needs the system call.
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    FutexWake(&seq_, static_cast<int>(k));
  }
}

bool Condition::HeldByCurrentThread() const {
  return std::visit(
      [](const auto& l) { return l.state().HeldByCurrentThread(); }, lock_);
}

bool Condition::Wait(Deadline deadline) {
  ResidentCondition& c = state();
  return std::visit([&](auto& l) { return c.Wait(l.state(), deadline); },
                    lock_);
}

void Condition::Notify(int n) {
  ResidentCondition& c = state();
  if (!HeldByCurrentThread()) {
    sync_internal::Die("cannot notify on un-acquired lock");
  }
  c.Notify(n);
}

void Condition::NotifyAll() { Notify(0x7fffffff); }

LockResult Condition::Acquire(Deadline deadline) {
  state();
  return std::visit([&](auto& l) { return l.Acquire(deadline); }, lock_);
}

absl::Status Condition::Release() {
  if (!state_) return absl::FailedPreconditionError("moved-from mp::Condition");
  return std::visit([](auto& l) { return l.Release(); }, lock_);
}

bool Condition::owner_died() const {
  return std::visit([](const auto& l) { return l.owner_died(); }, lock_);
}

void Condition::unlock() {
  absl::Status s = Release();
  if (!s.ok()) {
    sync_internal::Die(
        ("mp::Condition::unlock: " + std::string(s.message())).c_str());
  }
}

}  // namespace mp
