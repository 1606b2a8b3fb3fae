// mp/sync/condition.cc
//
// Invariant (under the user's lock): the number of threads inside Wait ==
// waiting + signals, less the waiters killed inside Wait (see below). A
// waiter leaves either by consuming a signal (notified) or, on timeout with
// no signal it may take, by decrementing waiting. A waiter woken with no
// signal to take (another took it) stays counted, snapshots seq_ again and
// sleeps again. The snapshot is taken under the lock and Notify bumps seq_
// under the lock, so a notify between unlocking and sleeping makes the futex
// wait return at once: no lost wake-up.
//
// Kills. waiting and signals share one 64-bit word, so a grant (waiting -= k,
// signals += k) is one store: no kill splits it. Notify bumps seq_ BEFORE it
// grants, so
//   * every signal is granted at a sequence later than the entry of every
//     waiter it was granted to: a waiter may take a signal only if seq_ has
//     moved since it entered Wait, and a signal left over from a waiter that
//     died never satisfies a waiter that entered after that signal's grant;
//   * a notifier killed between the bump and the grant leaves the waiters
//     counted in waiting (they wake, find nothing and wait again) and
//     nothing half done for the next Notify;
//   * a notifier killed after the grant, before its FUTEX_WAKE, leaves
//     sleepers on a seq_ that has already moved: each finds it at the end of
//     its slice (kRobustSlice), and the next Notify that finds nobody to
//     grant to but signals pending and sleepers announced wakes them at once.

#include "mp/sync/condition.h"

#include <algorithm>
#include <climits>
#include <cstddef>
#include <new>
#include <type_traits>

#include "mp/sync/internal/fault_points.h"
#include "mp/sync/internal/named.h"
#include "mp/sync/internal/robust_list.h"

namespace mp {

bool ResidentCondition::SleepWhile(uint32_t seq, Deadline deadline) {
  for (int i = 0; i < sync_internal::kSpinIterations; ++i) {
    if (seq_.load(std::memory_order_acquire) != seq) return true;
    CpuRelax();
  }
  for (;;) {
    if (seq_.load(std::memory_order_acquire) != seq) return true;
    if (deadline.Expired()) return false;
    // Announce, then let FUTEX_WAIT re-check seq_ (the Dekker pair with
    // Notify's bump-then-read; both RMWs are seq_cst). Sleep in slices: a
    // notifier killed after its bump, before its wake, owes us a wake-up.
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    FutexWait(&seq_, seq, sync_internal::SliceOf(deadline));
    sleepers_.fetch_sub(1, std::memory_order_relaxed);
  }
}

template <class L, class ReleaseFn, class ReacquireFn>
bool ResidentCondition::WaitImpl(L& lock, Deadline deadline,
                                 ReleaseFn release, ReacquireFn reacquire) {
  if (!lock.HeldByCurrentThread()) {
    sync_internal::Die("cannot wait on un-acquired lock");
  }
  // Under the lock: the sequence we entered at, and our count in waiting.
  const uint32_t entry = seq_.load(std::memory_order_relaxed);
  uint64_t c = counts_.load(std::memory_order_relaxed);
  counts_.store(Pack(Waiting(c) + 1, Signals(c)), std::memory_order_relaxed);
  for (;;) {
    const uint32_t seq = seq_.load(std::memory_order_relaxed);
    auto saved = release();
    MP_FAULT_POINT("condition.wait.after_release");
    SleepWhile(seq, deadline);
    MP_FAULT_POINT("condition.wait.after_wake");
    // The lock's owner died while we slept: return now (the lock keeps
    // saying owner_died() until we release it, which a loop here would do).
    const bool owner_died = reacquire(saved) == LockResult::kOwnerDied;
    c = counts_.load(std::memory_order_relaxed);
    // A signal may be ours only if a Notify began after we entered.
    if (Signals(c) > 0 && seq_.load(std::memory_order_relaxed) != entry) {
      counts_.store(Pack(Waiting(c), Signals(c) - 1),
                    std::memory_order_relaxed);
      return true;
    }
    if (owner_died || deadline.Expired()) {
      // waiting is >= 1 here (we are in it); the bytes are shared memory,
      // so never wrap it below zero whatever they hold.
      if (Waiting(c) > 0) {
        counts_.store(Pack(Waiting(c) - 1, Signals(c)),
                      std::memory_order_relaxed);
      }
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
      [&lock](int) { return lock.Acquire(); });
}

bool ResidentCondition::Wait(ResidentRLock& lock, Deadline deadline) {
  return WaitImpl(
      lock, deadline, [&lock] { return lock.ReleaseAll(); },
      [&lock](uint32_t count) { return lock.AcquireRestore(count); });
}

void ResidentCondition::Notify(int n) {
  if (n <= 0) return;
  const uint64_t c = counts_.load(std::memory_order_relaxed);
  const uint32_t w = Waiting(c);
  const uint32_t s = Signals(c);
  const uint32_t k = std::min<uint32_t>(w, static_cast<uint32_t>(n));
  if (k == 0) {
    // Nobody to grant to. Signals pending with a sleeper announced: a
    // notifier may have died between its grant and its wake; finish its
    // step (seq_ has moved already, so the woken take their signals). Only
    // reached in that state, never on the paths a live notifier leaves.
    if (s != 0 && sleepers_.load(std::memory_order_seq_cst) != 0) {
      FutexWakeAll(&seq_);
    }
    return;
  }
  // Bump first, then grant (one store): see the top of this file.
  seq_.fetch_add(1, std::memory_order_seq_cst);
  MP_FAULT_POINT("condition.notify.after_bump");
  const uint32_t granted = s > UINT32_MAX - k ? UINT32_MAX : s + k;
  counts_.store(Pack(w - k, granted), std::memory_order_relaxed);
  MP_FAULT_POINT("condition.notify.after_signal");
  // A waiter still spinning sees seq_ move; only one that announced a sleep
  // needs the system call. Wake one sleeper per signal now pending, not
  // just the k granted: the s found pending may be a dead notifier's grant
  // whose wake never came (issue 16), and the one system call costs the
  // same. A live notifier's pending signals make at most that many
  // needless wake-ups of waiters who find seq_ moved and the lock busy.
  if (sleepers_.load(std::memory_order_seq_cst) != 0) {
    FutexWake(&seq_, static_cast<int>(std::min<uint32_t>(granted, INT_MAX)));
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

namespace {

// A named condition's segment: the condition and its lock, side by side.
struct NamedConditionState {
  ResidentCondition condition;
  ResidentRLock lock;
};
static_assert(std::is_standard_layout_v<NamedConditionState>);
static_assert(std::is_trivially_destructible_v<NamedConditionState>);

}  // namespace

absl::StatusOr<Condition> Condition::Create() {
  absl::StatusOr<RLock> lock = RLock::Create();
  if (!lock.ok()) return lock.status();
  absl::StatusOr<Shared<ResidentCondition>> state =
      Shared<ResidentCondition>::Create();
  if (!state.ok()) return state.status();
  return Condition(*std::move(state), *std::move(lock));
}

absl::StatusOr<Condition> Condition::Create(std::string_view name,
                                            mode_t mode) {
  auto mem = sync_internal::CreateNamed<NamedConditionState>(
      name, SegmentKind::kCondition, mode,
      [](void* at) { new (at) NamedConditionState(); });
  if (!mem.ok()) return mem.status();
  constexpr size_t kAt = sync_internal::kNamedStateOffset;
  return Condition(
      Shared<ResidentCondition>::At(
          *mem, kAt + offsetof(NamedConditionState, condition)),
      RLock(Shared<ResidentRLock>::At(
          *mem, kAt + offsetof(NamedConditionState, lock))));
}

absl::StatusOr<Condition> Condition::Open(std::string_view name,
                                          const SegmentAccess& access) {
  auto mem = sync_internal::OpenNamed<NamedConditionState>(
      name, SegmentKind::kCondition, access);
  if (!mem.ok()) return mem.status();
  constexpr size_t kAt = sync_internal::kNamedStateOffset;
  return Condition(
      Shared<ResidentCondition>::At(
          *mem, kAt + offsetof(NamedConditionState, condition)),
      RLock(Shared<ResidentRLock>::At(
          *mem, kAt + offsetof(NamedConditionState, lock))));
}

}  // namespace mp
