#include "soak/workers.h"

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "mp/core/futex.h"
#include "mp/core/process.h"
#include "mp/queue/queue.h"
#include "soak/message.h"

namespace soak {

namespace {
void Bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

void ReportIncident(Control* ctl, const char* fmt, ...) {
  const uint32_t i = ctl->incident_count.fetch_add(1);
  if (i >= kMaxIncidents) return;
  va_list ap;
  va_start(ap, fmt);
  std::vsnprintf(ctl->incidents[i].text, sizeof(ctl->incidents[i].text), fmt,
                 ap);
  va_end(ap);
}

Verdict Examine(const World& w, const char* bytes, size_t n, const char* who) {
  Control* ctl = w.ctl;
  Verdict v;
  Message m;
  if (absl::Status s = mp::DecodeMessage(bytes, n, &m); !s.ok()) {
    Bump(ctl->torn);
    ReportIncident(ctl, "%s: record of %zu bytes does not decode: %s", who, n,
                   std::string(s.message()).c_str());
    return v;
  }
  if (CheckResult r = CheckMessage(m, w.opt.max_payload);
      r != CheckResult::kOk) {
    Bump(ctl->torn);
    ReportIncident(ctl, "%s: torn message (producer %u seq %llu): %s", who,
                   m.producer, static_cast<unsigned long long>(m.seq),
                   CheckResultName(r));
    return v;
  }
  if (m.producer == kMarkerProducer) {
    v.kind = Verdict::kMarker;
    return v;
  }
  if (m.producer >= static_cast<uint32_t>(w.opt.producers) ||
      m.seq >= w.opt.max_seq) {
    Bump(ctl->phantom);
    ReportIncident(ctl, "%s: message from nowhere: producer %u seq %llu", who,
                   m.producer, static_cast<unsigned long long>(m.seq));
    return v;
  }
  v.kind = Verdict::kData;
  v.producer = m.producer;
  v.seq = m.seq;
  return v;
}

namespace {

using std::chrono::milliseconds;

// Every blocking call below waits without a deadline, as users wait: a
// survivor stranded by a killed peer stays blocked, and the parent (soak.cc,
// CheckHangs and Shutdown) calls it a hang.
// Fault injection acts on every kInjectEvery-th message or critical section
// of slot 0, so that kills cannot hide it for long.
constexpr uint64_t kInjectEvery = 500;

// Ctrl-C reaches the whole process group: the parent handles it (and stops
// the run); workers leave when it tells them.
// SIGTERM goes back to its default (the parent's handler came with fork).
void IgnoreInterrupts() {
  signal(SIGINT, SIG_IGN);
  signal(SIGTERM, SIG_DFL);
}

bool Stopping(const Control* ctl) {
  return ctl->stop.load(std::memory_order_acquire) != 0 ||
         ctl->abort.load(std::memory_order_acquire) != 0;
}

// A status no call may return here: count it, log it, leave (the parent sees
// the exit code and fails the run).
[[noreturn]] void Unexpected(const World& w, const char* who, int slot,
                             const char* call, const absl::Status& s) {
  Bump(w.ctl->worker_errors);
  ReportIncident(w.ctl, "%s %d: %s returned %s", who, slot, call,
                 s.ToString().c_str());
  mp::Exit(2);
}

mp::Queue<Message> OpenQueue(const World& w, const char* who, int slot) {
  absl::StatusOr<mp::Queue<Message>> q =
      mp::Queue<Message>::Open(w.queue_name);
  if (!q.ok()) Unexpected(w, who, slot, "Queue::Open", q.status());
  return *std::move(q);
}

// Puts `m`, waiting for room as long as it takes: true once it is in, false
// when the queue was closed at the end of the run (nothing was written).
bool PutUntilDone(const World& w, mp::Queue<Message>& q, const Message& m,
                  int slot, Heartbeat& hb) {
  absl::Status s = q.Put(m);
  Bump(hb.ticks);
  if (s.ok()) return true;
  if (s.code() == absl::StatusCode::kFailedPrecondition && q.closed()) {
    return false;
  }
  Unexpected(w, "producer", slot, "Queue::Put", s);
}

// The sink of a consumer's Pop: copies the record into the consumer's slot
// while the ring still holds it, then marks the slot filled.
struct SlotTarget {
  ConsumerSlot* slot;
  char* buffer;
  size_t capacity;
};

absl::Status CopyToSlot(void* ctx, const char* bytes, size_t n) {
  auto* t = static_cast<SlotTarget*>(ctx);
  if (n > t->capacity) {
    return absl::DataLossError("record larger than the ring's largest message");
  }
  std::memcpy(t->buffer, bytes, n);
  t->slot->filled.store(n + 1, std::memory_order_release);
  return absl::OkStatus();
}

// A Queue<Message> handle whose consumers pop into their slot. Queue::Get
// decodes after the ring has let go of the record, which leaves a window in
// which a killed consumer takes a message with it unseen; the ring's own Pop
// with a sink that writes to shared memory closes that window.
class SlotQueue : public mp::Queue<Message> {
 public:
  explicit SlotQueue(const mp::Queue<Message>& q) : mp::Queue<Message>(q) {}
  absl::Status PopInto(SlotTarget* target, mp::Deadline deadline) {
    return ring()->Pop(&CopyToSlot, target, deadline);
  }
};

// A critical section long enough for kills to land inside it.
void Work() {
  for (int i = 0; i < 256; ++i) mp::CpuRelax();
}

}  // namespace

void RunProducer(const World& w, int slot, uint64_t start) {
  IgnoreInterrupts();
  Control* ctl = w.ctl;
  ProducerSlot& ps = ctl->producers[slot];
  mp::Queue<Message> q = OpenQueue(w, "producer", slot);
  const std::string& inject = slot == 0 ? w.opt.inject : std::string();
  for (uint64_t seq = start;; ++seq) {
    if (Stopping(ctl)) return;
    if (seq >= w.opt.max_seq) {
      ps.full.store(1, std::memory_order_release);
      while (!Stopping(ctl)) {
        std::this_thread::sleep_for(milliseconds(10));
        Bump(ps.hb.ticks);
      }
      return;
    }
    Message m = MakeMessage(static_cast<uint32_t>(slot), seq,
                            w.opt.max_payload);
    const bool inject_now = !inject.empty() && seq % kInjectEvery == 7;
    if (inject_now && inject == "torn") m.payload[m.payload.size() / 2] ^= 1;
    ps.in_flight.store(seq, std::memory_order_release);
    if (!(inject_now && inject == "lose")) {
      if (!PutUntilDone(w, q, m, slot, ps.hb)) {
        ps.in_flight.store(kNone, std::memory_order_release);
        return;
      }
      if (inject_now && inject == "dup") PutUntilDone(w, q, m, slot, ps.hb);
    }
    ps.acked_end.store(seq + 1, std::memory_order_release);
    ps.in_flight.store(kNone, std::memory_order_release);
    Bump(ps.hb.progress);
  }
}

void RunConsumer(const World& w, int slot) {
  IgnoreInterrupts();
  Control* ctl = w.ctl;
  ConsumerSlot& cs = ctl->consumers[slot];
  SlotQueue q(OpenQueue(w, "consumer", slot));
  SlotTarget target{&cs, w.record(slot), w.record_bytes};
  const bool inject_hang = slot == 0 && w.opt.inject == "hang";
  uint64_t taken = 0;
  for (;;) {
    if (ctl->abort.load(std::memory_order_acquire) != 0) return;
    absl::Status s = q.PopInto(&target, mp::Deadline::Infinite());
    Bump(cs.hb.ticks);
    if (s.code() == absl::StatusCode::kOutOfRange) return;  // closed, drained
    if (!s.ok()) Unexpected(w, "consumer", slot, "Ring::Pop", s);
    const uint64_t filled = cs.filled.load(std::memory_order_acquire);
    if (filled == 0) {
      Unexpected(w, "consumer", slot, "Ring::Pop",
                 absl::InternalError("OK without calling the sink"));
    }
    char who[32];
    std::snprintf(who, sizeof(who), "consumer %d", slot);
    Verdict v = Examine(w, target.buffer, filled - 1, who);
    if (v.kind == Verdict::kData) {
      if (SetBit(w.bitmap(static_cast<int>(v.producer)), v.seq)) {
        Bump(ctl->duplicates);
        ReportIncident(ctl, "%s: duplicate: producer %u seq %llu", who,
                       v.producer, static_cast<unsigned long long>(v.seq));
      } else {
        Bump(ctl->delivered);
      }
    } else if (v.kind == Verdict::kMarker) {
      Bump(ctl->markers);
    }
    cs.filled.store(0, std::memory_order_release);
    Bump(cs.hb.progress);
    if (inject_hang && ++taken == 200) {
      for (;;) pause();  // stuck for good: the parent must notice
    }
  }
}

void RunLocker(const World& w, int slot, uint32_t id) {
  IgnoreInterrupts();
  Control* ctl = w.ctl;
  LockArea& la = ctl->lock_area;
  LockerSlot& me = ctl->lockers[slot];
  const bool inject_lock = slot == 0 && w.opt.inject == "lock";
  const bool inject_owner_died = w.opt.inject == "owner_died";
  uint64_t sections = 0;
  while (!Stopping(ctl)) {
    me.hb.phase.store(kAcquiring, std::memory_order_release);
    const mp::LockResult r = la.lock.Acquire(mp::Deadline::Infinite());
    if (r == mp::LockResult::kTimedOut) {
      Unexpected(w, "locker", slot, "ResidentLock::Acquire",
                 absl::InternalError("kTimedOut without a deadline"));
    }
    // Owner-died is counted before this locker names itself the holder: one
    // killed in between dies in phase kAcquiring, a "possible" holder death
    // (see soak.cc), and the next acquirer names the same dead owner.
    const bool died = r == mp::LockResult::kOwnerDied;
    if (died && !inject_owner_died) {
      NameDeadHolder(la);
      Bump(ctl->owner_died_seen);
    }
    la.holder.store(id, std::memory_order_relaxed);
    me.hb.phase.store(kInside, std::memory_order_release);
    if (la.lock.owner_died() != died) {
      Bump(ctl->owner_died_flag_wrong);
      ReportIncident(ctl, "locker %d: Acquire said %s but owner_died() is %d",
                     slot, died ? "kOwnerDied" : "kAcquired",
                     la.lock.owner_died());
    }
    const uint64_t a0 = la.a0.load(std::memory_order_relaxed);
    const uint64_t a1 = la.a1.load(std::memory_order_relaxed);
    if (a0 != a1) {
      if (died) {
        Bump(ctl->repairs);
      } else {
        Bump(ctl->lock_violations);
        ReportIncident(ctl,
                       "locker %d: invariant broken without owner-died: "
                       "a0 %llu a1 %llu",
                       slot, static_cast<unsigned long long>(a0),
                       static_cast<unsigned long long>(a1));
      }
      la.a1.store(a0, std::memory_order_relaxed);  // repair (count it once)
    }
    la.a0.store(a0 + 1, std::memory_order_relaxed);
    Work();
    if (!(inject_lock && ++sections % kInjectEvery == 0)) {
      la.a1.store(a0 + 1, std::memory_order_relaxed);
    }
    me.hb.phase.store(kReleasing, std::memory_order_release);
    la.holder.store(0, std::memory_order_relaxed);
    if (absl::Status s = la.lock.Release(); !s.ok()) {
      Unexpected(w, "locker", slot, "ResidentLock::Release", s);
    }
    me.hb.phase.store(kIdle, std::memory_order_release);
    Bump(me.hb.progress);
    Bump(me.hb.ticks);
  }
}

void RunPinger(const World& w, int pair) {
  IgnoreInterrupts();
  Control* ctl = w.ctl;
  SignalPair& sp = ctl->pairs[pair];
  mp::Event ping = w.ping[pair];
  mp::Event pong = w.pong[pair];
  uint64_t t = sp.token.load(std::memory_order_relaxed);
  while (!Stopping(ctl)) {
    ++t;
    sp.token.store(t, std::memory_order_relaxed);
    ping.Set();  // release: the ponger that sees it set sees token >= t
    bool answered = false;
    while (!Stopping(ctl) && pong.Wait()) {
      pong.Clear();
      const uint64_t e = sp.echo.load(std::memory_order_relaxed);
      if (e > t) {
        Bump(ctl->signal_violations);
        ReportIncident(ctl, "pinger %d: echo %llu of a token never sent (%llu)",
                       pair, static_cast<unsigned long long>(e),
                       static_cast<unsigned long long>(t));
      }
      if (e >= t) {
        answered = true;
        break;
      }
      Bump(ctl->signal_stale);  // an answer to an earlier round: wait on
    }
    Bump(sp.ping_hb.ticks);
    if (answered) {
      Bump(sp.ping_hb.progress);
      Bump(ctl->signal_rounds);
    }
  }
}

void RunPonger(const World& w, int pair) {
  IgnoreInterrupts();
  Control* ctl = w.ctl;
  SignalPair& sp = ctl->pairs[pair];
  mp::Event ping = w.ping[pair];
  mp::Event pong = w.pong[pair];
  uint64_t last = 0;
  // A ponger killed between taking a ping and answering it leaves the pinger
  // waiting for a pong that nobody owes it any more: the replacement
  // completes that step first, answering the token now published.
  if (const uint64_t t = sp.token.load(std::memory_order_relaxed); t != 0) {
    sp.echo.store(t, std::memory_order_relaxed);
    pong.Set();
  }
  while (!Stopping(ctl)) {
    if (!ping.Wait()) {
      Unexpected(w, "ponger", pair, "Event::Wait",
                 absl::InternalError("false without a deadline"));
    }
    ping.Clear();
    const uint64_t t = sp.token.load(std::memory_order_relaxed);
    if (t == 0 || t < last) {
      Bump(ctl->signal_violations);
      ReportIncident(ctl, "ponger %d: saw ping with token %llu after %llu",
                     pair, static_cast<unsigned long long>(t),
                     static_cast<unsigned long long>(last));
    }
    last = t;
    sp.echo.store(t, std::memory_order_relaxed);
    pong.Set();
    Bump(sp.pong_hb.progress);
    Bump(sp.pong_hb.ticks);
  }
}

}  // namespace soak
