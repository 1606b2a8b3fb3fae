// The fault-point driver: for every point in mp::fault::Points() (each
// package's fault_points.h), kill a
// process there (SIGKILL at its n-th hit, n random) at least kMinKills times
// and check what the sync and queue issues promise after each death:
//   * nobody hangs: every survivor's blocking call returns. Survivors wait
//     as users do, with no deadline, each in a child process; the test
//     process is their watchdog (tests/watchdog.h) and fails the round if
//     one is still blocked after mp_test::kHangAfter;
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

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
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
#include "mp/core/segment_header.h"
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

// ---- processes --------------------------------------------------------------
//
// Every call that may block after the victim's death runs in a survivor: a
// child process that waits the way users wait, with no deadline. The test
// process never blocks on the library; it is the watchdog (tests/watchdog.h):
// a survivor still running after mp_test::kHangAfter has hung, is killed and
// reaped, and fails the round.

// Exit codes of children that found a broken invariant.
constexpr int kOk = 0;
constexpr int kCorrupt = 4;    // protected data or a message was wrong
constexpr int kOwnerDied = 5;  // owner-died where none was possible
constexpr int kFailed = 6;     // a call failed that must not

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

// The watchdog over a survivor that must exit 0; records the first failure
// in `failure`.
void Watch(pid_t pid, const char* who, std::string* failure) {
  std::string verdict = mp_test::Watch(pid, who);
  if (failure->empty()) *failure = std::move(verdict);
}

// Runs `body` in a survivor and watches it.
template <class F>
void Survive(const char* who, std::string* failure, F&& body) {
  Watch(Fork(std::forward<F>(body)), who, failure);
}

using mp::LockResult;
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

// Acquires (no deadline); on owner-died counts it and repairs; checks the
// invariant.
int CheckedIncrement(LockArena* s) {
  const LockResult r = s->lock.Acquire();
  if (r == LockResult::kTimedOut) return kFailed;
  if (r == LockResult::kOwnerDied) {
    s->owner_died_seen.fetch_add(1);
    s->b = s->a;
  } else if (s->a != s->b) {
    (void)s->lock.Release();
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
      const mp::LockResult r = s->lock.Acquire(mp::Deadline::Infinite());
      if (r == mp::LockResult::kOwnerDied) return kOwnerDied;
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
  Watch(contender, "contender", &round.failure);
  if (round.failure.empty()) {
    Survive("a new acquirer", &round.failure, [&] { return CheckedIncrement(s); });
  }
  if (round.failure.empty() && round.hit) {
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
  uint32_t stop = 0;        // set under the lock, with a NotifyAll
  std::atomic<uint32_t> owner_died_seen{0};
};

void AcquireCounted(ConditionArena* s) {
  if (s->lock.Acquire() == LockResult::kOwnerDied) {
    s->owner_died_seen.fetch_add(1);
  }
}

// Waits (no deadline) for the generation to move past `seen`, or for stop.
void WaitForGeneration(ConditionArena* s, uint64_t seen) {
  AcquireCounted(s);
  while (s->generation == seen && s->stop == 0) {
    s->cond.Wait(s->lock);
    if (s->lock.owner_died()) s->owner_died_seen.fetch_add(1);
  }
  (void)s->lock.Release();
}

// The generation now, read under the lock.
uint64_t Generation(ConditionArena* s) {
  AcquireCounted(s);
  const uint64_t g = s->generation;
  const bool stop = s->stop != 0;
  (void)s->lock.Release();
  return stop ? ~uint64_t{0} : g;
}

int WaitLoop(ConditionArena* s) {
  for (uint64_t g; (g = Generation(s)) != ~uint64_t{0};) {
    WaitForGeneration(s, g);
  }
  return kOk;
}

int NotifyLoop(ConditionArena* s) {
  for (;;) {
    AcquireCounted(s);
    if (s->stop != 0) {
      (void)s->lock.Release();
      return kOk;
    }
    ++s->generation;
    s->cond.Notify(1);
    (void)s->lock.Release();
    usleep(100);
  }
}

Round ConditionRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<ConditionArena>();
  const bool victim_notifies = point.starts_with("condition.notify.");
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return victim_notifies ? NotifyLoop(s) : WaitLoop(s);
  });
  // The peer plays the other role.
  pid_t peer = Fork([&] { return victim_notifies ? WaitLoop(s) : NotifyLoop(s); });
  round.hit = VictimDiedAtPoint(victim);
  // Nobody notifies once a notifying victim is gone: a notifier of our own.
  pid_t notifier = victim_notifies ? Fork([&] { return NotifyLoop(s); }) : -1;
  // A new waiter is woken by the live notifier.
  Survive("a new waiter", &round.failure, [&] {
    WaitForGeneration(s, Generation(s));
    return kOk;
  });
  // Stop everyone: under the lock, waking every waiter.
  Survive("the stopper", &round.failure, [&] {
    AcquireCounted(s);
    s->stop = 1;
    s->cond.NotifyAll();
    (void)s->lock.Release();
    return kOk;
  });
  if (notifier != -1) Watch(notifier, "replacement notifier", &round.failure);
  Watch(peer, "peer", &round.failure);
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
      if (!s->sem.Release(1).ok()) return kFailed;
      s->released.fetch_add(1);
      usleep(200);
    }
    return kOk;
  };
  // No deadline: a releaser dead between its add and its wake must not
  // strand it (the unit is there).
  auto acquirer = [s] {
    for (;;) {
      if (!s->sem.Acquire()) return kFailed;
      s->acquired.fetch_add(1);
      if (s->stop.load() != 0) return kOk;
    }
  };
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return victim_releases ? releaser() : acquirer();
  });
  pid_t peer = Fork([&] { return victim_releases ? acquirer() : releaser(); });
  round.hit = VictimDiedAtPoint(victim);
  // The survivor side still works: units released now are acquired. The
  // unit after the stop flag lets a surviving acquirer see the flag.
  for (int i = 0; i < 4; ++i) {
    if (i == 3) s->stop.store(1);
    if (!s->sem.Release(1).ok()) round.failure = "release after the death";
    s->released.fetch_add(1);
  }
  Watch(peer, victim_releases ? "surviving acquirer" : "surviving releaser",
        &round.failure);
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
  auto setter = [s] {
    while (s->stop.load() == 0) {
      s->event.Set();
      usleep(300);
      s->event.Clear();
      usleep(300);
    }
    return kOk;
  };
  auto waiter = [s] {
    while (s->stop.load() == 0) {
      if (!s->event.Wait()) return kFailed;  // no deadline
    }
    return kOk;
  };
  pid_t victim = Fork([&] {
    Arm(point, nth);
    return victim_sets ? setter() : waiter();
  });
  pid_t peer = Fork([&] { return victim_sets ? waiter() : setter(); });
  round.hit = VictimDiedAtPoint(victim);
  s->stop.store(1);
  s->event.Set();  // a surviving waiter sees the flag
  Watch(peer, victim_sets ? "surviving waiter" : "surviving setter",
        &round.failure);
  // A waiter now, asleep, is woken by a set from here.
  s->event.Clear();
  const pid_t late = Fork([&] { return s->event.Wait() ? kOk : kFailed; });
  if (!mp_test::AwaitAsleep(late) && round.failure.empty()) {
    round.failure = "a new waiter never slept on a clear event";
  }
  s->event.Set();
  Watch(late, "waiter after the death", &round.failure);
  Unmap(s);
  return round;
}

Round BarrierRound(std::string_view point, uint64_t nth) {
  Round round;
  auto* s = MapShared<SignalArena>();
  // The one survivor here with a deadline, as barrier.h tells users whose
  // peers may die: a party killed while the others wait leaves them waiting
  // until their timeout, which breaks the barrier for all (Python's too). A
  // party that dies holding the barrier's lock breaks it for the next one to
  // take the lock. Either way a party ends with Aborted.
  auto party = [s] {
    for (;;) {
      absl::StatusOr<int> r =
          s->barrier.Wait(mp::Deadline::After(milliseconds(200)), nullptr);
      if (!r.ok()) {
        return r.status().code() == absl::StatusCode::kAborted ? kOk
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
  Watch(peer, "surviving party", &round.failure);
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
  std::atomic<uint64_t> next{0};       // consumer: the seq expected next
  std::atomic<uint64_t> sent{0};       // producer: messages put
  std::atomic<uint32_t> victim_gone{0};
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
  mp::Queue<Msg> q(mp::QueueOptions{.capacity_bytes = 2048});
  auto* s = MapShared<RingArena>();
  pid_t victim = Fork([&] {
    Arm(point, nth);
    for (uint64_t seq = 0; seq < kMaxSeq; ++seq) {
      s->attempted.store(seq);
      if (!q.Put(MakeMsg(seq)).ok()) return kFailed;
    }
    return kOk;
  });
  // The consumer takes everything in order until the stop message, pausing
  // now and then so that the ring fills up. No deadline: it must neither
  // hang on the dead producer nor be handed a claim it never committed.
  pid_t consumer = Fork([&] {
    for (int i = 0;; ++i) {
      absl::StatusOr<Msg> m = q.Get();
      if (!m.ok()) {
        std::fprintf(stderr, "get: %s\n", m.status().ToString().c_str());
        return kFailed;
      }
      if (CheckOf(*m) != m->check) return kCorrupt;
      if (m->seq == kStop) return kOk;
      if (m->seq != s->next.load()) {
        std::fprintf(stderr, "got seq %llu, expected %llu\n",
                     static_cast<unsigned long long>(m->seq),
                     static_cast<unsigned long long>(s->next.load()));
        return kCorrupt;
      }
      s->next.fetch_add(1);
      if (i % 64 == 0) usleep(300);
    }
  });
  round.hit = VictimDiedAtPoint(victim);
  // A put now must not hang on the dead producer's lock or claim.
  Survive("a new producer", &round.failure,
          [&] { return q.Put(MakeMsg(kStop)).ok() ? kOk : kFailed; });
  Watch(consumer, "surviving consumer", &round.failure);
  if (round.failure.empty() && round.hit) {
    const uint64_t attempted = s->attempted.load();
    const uint64_t next = s->next.load();
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
  mp::Queue<Msg> q(mp::QueueOptions{.capacity_bytes = 2048});
  auto* s = MapShared<RingArena>();
  auto consume = [&] {
    for (;;) {
      absl::StatusOr<Msg> m = q.Get();  // no deadline
      if (!m.ok()) return kFailed;
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
  // The producer pauses now and then so that consumers find the ring empty;
  // once the victim is gone, the survivor must drain the rest, including
  // what follows then.
  pid_t producer = Fork([&] {
    uint64_t sent = 0;
    for (; sent < kMaxSeq - 1000 && s->victim_gone.load() == 0; ++sent) {
      if (!q.Put(MakeMsg(sent)).ok()) return kFailed;
      if (sent % 32 == 31) usleep(200);
    }
    while (s->victim_gone.load() == 0) usleep(1000);
    for (int i = 0; i < 100; ++i, ++sent) {
      if (!q.Put(MakeMsg(sent)).ok()) return kFailed;
    }
    s->sent.store(sent);
    return q.Put(MakeMsg(kStop)).ok() ? kOk : kFailed;
  });
  round.hit = VictimDiedAtPoint(victim);
  s->victim_gone.store(1);
  Watch(producer, "producer", &round.failure);
  Watch(peer, "surviving consumer", &round.failure);
  if (round.failure.empty()) {
    const uint64_t sent = s->sent.load();
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
// Join (no deadline) must return once the peer has done everything else,
// with abandoned_tasks() == 1 and nothing unfinished.
Round JoinableRound(std::string_view point, uint64_t nth) {
  Round round;
  constexpr uint64_t kItems = 200;
  mp::JoinableQueue<Msg> q(mp::QueueOptions{.capacity_bytes = 1 << 16});
  // Room for all of them: these puts do not block.
  for (uint64_t i = 0; i < kItems; ++i) {
    if (!q.Put(MakeMsg(i), mp::Deadline::Past()).ok()) {
      return Round{false, "put"};
    }
  }
  auto consume = [&] {
    for (;;) {
      absl::StatusOr<Msg> m = q.Get();  // no deadline
      if (!m.ok()) return mp::IsClosed(m.status()) ? kOk : kFailed;
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
  round.hit = VictimDiedAtPoint(victim);
  Survive("join after the consumer died", &round.failure,
          [&] { return q.Join().ok() ? kOk : kFailed; });
  q.Close();
  Watch(peer, "surviving consumer", &round.failure);
  if (round.failure.empty() && round.hit &&
      (q.abandoned_tasks() != 1 || q.unfinished_tasks() != 0 ||
       q.qsize() != 0)) {
    round.failure = absl::StrCat("abandoned ", q.abandoned_tasks(),
                                 " (expected 1), unfinished ",
                                 q.unfinished_tasks(), ", qsize ", q.qsize());
  }
  return round;
}

// ---- the side channel (big messages, queue.h) ------------------------------------

std::vector<std::string> ShmWithPrefix(const std::string& prefix) {
  std::vector<std::string> out;
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    if (std::string_view(e->d_name).substr(0, prefix.size()) == prefix) {
      out.push_back(e->d_name);
    }
  }
  closedir(d);
  return out;
}

// A side segment left by `creator`: the queue's prefix (the caller's
// listing) and the common header naming the producer as a message.
bool IsRecognisableSideSegment(const std::string& name, pid_t creator) {
  const int fd = shm_open(("/" + name).c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  mp::SegmentHeader h{};
  const bool read = pread(fd, &h, sizeof(h), 0) == sizeof(h);
  close(fd);
  return read && h.magic == mp::SegmentHeader::kMagic &&
         h.kind == static_cast<uint32_t>(mp::SegmentKind::kMessage) &&
         h.creator_pid == static_cast<uint32_t>(creator);
}

constexpr int kSideMessages = 24;  // every odd one big
std::string SideMessage(int seq) {
  return std::string(seq % 2 == 1 ? 8192 : 16, static_cast<char>('a' + seq % 26)) +
         std::to_string(seq);
}

// Producer points: the victim dies inside the Put of a big message (after
// its claim); the messages before it are delivered, its claim is skipped
// and counted lost, and its segment -- the one orphan the design allows,
// and only until that skip -- carries the prefix and the header, and is
// removed by the consumer that skips it.
// Consumer point: the victim dies after unlinking a big message's segment,
// before reading it; the next consumer finds the record gone (DataLoss,
// counted corrupt) and every other message is delivered exactly once.
Round SideRound(std::string_view point, uint64_t nth) {
  Round round;
  mp::Queue<std::string> q(mp::QueueOptions{.capacity_bytes = 4096});
  const std::string prefix = q.side_segment_prefix();
  const bool producer_point = point != "queue.side.after_unlink";
  if (producer_point) {
    pid_t victim = Fork([&] {
      Arm(point, nth);
      for (int i = 0; i < kSideMessages; ++i) {
        if (!q.Put(SideMessage(i)).ok()) return kFailed;
      }
      return kOk;
    });
    round.hit = VictimDiedAtPoint(victim);
    // The victim died at its nth big message: seq 2 * nth - 1.
    const int dead = round.hit ? static_cast<int>(2 * nth - 1) : -1;
    const std::vector<std::string> segs = ShmWithPrefix(prefix);
    if (round.hit) {
      // The committed big messages before it, and its own.
      if (segs.size() != nth) {
        round.failure = absl::StrCat(segs.size(), " side segments, expected ",
                                     nth);
      }
      for (const std::string& name : segs) {
        if (!IsRecognisableSideSegment(name, victim)) {
          round.failure = "side segment " + name + " without its header";
        }
      }
    }
    // A new producer and a consumer, with no deadline: every message but the
    // dead one's, in order, then the stop.
    Survive("a new producer", &round.failure,
            [&] { return q.Put("stop").ok() ? kOk : kFailed; });
    Survive("surviving consumer", &round.failure, [&] {
      for (int want = 0;;) {
        if (want == dead) ++want;
        absl::StatusOr<std::string> m = q.Get();
        if (!m.ok()) {
          std::fprintf(stderr, "get: %s\n", m.status().ToString().c_str());
          return kFailed;
        }
        if (*m == "stop") {
          if (dead >= 0 && want != dead + 1) {
            std::fprintf(stderr, "stop after seq %d, victim died at %d\n",
                         want - 1, dead);
            return kCorrupt;
          }
          return kOk;
        }
        if (*m != SideMessage(want)) {
          std::fprintf(stderr, "expected seq %d\n", want);
          return kCorrupt;
        }
        ++want;
      }
    });
    if (round.failure.empty() &&
        q.lost_records() != (round.hit ? 1u : 0u)) {
      round.failure = absl::StrCat("lost_records ", q.lost_records());
    }
  } else {
    for (int i = 0; i < kSideMessages; ++i) {
      // Room for all of them (small references): these puts do not block.
      if (!q.Put(SideMessage(i), mp::Deadline::Past()).ok()) {
        round.failure = "put";
      }
    }
    auto* got = MapShared<std::array<std::atomic<uint32_t>, kSideMessages>>();
    pid_t victim = Fork([&] {
      Arm(point, nth);
      for (int i = 0; i < kSideMessages; ++i) {
        absl::StatusOr<std::string> m = q.Get();
        if (!m.ok()) return kFailed;
        const int seq = std::stoi(m->substr(m->find_first_of("0123456789")));
        if (*m != SideMessage(seq)) return kCorrupt;
        (*got)[seq].fetch_add(1);
      }
      return kOk;
    });
    round.hit = VictimDiedAtPoint(victim);
    if (!round.hit) round.failure = "victim did not die at its point";
    int corrupt = 0;
    while (round.failure.empty()) {
      absl::StatusOr<std::string> m = q.Get(mp::Deadline::Past());
      if (mp::IsEmpty(m.status())) break;
      if (m.status().code() == absl::StatusCode::kDataLoss) {
        ++corrupt;
        continue;
      }
      if (!m.ok()) {
        round.failure = m.status().ToString();
        break;
      }
      const int seq = std::stoi(m->substr(m->find_first_of("0123456789")));
      if (*m != SideMessage(seq)) round.failure = "torn message";
      (*got)[seq].fetch_add(1);
    }
    int missing = 0;
    for (int i = 0; i < kSideMessages; ++i) {
      if ((*got)[i].load() > 1) round.failure = "duplicate message";
      if ((*got)[i].load() == 0) ++missing;
    }
    if (round.failure.empty() &&
        (corrupt != 1 || missing != 1 || q.corrupt_records() != 1)) {
      round.failure = absl::StrCat("corrupt gets ", corrupt, ", missing ",
                                   missing, ", corrupt_records ",
                                   q.corrupt_records(), " (expected 1 each)");
    }
    Unmap(got);
  }
  if (round.failure.empty() && !ShmWithPrefix(prefix).empty()) {
    round.failure = "side segments left: " + ShmWithPrefix(prefix)[0];
  }
  for (const std::string& name : ShmWithPrefix(prefix)) {
    shm_unlink(("/" + name).c_str());
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
  if (starts("queue.side.")) return SideRound(point, nth);
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
  const int status = mp_test::WaitOrKill(child);
  ASSERT_TRUE(status >= 0 && WIFEXITED(status)) << mp_test::Describe(status);
  EXPECT_EQ(WEXITSTATUS(status), mp::fault::kExitCode);
  // The first Get completed, the second died before moving head.
  EXPECT_EQ(*q.Get(), 2);
}
#endif  // defined(MP_FAULT_POINTS)

}  // namespace
