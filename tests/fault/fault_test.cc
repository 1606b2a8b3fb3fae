// The fault-point driver: for every point in mp::fault::Points() (each
// package's fault_points.h), kill a
// process there (SIGKILL at its n-th hit, n random) at least kMinKills times
// and check what the sync and queue issues promise after each death:
//   * nobody hangs: every survivor's blocking call returns (all use
//     deadlines, and the test fails if one is exceeded);
//   * the owner-died indication is seen exactly once when the victim died
//     holding the lock, never otherwise, and the data it protects is intact
//     whenever it is not reported;
//   * no torn, duplicated or reordered message is delivered; a message the
//     victim fully wrote is delivered, or counted in lost_records(), exactly
//     as the point says.
//
//   bazel test --config=fault //tests/fault:fault_test
//
// In a build without fault points the test checks that they are compiled
// out (Arm fails, nothing counts hits) and runs nothing else.
// MP_FAULT_KILLS overrides the number of kills per point.

#include "mp/core/fault.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "mp/queue/queue.h"
#include "mp/sync/barrier.h"
#include "mp/sync/condition.h"
#include "mp/sync/event.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"
#include "tests/watchdog.h"

namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

[[maybe_unused]] int MinKills() {
  return mp_test::CountFromEnv("MP_FAULT_KILLS", 100);
}

// A survivor's call that takes longer than this is a hang.
constexpr auto kHang = seconds(5);

// ---- processes --------------------------------------------------------------

// Exit codes of children that found a broken invariant.
constexpr int kOk = 0;
constexpr int kHung = 3;       // a blocking call with a deadline timed out
constexpr int kCorrupt = 4;    // protected data or a message was wrong
constexpr int kOwnerDied = 5;  // owner-died where none was possible

using mp_test::Describe;
using mp_test::KillAndReap;
using mp_test::WaitFor;

template <class F>
pid_t Fork(F&& body) {
  return mp_test::ForkChild(std::forward<F>(body));
}

bool KilledAtPoint(int status) {
  return status >= 0 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

// Waits up to 2 s for the victim; true if it died at its point. One that
// never got there is killed (not a hit).
bool VictimDiedAtPoint(pid_t victim) {
  const int status = WaitFor(victim, std::chrono::seconds(2));
  if (status == -1) KillAndReap(victim);
  return KilledAtPoint(status);
}

// Waits up to `timeout` for a survivor that must exit 0; a hung one is killed.
// Records the first failure in `failure`.
void ExpectExitsCleanly(pid_t pid, std::chrono::milliseconds timeout,
                        const char* who, std::string* failure) {
  const int status = WaitFor(pid, timeout);
  if (status == -1) KillAndReap(pid);
  if (failure->empty() &&
      (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
    *failure = absl::StrCat(who, ": ", Describe(status));
  }
}

using mp_test::MapShared;
using mp_test::Unmap;

void Arm(std::string_view point, uint64_t nth) {
  if (!mp::fault::Arm(point, nth, mp::fault::Action::kKill).ok()) _exit(99);
}

// What one round found: whether the victim died at the point, and the first
// broken invariant, if any.
struct Round {
  bool hit = false;
  std::string failure;
};

// ---- lock -------------------------------------------------------------------

struct LockArena {
  mp::ResidentLock lock;
  uint64_t a = 0, b = 0;  // a == b whenever the lock is free
  std::atomic<uint32_t> owner_died_seen{0};
  std::atomic<uint32_t> stop{0};
};

// Acquires; on owner-died counts it and repairs; checks the invariant.
int CheckedIncrement(LockArena* s) {
  mp::LockResult r = s->lock.Acquire(mp::Deadline::After(kHang));
  if (r == mp::LockResult::kTimedOut) return kHung;
  if (r == mp::LockResult::kOwnerDied) {
    s->owner_died_seen.fetch_add(1);
    s->b = s->a;
  } else if (s->a != s->b) {
    return kCorrupt;
  }
  ++s->a;
  ++s->b;
  (void)s->lock.Release();
  return kOk;
}

// Whether the victim holds the lock word when it dies at `point`.
bool HoldsLockAt(std::string_view point) {
  return point == "lock.acquire.after_cas" ||
         point == "lock.acquire.after_link" ||
         point == "lock.acquire.after_takeover" ||
         point == "lock.release.after_unlink";
}

Round LockRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<LockArena>();
  pid_t victim = Fork([&] {
    Arm(point, nth);
    for (;;) {
      if (s->lock.Acquire() == mp::LockResult::kOwnerDied) return kOwnerDied;
      ++s->a;
      ++s->b;
      (void)s->lock.Release();
    }
  });
  pid_t contender = Fork([&] {
    while (s->stop.load() == 0) {
      if (int rc = CheckedIncrement(s); rc != kOk) return rc;
    }
    return kOk;
  });
  round.hit = VictimDiedAtPoint(victim);
  s->stop.store(1);
  int cs = WaitFor(contender, kHang);
  if (cs == -1) {
    KillAndReap(contender);
    round.failure = "contender hung after the victim died";
  } else if (!WIFEXITED(cs) || WEXITSTATUS(cs) != kOk) {
    round.failure = "contender: " + Describe(cs);
  } else if (int rc = CheckedIncrement(s); rc != kOk) {
    round.failure = absl::StrCat("survivor's acquire: code ", rc);
  } else if (round.hit) {
    const uint32_t want = HoldsLockAt(point) ? 1 : 0;
    if (s->owner_died_seen.load() != want) {
      round.failure = absl::StrCat("owner-died seen ", s->owner_died_seen.load(),
                                   " times, expected ", want);
    }
  }
  Unmap(s);
  return round;
}

// ---- condition ----------------------------------------------------------------

struct ConditionArena {
  mp::ResidentLock lock;
  mp::ResidentCondition cond;
  uint64_t generation = 0;  // bumped under the lock before each notify
  std::atomic<uint32_t> stop{0};
  std::atomic<uint32_t> owner_died_seen{0};
};

// Waits for the generation to move past `seen`, in short timed waits, until
// `until`. Returns kHung if it never moves.
int WaitForGeneration(ConditionArena* s, uint64_t seen,
                      std::chrono::steady_clock::time_point until) {
  mp::LockResult r = s->lock.Acquire(mp::Deadline::After(kHang));
  if (r == mp::LockResult::kTimedOut) return kHung;
  if (r == mp::LockResult::kOwnerDied) s->owner_died_seen.fetch_add(1);
  while (s->generation == seen && s->stop.load() == 0) {
    if (std::chrono::steady_clock::now() >= until) {
      (void)s->lock.Release();
      return kHung;
    }
    s->cond.Wait(s->lock, mp::Deadline::After(milliseconds(20)));
    if (s->lock.owner_died()) s->owner_died_seen.fetch_add(1);
  }
  (void)s->lock.Release();
  return kOk;
}

int NotifyLoop(ConditionArena* s) {
  while (s->stop.load() == 0) {
    mp::LockResult r = s->lock.Acquire(mp::Deadline::After(kHang));
    if (r == mp::LockResult::kTimedOut) return kHung;
    if (r == mp::LockResult::kOwnerDied) s->owner_died_seen.fetch_add(1);
    ++s->generation;
    s->cond.Notify(1);
    (void)s->lock.Release();
    usleep(100);
  }
  return kOk;
}

Round ConditionRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<ConditionArena>();
  const bool victim_notifies = point.starts_with("condition.notify.");
  pid_t victim = Fork([&] {
    Arm(point, nth);
    if (victim_notifies) return NotifyLoop(s);
    for (;;) {
      int rc = WaitForGeneration(s, s->generation,
                                 std::chrono::steady_clock::now() + kHang);
      if (rc != kOk) return rc;
    }
  });
  // The peer plays the other role until the victim is gone.
  pid_t peer = Fork([&] {
    if (!victim_notifies) return NotifyLoop(s);
    while (s->stop.load() == 0) {
      int rc = WaitForGeneration(s, s->generation,
                                 std::chrono::steady_clock::now() + kHang);
      if (rc != kOk) return rc;
    }
    return kOk;
  });
  round.hit = VictimDiedAtPoint(victim);
  if (victim_notifies) {
    // The peer waits; nobody notifies any more: a notifier of our own.
    pid_t notifier = Fork([&] { return NotifyLoop(s); });
    usleep(2000);
    s->stop.store(1);
    int ns = WaitFor(notifier, kHang);
    if (ns == -1) KillAndReap(notifier);
    if (ns == -1 || !WIFEXITED(ns) || WEXITSTATUS(ns) != kOk) {
      round.failure = "replacement notifier: " + Describe(ns);
    }
  } else {
    // A new waiter must still be woken by the live notifier.
    uint64_t seen;
    {
      mp::LockResult r = s->lock.Acquire(mp::Deadline::After(kHang));
      if (r == mp::LockResult::kOwnerDied) s->owner_died_seen.fetch_add(1);
      seen = s->generation;
      if (r != mp::LockResult::kTimedOut) (void)s->lock.Release();
      else round.failure = "survivor could not take the lock";
    }
    if (round.failure.empty() &&
        WaitForGeneration(s, seen, std::chrono::steady_clock::now() + kHang) !=
            kOk) {
      round.failure = "a waiter was not woken after the victim died";
    }
    s->stop.store(1);
  }
  ExpectExitsCleanly(peer, kHang, "peer", &round.failure);
  // Notify runs under the lock: a notifier killed there dies holding it.
  const uint32_t want = round.hit && victim_notifies ? 1 : 0;
  if (round.failure.empty() && s->owner_died_seen.load() != want) {
    round.failure = absl::StrCat("owner-died seen ", s->owner_died_seen.load(),
                                 " times, expected ", want);
  }
  Unmap(s);
  return round;
}

// ---- semaphore, event, barrier -------------------------------------------------

struct SignalArena {
  mp::ResidentSemaphore sem{0, mp::ResidentSemaphore::kMaxValue};
  std::atomic<uint64_t> released{0}, acquired{0};  // recorded after success
  mp::ResidentEvent event;
  mp::ResidentBarrier barrier{2};
  std::atomic<uint32_t> stop{0};
};

// The victim acquires (and sleeps) or releases; the peer does the other.
Round SemaphoreRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<SignalArena>();
  const bool victim_releases = point == "semaphore.release.after_add";
  auto releaser = [s] {
    while (s->stop.load() == 0) {
      if (!s->sem.Release(1).ok()) return kCorrupt;
      s->released.fetch_add(1);
      usleep(200);
    }
    return kOk;
  };
  auto acquirer = [s] {
    while (s->stop.load() == 0) {
      // A releaser dead between its add and its wake leaves us asleep at
      // most until this deadline; the unit is there when we wake.
      if (s->sem.Acquire(mp::Deadline::After(milliseconds(200)))) {
        s->acquired.fetch_add(1);
      }
    }
    return kOk;
  };
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return victim_releases ? releaser() : acquirer();
  });
  pid_t peer = Fork([&] { return victim_releases ? acquirer() : releaser(); });
  round.hit = VictimDiedAtPoint(victim);
  // The survivor side still works: units released now are acquired.
  for (int i = 0; i < 3; ++i) {
    if (!s->sem.Release(1).ok()) round.failure = "release after the death";
    s->released.fetch_add(1);
  }
  usleep(2000);
  s->stop.store(1);
  ExpectExitsCleanly(peer, kHang, "peer", &round.failure);
  // Units are conserved; a releaser killed after its add made one unit it
  // never recorded.
  const uint64_t unrecorded = round.hit && victim_releases ? 1 : 0;
  if (round.failure.empty() &&
      s->sem.GetValue() + s->acquired.load() !=
          s->released.load() + unrecorded) {
    round.failure = absl::StrCat("semaphore value ", s->sem.GetValue(),
                                 " != released ", s->released.load(), " + ",
                                 unrecorded, " - acquired ", s->acquired.load());
  }
  Unmap(s);
  return round;
}

Round EventRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<SignalArena>();
  const bool victim_sets = point == "event.set.after_exchange";
  pid_t victim = Fork([&] {
    Arm(point, nth);
    for (;;) {
      if (victim_sets) {
        s->event.Set();
        usleep(100);
        s->event.Clear();
      } else {
        s->event.Wait(mp::Deadline::After(milliseconds(50)));
      }
    }
    return kOk;
  });
  pid_t peer = Fork([&] {
    while (s->stop.load() == 0) {
      if (victim_sets) {
        s->event.Wait(mp::Deadline::After(milliseconds(50)));
      } else {
        s->event.Set();
        usleep(300);
        s->event.Clear();
        usleep(300);
      }
    }
    return kOk;
  });
  round.hit = VictimDiedAtPoint(victim);
  s->stop.store(1);
  ExpectExitsCleanly(peer, kHang, "peer", &round.failure);
  // A waiter now is woken by a set from here.
  pid_t waiter = Fork([&] {
    return s->event.Wait(mp::Deadline::After(kHang)) ? kOk : kHung;
  });
  s->event.Set();
  int ws = WaitFor(waiter, kHang + seconds(1));
  if (ws == -1) KillAndReap(waiter);
  if (round.failure.empty() &&
      (ws == -1 || !WIFEXITED(ws) || WEXITSTATUS(ws) != kOk)) {
    round.failure = "waiter after the death: " + Describe(ws);
  }
  Unmap(s);
  return round;
}

Round BarrierRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<SignalArena>();
  auto party = [s] {
    for (;;) {
      absl::StatusOr<int> r =
          s->barrier.Wait(mp::Deadline::After(milliseconds(200)), nullptr);
      if (!r.ok()) {
        // Broken by the victim's death (its lock's owner-died) or, if it
        // never reached the barrier, by the deadline: both end the party.
        return r.status().code() == absl::StatusCode::kAborted
                   ? kOk
                   : kCorrupt;
      }
    }
  };
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return party();
  });
  pid_t peer = Fork(party);
  round.hit = VictimDiedAtPoint(victim);
  ExpectExitsCleanly(peer, kHang + seconds(2), "surviving party",
                     &round.failure);
  if (round.failure.empty() && round.hit && !s->barrier.Broken()) {
    round.failure = "barrier not broken after a party died in it";
  }
  Unmap(s);
  return round;
}

// ---- ring ---------------------------------------------------------------------

struct Msg {
  uint64_t seq;
  uint64_t check;
  char payload[48];
};
uint64_t CheckOf(const Msg& m) {
  uint64_t h = m.seq * 0x9e3779b97f4a7c15ull;
  for (char c : m.payload) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  return h;
}
Msg MakeMsg(uint64_t seq) {
  Msg m;
  m.seq = seq;
  for (size_t i = 0; i < sizeof(m.payload); ++i) {
    m.payload[i] = static_cast<char>(seq * 7 + i);
  }
  m.check = CheckOf(m);
  return m;
}

constexpr uint64_t kStop = ~uint64_t{0};
constexpr uint64_t kMaxSeq = 1 << 16;

struct RingArena {
  std::atomic<uint64_t> attempted{0};  // producer victim: the seq it is putting
  std::atomic<uint32_t> received[kMaxSeq];
  std::atomic<uint32_t> torn{0};
};

// Whether a producer killed at `point` loses (and counts) its record, and
// whether the record was published before the death.
bool ProducerLosesAt(std::string_view point) {
  return point == "ring.put.after_tail" || point == "ring.put.after_claim" ||
         point == "ring.put.after_payload";
}
bool ProducerPublishedAt(std::string_view point) {
  return point == "ring.put.after_publish";
}

Round ProducerRound(std::string_view point, uint64_t nth) {
  Round round;
  mp::Queue<Msg> q(mp::QueueOptions{.maxsize = 2048});
  auto* s = MapShared<RingArena>();
  pid_t victim = Fork([&] {
    Arm(point, nth);
    for (uint64_t seq = 0; seq < kMaxSeq; ++seq) {
      s->attempted.store(seq);
      if (!q.Put(MakeMsg(seq), mp::Deadline::After(kHang)).ok()) return kHung;
    }
    return kOk;
  });
  // We consume, pausing now and then so that the ring fills up.
  uint64_t next = 0;
  int vs = -1;
  auto take = [&](mp::Deadline d) -> absl::StatusOr<Msg> {
    absl::StatusOr<Msg> m = q.Get(d);
    if (m.ok()) {
      if (CheckOf(*m) != m->check) round.failure = "torn message";
      else if (m->seq != kStop && m->seq != next)
        round.failure = absl::StrCat("got seq ", m->seq, ", expected ", next);
      else if (m->seq != kStop) ++next;
    }
    return m;
  };
  const auto until = std::chrono::steady_clock::now() + seconds(2);
  for (int i = 0; round.failure.empty(); ++i) {
    vs = WaitFor(victim, milliseconds(0));
    if (vs != -1 || std::chrono::steady_clock::now() >= until) break;
    (void)take(mp::Deadline::After(milliseconds(1)));
    if (i % 64 == 0) usleep(300);
  }
  if (vs == -1) {
    KillAndReap(victim);
  } else {
    round.hit = KilledAtPoint(vs);
  }
  // Make room (the victim may have died waiting for it), then put: the put
  // must not hang on the dead producer's lock, and the gets after it must
  // skip (and count) a claim the victim published and never committed.
  while (round.failure.empty() && take(mp::Deadline::Past()).ok()) {
  }
  Msg stop = MakeMsg(kStop);
  if (round.failure.empty() && !q.Put(stop, mp::Deadline::After(kHang)).ok()) {
    round.failure = "put after the producer died";
  }
  while (round.failure.empty()) {
    absl::StatusOr<Msg> m = take(mp::Deadline::After(kHang));
    if (!m.ok()) {
      round.failure = "get after the producer died: " + m.status().ToString();
    } else if (m->seq == kStop) {
      break;
    }
  }
  if (round.failure.empty() && round.hit) {
    const uint64_t attempted = s->attempted.load();
    const uint64_t want_lost = ProducerLosesAt(point) ? 1 : 0;
    const uint64_t want_next =
        ProducerPublishedAt(point) ? attempted + 1 : attempted;
    if (q.lost_records() != want_lost || next != want_next) {
      round.failure = absl::StrCat(
          "victim died putting seq ", attempted, ": delivered up to ", next,
          " (expected ", want_next, "), lost_records ", q.lost_records(),
          " (expected ", want_lost, ")");
    }
  }
  Unmap(s);
  return round;
}

// Whether a consumer killed at `point` takes its record with it.
bool ConsumerTakesAt(std::string_view point) {
  return point == "ring.get.after_head" || point == "ring.get.after_publish";
}

Round ConsumerRound(std::string_view point, uint64_t nth) {
  Round round;
  mp::Queue<Msg> q(mp::QueueOptions{.maxsize = 2048});
  auto* s = MapShared<RingArena>();
  auto consume = [&] {
    for (;;) {
      absl::StatusOr<Msg> m = q.Get(mp::Deadline::After(kHang));
      if (!m.ok()) return kHung;
      if (CheckOf(*m) != m->check) s->torn.fetch_add(1);
      if (m->seq == kStop) return kOk;
      if (m->seq < kMaxSeq) s->received[m->seq].fetch_add(1);
    }
  };
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return consume();
  });
  pid_t peer = Fork(consume);
  // Produce, pausing now and then so that consumers find the ring empty.
  uint64_t sent = 0;
  int vs = -1;
  const auto until = std::chrono::steady_clock::now() + seconds(2);
  while (sent < kMaxSeq - 1000) {
    vs = WaitFor(victim, milliseconds(0));
    if (vs != -1 || std::chrono::steady_clock::now() >= until) break;
    if (!q.Put(MakeMsg(sent), mp::Deadline::After(kHang)).ok()) {
      round.failure = "put while consumers run";
      break;
    }
    ++sent;
    if (sent % 32 == 0) usleep(200);
  }
  if (vs == -1) {
    KillAndReap(victim);
  } else {
    round.hit = KilledAtPoint(vs);
  }
  // The survivor must drain the rest, including what follows now.
  for (int i = 0; i < 100 && round.failure.empty(); ++i) {
    if (!q.Put(MakeMsg(sent++), mp::Deadline::After(kHang)).ok()) {
      round.failure = "put after the consumer died";
    }
  }
  if (!q.Put(MakeMsg(kStop), mp::Deadline::After(kHang)).ok() &&
      round.failure.empty()) {
    round.failure = "put of the stop message";
  }
  ExpectExitsCleanly(peer, kHang + seconds(1), "surviving consumer",
                     &round.failure);
  if (round.failure.empty()) {
    uint64_t missing = 0, duplicated = 0;
    for (uint64_t i = 0; i < sent; ++i) {
      const uint32_t n = s->received[i].load();
      if (n == 0) ++missing;
      if (n > 1) ++duplicated;
    }
    // The victim logs what it got after Get returns, so only a record taken
    // at the point itself can be missing from the log.
    const uint64_t want_missing =
        round.hit && ConsumerTakesAt(point) ? 1 : 0;
    if (s->torn.load() != 0 || duplicated != 0 || missing != want_missing) {
      round.failure = absl::StrCat("torn ", s->torn.load(), ", duplicated ",
                                   duplicated, ", missing ", missing,
                                   " (expected ", want_missing, ") of ", sent);
    }
  }
  Unmap(s);
  return round;
}

// ---- JoinableQueue --------------------------------------------------------------

// A consumer killed between its Get and its TaskDone abandons that task:
// Join (with a deadline far above its slices) must return once the peer
// has done everything else, with abandoned_tasks() == 1 and nothing
// unfinished.
Round JoinableRound(std::string_view point, uint64_t nth) {
  Round round;
  constexpr uint64_t kItems = 200;
  mp::JoinableQueue<Msg> q(mp::QueueOptions{.maxsize = 1 << 16});
  for (uint64_t i = 0; i < kItems; ++i) {
    if (!q.Put(MakeMsg(i), mp::Deadline::After(kHang)).ok()) {
      return Round{false, "put"};
    }
  }
  auto consume = [&] {
    for (;;) {
      absl::StatusOr<Msg> m = q.Get(mp::Deadline::After(kHang));
      if (!m.ok()) return mp::IsClosed(m.status()) ? kOk : kHung;
      if (CheckOf(*m) != m->check) return kCorrupt;
      if (!q.TaskDone().ok()) return kCorrupt;
      usleep(50);  // let the other consumer in
    }
  };
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return consume();
  });
  pid_t peer = Fork(consume);
  const int vs = WaitFor(victim, seconds(2));
  if (vs == -1) {
    KillAndReap(victim);
  } else {
    round.hit = KilledAtPoint(vs);
  }
  if (!q.Join(mp::Deadline::After(kHang)).ok()) {
    round.failure = "join after the consumer died";
  }
  q.Close();
  ExpectExitsCleanly(peer, kHang + seconds(1), "surviving consumer",
                     &round.failure);
  if (round.failure.empty() && round.hit &&
      (q.abandoned_tasks() != 1 || q.unfinished_tasks() != 0 ||
       q.qsize() != 0)) {
    round.failure = absl::StrCat("abandoned ", q.abandoned_tasks(),
                                 " (expected 1), unfinished ",
                                 q.unfinished_tasks(), ", qsize ", q.qsize());
  }
  return round;
}

// ---- the driver ---------------------------------------------------------------

[[maybe_unused]] Round RunRound(std::string_view point, uint64_t nth) {
  auto starts = [&](std::string_view prefix) {
    return point.substr(0, prefix.size()) == prefix;
  };
  if (starts("lock.")) return LockRound(point, nth);
  if (starts("condition.")) return ConditionRound(point, nth);
  if (starts("semaphore.")) return SemaphoreRound(point, nth);
  if (starts("event.")) return EventRound(point, nth);
  if (starts("barrier.")) return BarrierRound(point, nth);
  if (starts("ring.put.")) return ProducerRound(point, nth);
  if (starts("ring.get.")) return ConsumerRound(point, nth);
  if (starts("queue.joinable.")) return JoinableRound(point, nth);
  return Round{false, "no scenario for this point"};
}

#if defined(MP_FAULT_POINTS)

class FaultPointTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FaultPointTest, SurvivorsKeepEveryPromise) {
  const std::string_view point = GetParam();
  const int want = MinKills();
  std::mt19937 rng(std::hash<std::string_view>()(point));
  int kills = 0, rounds = 0;
  while (kills < want && rounds < 4 * want) {
    ++rounds;
    Round r = RunRound(point, std::uniform_int_distribution<int>(1, 8)(rng));
    ASSERT_TRUE(r.failure.empty())
        << point << ", round " << rounds << " (victim "
        << (r.hit ? "killed at the point" : "never reached it") << "): "
        << r.failure;
    if (r.hit) ++kills;
  }
  EXPECT_GE(kills, want) << point << " was reached in only " << kills
                         << " of " << rounds << " rounds";
  std::printf("%-34s killed %d times in %d rounds\n",
              std::string(point).c_str(), kills, rounds);
}

INSTANTIATE_TEST_SUITE_P(
    EveryPoint, FaultPointTest, ::testing::ValuesIn(mp::fault::Points()),
    [](const ::testing::TestParamInfo<std::string>& info) {
      std::string name(info.param);
      for (char& c : name) {
        if (c == '.') c = '_';
      }
      return name;
    });

#else  // !defined(MP_FAULT_POINTS)

TEST(FaultTest, BuiltWithoutPoints) {
  static_assert(!mp::fault::kEnabled);
  EXPECT_EQ(mp::fault::Arm("ring.put.after_payload", 1,
                           mp::fault::Action::kKill)
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // Code that passes points does not count them: they are not there.
  mp::Queue<int> q;
  ASSERT_TRUE(q.Put(1).ok());
  ASSERT_TRUE(q.Get().ok());
  EXPECT_EQ(mp::fault::Hits("ring.put.after_payload"), 0u);
  EXPECT_EQ(mp::fault::Hits("ring.get.after_copy"), 0u);
  EXPECT_TRUE(mp::fault::Points().empty());
}

#endif  // defined(MP_FAULT_POINTS)

#if defined(MP_FAULT_POINTS)
TEST(FaultTest, EveryPackagesPointsAreRegistered) {
  const std::vector<std::string> points = mp::fault::Points();
  for (const char* p : {"lock.acquire.after_cas", "barrier.wait.after_arrive",
                        "ring.put.after_payload", "queue.joinable.after_get"}) {
    EXPECT_NE(std::find(points.begin(), points.end(), p), points.end()) << p;
  }
  EXPECT_TRUE(std::is_sorted(points.begin(), points.end()));
  EXPECT_EQ(std::adjacent_find(points.begin(), points.end()), points.end());
}

TEST(FaultTest, ArmReportsBadInputAndCountsHits) {
  EXPECT_EQ(mp::fault::Arm("no.such.point", 1, mp::fault::Action::kKill).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(mp::fault::Arm("ring.put.after_lock", 0, mp::fault::Action::kKill)
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mp::fault::ArmFromSpec("ring.put.after_lock:x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mp::fault::ArmFromSpec("ring.put.after_lock:1:maybe").code(),
            absl::StatusCode::kInvalidArgument);
  const uint64_t before = mp::fault::Hits("ring.put.after_payload");
  mp::Queue<int> q;
  ASSERT_TRUE(q.Put(1).ok());
  ASSERT_TRUE(q.Put(2).ok());
  EXPECT_EQ(mp::fault::Hits("ring.put.after_payload"), before + 2);
  // kExit leaves with the documented code at exactly the n-th hit.
  pid_t child = Fork([&] {
    if (!mp::fault::ArmFromSpec("ring.get.after_copy:2:exit").ok()) return 98;
    (void)q.Get();
    (void)q.Get();  // dies here
    return 0;
  });
  int status = WaitFor(child, kHang);
  if (status == -1) KillAndReap(child);
  ASSERT_TRUE(status != -1 && WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), mp::fault::kExitCode);
  // The first Get completed, the second died before moving head.
  EXPECT_EQ(*q.Get(), 2);
}
#endif  // defined(MP_FAULT_POINTS)

}  // namespace
