// soak/soak.cc
// -----------------------------------------------------------------------------
// The soak: producers, consumers, lock users and Event ping-pong pairs, all
// separate processes, SIGKILLed at random and replaced, for a chosen time.
// It ends with a summary and exits 0 only if every invariant held.
//
//   bazel run -c opt //soak -- --duration=180s --producers=3
//       --consumers=2 --lockers=3 --kill_every=50ms      (one command line)
//
// What runs (workers.h has the loops, state.h the shared layout):
//  * Producers put self-checking messages (message.h: producer slot, seq,
//    a payload of 1 B .. --max_payload derived from both, a checksum) into
//    one named MPMC mp::Queue in /dev/shm. Each producer slot is one stream
//    of sequence numbers across the incarnations that fill it.
//  * Consumers pop each record into their slot in shared memory, check it,
//    and set bit (slot, seq) in a shared bitmap: a bit already set is a
//    duplicate, a record that fails its checks is torn.
//  * Lockers take one mp::ResidentLock (in the shared mapping) and update
//    a0, a1 (a0 == a1 between critical sections). kOwnerDied: repair and
//    count; kAcquired: the invariant must hold.
//  * Signal pairs: a pinger and a ponger over two mp::Events.
//  * The parent kills a random worker every --kill_every (jittered by
//    +-50%), reaps it, reads what it was doing from its slot, and starts a
//    replacement.
//
// Accounting (exact where the library makes it knowable):
//  * A producer killed inside Put leaves its seq "in flight": that message
//    may be delivered or not, and lost_records() may count it. Every other
//    seq below the slot's end returned OK from Put and must be delivered
//    exactly once: a clear bit is *missing*. lost_records() may never exceed
//    the number of producers killed inside Put.
//  * A consumer killed after taking a record leaves it in its slot; the
//    parent keeps it and counts it delivered at the end if nobody else did.
//  * A locker killed in phase kInside is a *certain* holder death; one
//    killed inside Acquire or Release is a *possible* one. Every holder death
//    is reported to exactly one acquirer, which may itself die before
//    counting it (and is then a possible holder death itself), so
//      certain <= owner-died seen <= certain + possible.
//    And by name (state.h, LockArea): every id the acquirers name as a dead
//    owner is a locker that died, named once, and every locker killed in
//    phase kInside is named.
//  * Hangs: every worker waits the way users wait, without a deadline, and
//    the parent is the watchdog outside them. A kind of worker that makes
//    no progress for --hang_timeout, or one worker whose loop has not
//    turned for 3 x --hang_timeout (blocked in a call while its peers went
//    on, far past any sleep slice in mp), ends the run as a failure. At
//    the end the parent's own joins and put have deadlines; stragglers are
//    killed, reaped and counted as hangs.
//  * /dev/shm: the entries that exist after the run and not before, and
//    whose name is this run's (other processes on the machine may be making
//    their own), must be none.

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "mp/core/futex.h"
#include "mp/core/process.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"
#include "soak/message.h"
#include "soak/state.h"
#include "soak/workers.h"

namespace soak {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::duration;
using std::chrono::milliseconds;

volatile sig_atomic_t g_interrupted = 0;
void OnInterrupt(int) { g_interrupted = 1; }

double Seconds(Clock::duration d) { return duration<double>(d).count(); }
Clock::duration FromSeconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(duration<double>(s));
}

// ---- flags ------------------------------------------------------------------

constexpr char kUsage[] =
    "usage: soak [--flag=value ...]\n"
    "  --duration=180s       how long to run (s, ms, m or h; plain: seconds)\n"
    "  --producers=3         producer processes (1..32)\n"
    "  --consumers=2         consumer processes (1..32)\n"
    "  --lockers=3           lock users (0..32)\n"
    "  --signal_pairs=1      Event ping-pong pairs (0..32)\n"
    "  --kill_every=50ms     mean time between kills (0: no kills)\n"
    "  --hang_timeout=5s     no progress for this long is a hang\n"
    "  --progress_every=5s   progress line period\n"
    "  --queue_bytes=262144  ring capacity in bytes\n"
    "  --max_payload=4096    largest payload in bytes (at least 1)\n"
    "  --max_seq=N           messages per producer slot (default: sized from\n"
    "                        the duration; a full slot ends the run early)\n"
    "  --seed=N              random seed (default: from the clock)\n"
    "  --inject=WHAT         break something on purpose, to prove the checks\n"
    "                        catch it: torn, dup, lose, lock, owner_died,\n"
    "                        hang, shm\n";

// "180s", "50ms", "3m", "1.5h", "2" (seconds).
bool ParseDuration(absl::string_view s, double* seconds) {
  double scale = 1;
  if (absl::EndsWith(s, "ms")) {
    scale = 1e-3;
    s.remove_suffix(2);
  } else if (absl::EndsWith(s, "s")) {
    s.remove_suffix(1);
  } else if (absl::EndsWith(s, "m")) {
    scale = 60;
    s.remove_suffix(1);
  } else if (absl::EndsWith(s, "h")) {
    scale = 3600;
    s.remove_suffix(1);
  }
  double v;
  if (!absl::SimpleAtod(s, &v) ||
      !std::isfinite(v) || v < 0) {
    return false;
  }
  *seconds = v * scale;
  return true;
}

template <class Int>
bool ParseInt(absl::string_view s, Int* out) {
  int64_t v;
  if (!absl::SimpleAtoi(s, &v) || v < 0) {
    return false;
  }
  *out = static_cast<Int>(v);
  return true;
}

// Returns an error message, empty when all is well.
std::string ParseFlags(int argc, char** argv, Options* o, bool* help) {
  bool seeded = false;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      *help = true;
      return "";
    }
    const size_t eq = arg.find('=');
    if (!absl::StartsWith(arg, "--") || eq == absl::string_view::npos) {
      return absl::StrCat("bad argument '", arg, "' (want --flag=value)");
    }
    const absl::string_view name = arg.substr(2, eq - 2);
    const absl::string_view value = arg.substr(eq + 1);
    bool ok = true;
    if (name == "duration") {
      ok = ParseDuration(value, &o->duration_s) && o->duration_s > 0;
    } else if (name == "producers") {
      ok = ParseInt(value, &o->producers) && o->producers >= 1 &&
           o->producers <= kMaxPerKind;
    } else if (name == "consumers") {
      ok = ParseInt(value, &o->consumers) && o->consumers >= 1 &&
           o->consumers <= kMaxPerKind;
    } else if (name == "lockers") {
      ok = ParseInt(value, &o->lockers) && o->lockers <= kMaxPerKind;
    } else if (name == "signal_pairs") {
      ok = ParseInt(value, &o->signal_pairs) && o->signal_pairs <= kMaxPerKind;
    } else if (name == "kill_every") {
      ok = ParseDuration(value, &o->kill_every_s);
    } else if (name == "hang_timeout") {
      ok = ParseDuration(value, &o->hang_timeout_s) && o->hang_timeout_s > 0;
    } else if (name == "progress_every") {
      ok = ParseDuration(value, &o->progress_every_s) &&
           o->progress_every_s > 0;
    } else if (name == "queue_bytes") {
      ok = ParseInt(value, &o->queue_bytes) && o->queue_bytes >= 4096;
    } else if (name == "max_payload") {
      ok = ParseInt(value, &o->max_payload) && o->max_payload >= 1;
    } else if (name == "max_seq") {
      ok = ParseInt(value, &o->max_seq) && o->max_seq >= 64;
    } else if (name == "seed") {
      ok = ParseInt(value, &o->seed);
      seeded = true;
    } else if (name == "inject") {
      o->inject = std::string(value);
      ok = o->inject == "torn" || o->inject == "dup" || o->inject == "lose" ||
           o->inject == "lock" || o->inject == "owner_died" ||
           o->inject == "hang" || o->inject == "shm";
    } else {
      return absl::StrCat("unknown flag --", name);
    }
    if (!ok) return absl::StrCat("bad value for --", name, ": '", value, "'");
  }
  if (!seeded) {
    o->seed = static_cast<uint64_t>(
                  Clock::now().time_since_epoch().count()) ^
              (static_cast<uint64_t>(getpid()) << 32);
  }
  if (o->max_seq == 0) {
    // About 1M messages per producer per second of run: tens of times what
    // this machine moves, so a slot never fills in practice. The bitmap
    // pages are only touched as they fill.
    o->max_seq = std::max<uint64_t>(
        uint64_t{1} << 20, static_cast<uint64_t>(o->duration_s * 1e6));
  }
  o->max_seq = (o->max_seq + 63) / 64 * 64;
  return "";
}

// ---- /dev/shm -----------------------------------------------------------------

std::set<std::string> ListShm() {
  std::set<std::string> names;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) {
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) {
        names.insert(e->d_name);
      }
    }
    closedir(d);
  }
  return names;
}

// ---- the run ----------------------------------------------------------------

class Soak {
 public:
  explicit Soak(Options opt) : opt_(std::move(opt)), rng_(opt_.seed) {}
  int Run();

 private:
  struct Worker {
    Kind kind = Kind::kProducer;
    int slot = 0;
    uint32_t id = 0;  // this incarnation's number, from 1
    std::unique_ptr<mp::Process> proc;
    uint64_t seen_ticks = 0;
    Clock::time_point ticks_moved;
    std::string name() const { return absl::StrCat(KindName(kind), " ", slot); }
  };

  absl::Status Setup();
  Heartbeat& HeartbeatOf(Kind kind, int slot);
  bool Spawn(Worker& w);
  // After `w` was reaped: learn what it was doing. `died`: killed, or exited
  // by itself with a non-zero code (it may have held the lock).
  void PostMortem(Worker& w, bool died);
  // Kills and reaps `w`. False if it cannot be reaped (a hang).
  bool KillAndReap(Worker& w);
  void Fail(std::string why);
  void Hang(std::string why);
  void RunPhase();
  void CheckExits();
  void CheckHangs(Clock::time_point now);
  void PrintProgress(Clock::time_point now);
  void Shutdown();
  void StopAndJoin(Worker& w, mp::Deadline deadline, const char* what);
  void FinalLockCheck();
  void Reconcile();
  int Summarize();

  Options opt_;
  std::mt19937_64 rng_;
  World world_;
  mp::SharedMemory region_;
  std::optional<mp::Queue<Message>> queue_;
  std::string prefix_;  // of this run's /dev/shm names
  std::set<std::string> shm_before_;
  std::vector<Worker> workers_;

  Clock::time_point start_;
  Clock::time_point end_;
  bool failed_ = false;
  bool ended_early_full_ = false;
  std::vector<std::string> notes_;  // the parent's incidents

  // Accounting, parent memory.
  uint64_t kills_[kKinds] = {};
  std::vector<uint64_t> resume_;                // per producer slot
  std::vector<std::vector<uint64_t>> in_flight_deaths_;  // per producer slot
  std::vector<std::string> kept_records_;       // from killed consumers
  uint64_t holder_deaths_certain_ = 0;
  uint64_t holder_deaths_possible_ = 0;
  uint32_t next_id_ = 0;
  std::set<uint32_t> dead_locker_ids_;
  std::set<uint32_t> killed_inside_ids_;
  uint64_t unexpected_exits_ = 0;
  uint64_t hangs_ = 0;
  bool marker_put_ = false;

  // Progress tracking per kind.
  uint64_t kind_progress_[kKinds] = {};
  Clock::time_point kind_moved_[kKinds];
  Clock::time_point next_progress_;
  uint64_t last_delivered_ = 0;
  Clock::time_point last_progress_print_;

  // Results of Reconcile.
  uint64_t moved_ = 0;
  uint64_t missing_ = 0;
  uint64_t phantom_beyond_ = 0;
  uint64_t in_flight_total_ = 0;
  uint64_t in_flight_delivered_ = 0;
  uint64_t kept_delivered_ = 0;
  uint64_t lost_records_ = 0;
  std::vector<std::string> shm_left_;
  std::vector<std::string> shm_others_;
};

void Soak::Fail(std::string why) {
  failed_ = true;
  if (notes_.size() < kMaxIncidents) notes_.push_back(std::move(why));
}

void Soak::Hang(std::string why) {
  ++hangs_;
  Fail(absl::StrCat("hang: ", why));
}

Heartbeat& Soak::HeartbeatOf(Kind kind, int slot) {
  Control* ctl = world_.ctl;
  switch (kind) {
    case Kind::kProducer:
      return ctl->producers[slot].hb;
    case Kind::kConsumer:
      return ctl->consumers[slot].hb;
    case Kind::kLocker:
      return ctl->lockers[slot].hb;
    case Kind::kPinger:
      return ctl->pairs[slot].ping_hb;
    case Kind::kPonger:
      return ctl->pairs[slot].pong_hb;
  }
  std::abort();
}

absl::Status Soak::Setup() {
  // The pid alone is not unique: tests run in pid namespaces of their own.
  prefix_ = absl::StrFormat("mp_soak_%d_%08x_", getpid(),
                            static_cast<uint32_t>(std::random_device()()));
  shm_before_ = ListShm();
  absl::StatusOr<mp::Queue<Message>> q = mp::Queue<Message>::Create(
      "/" + prefix_ + "queue",
      mp::QueueOptions{.capacity_bytes = static_cast<size_t>(opt_.queue_bytes),
                       .mode = mp::QueueMode::kMpmc});
  if (!q.ok()) return q.status();
  queue_ = *std::move(q);
  world_.opt = opt_;
  world_.queue_name = "/" + prefix_ + "queue";
  const size_t biggest = 4 + 8 + 8 + 8 + opt_.max_payload;  // the codec's
  // The consumers pop records straight into their slots (workers.cc): every
  // message must go through the ring itself, never a side segment.
  if (biggest > queue_->side_threshold()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_payload=", opt_.max_payload, " does not fit a ring of ",
        queue_->capacity(), " bytes"));
  }

  // The shared mapping: Control, bitmaps, consumer records.
  world_.bitmap_words = opt_.max_seq / 64;
  world_.record_bytes = (queue_->max_message_bytes() + 63) / 64 * 64;
  const size_t control_bytes = (sizeof(Control) + 4095) / 4096 * 4096;
  const size_t bitmap_bytes =
      static_cast<size_t>(opt_.producers) * world_.bitmap_words * 8;
  const size_t record_bytes =
      static_cast<size_t>(opt_.consumers) * world_.record_bytes;
  absl::StatusOr<mp::SharedMemory> region = mp::SharedMemory::Anonymous(
      control_bytes + bitmap_bytes + record_bytes);
  if (!region.ok()) return region.status();
  region_ = *std::move(region);
  char* base = static_cast<char*>(region_.data());
  world_.ctl = new (base) Control();
  world_.bitmaps = reinterpret_cast<uint64_t*>(base + control_bytes);
  world_.records = base + control_bytes + bitmap_bytes;
  for (int i = 0; i < opt_.signal_pairs; ++i) {
    world_.ping.emplace_back();
    world_.pong.emplace_back();
  }

  resume_.assign(opt_.producers, 0);
  in_flight_deaths_.assign(opt_.producers, {});
  auto add = [&](Kind kind, int n) {
    for (int i = 0; i < n; ++i) {
      Worker& w = workers_.emplace_back();
      w.kind = kind;
      w.slot = i;
    }
  };
  add(Kind::kProducer, opt_.producers);
  add(Kind::kConsumer, opt_.consumers);
  add(Kind::kLocker, opt_.lockers);
  add(Kind::kPinger, opt_.signal_pairs);
  add(Kind::kPonger, opt_.signal_pairs);
  return absl::OkStatus();
}

bool Soak::Spawn(Worker& w) {
  Control* ctl = world_.ctl;
  const int slot = w.slot;
  w.id = ++next_id_;
  std::function<void()> target;
  switch (w.kind) {
    case Kind::kProducer: {
      ProducerSlot& ps = ctl->producers[slot];
      const uint64_t start = resume_[slot];
      ps.in_flight.store(kNone);
      ps.acked_end.store(start);
      target = [world = world_, slot, start] { RunProducer(world, slot, start); };
      break;
    }
    case Kind::kConsumer:
      ctl->consumers[slot].filled.store(0);
      target = [world = world_, slot] { RunConsumer(world, slot); };
      break;
    case Kind::kLocker:
      ctl->lockers[slot].hb.phase.store(kIdle);
      target = [world = world_, slot, id = w.id] {
        RunLocker(world, slot, id);
      };
      break;
    case Kind::kPinger:
      target = [world = world_, slot] { RunPinger(world, slot); };
      break;
    case Kind::kPonger:
      target = [world = world_, slot] { RunPonger(world, slot); };
      break;
  }
  w.proc = std::make_unique<mp::Process>(
      mp::ProcessOptions{.name = absl::StrCat(KindName(w.kind), "-", slot),
                         .daemon = true},
      std::move(target));
  if (absl::Status s = w.proc->Start(); !s.ok()) {
    Fail(absl::StrCat("cannot start ", w.name(), ": ", s.ToString()));
    w.proc.reset();
    return false;
  }
  w.seen_ticks = HeartbeatOf(w.kind, slot).ticks.load();
  w.ticks_moved = Clock::now();
  return true;
}

void Soak::PostMortem(Worker& w, bool died) {
  Control* ctl = world_.ctl;
  switch (w.kind) {
    case Kind::kProducer: {
      ProducerSlot& ps = ctl->producers[w.slot];
      const uint64_t acked = ps.acked_end.load();
      const uint64_t in_flight = ps.in_flight.load();
      uint64_t resume = acked;
      if (in_flight != kNone && in_flight >= acked) {
        // Died inside Put (or just before or after it): the message may
        // have gone in, or not, or be counted in lost_records().
        in_flight_deaths_[w.slot].push_back(in_flight);
        resume = in_flight + 1;
      }
      resume_[w.slot] = std::max(resume_[w.slot], resume);
      break;
    }
    case Kind::kConsumer: {
      ConsumerSlot& cs = ctl->consumers[w.slot];
      const uint64_t filled = cs.filled.load();
      if (filled != 0) {
        const size_t n = std::min<size_t>(filled - 1, world_.record_bytes);
        kept_records_.emplace_back(world_.record(w.slot), n);
        cs.filled.store(0);
      }
      break;
    }
    case Kind::kLocker: {
      if (!died) break;
      dead_locker_ids_.insert(w.id);
      const uint32_t phase = ctl->lockers[w.slot].hb.phase.load();
      if (phase == kInside) {
        ++holder_deaths_certain_;
        killed_inside_ids_.insert(w.id);
      } else if (phase == kAcquiring || phase == kReleasing) {
        ++holder_deaths_possible_;
      }
      break;
    }
    case Kind::kPinger:
    case Kind::kPonger:
      break;
  }
}

bool Soak::KillAndReap(Worker& w) {
  if (absl::Status s = w.proc->Kill(); !s.ok()) {
    Fail(absl::StrCat("kill ", w.name(), ": ", s.ToString()));
  }
  absl::Status s = w.proc->Join(std::chrono::seconds(5));
  if (!s.ok() || w.proc->IsAlive()) {
    Hang(absl::StrCat(w.name(), " (pid ", w.proc->pid(),
                      ") not reaped 5 s after SIGKILL: ",
                      s.ok() ? "still running" : s.ToString()));
    return false;
  }
  PostMortem(w, /*died=*/true);
  return true;
}

void Soak::CheckExits() {
  for (Worker& w : workers_) {
    if (!w.proc || w.proc->IsAlive()) continue;
    ++unexpected_exits_;
    Fail(absl::StrCat(w.name(), " (pid ", w.proc->pid(),
                      ") exited by itself with code ",
                      w.proc->exitcode().value_or(-999)));
    PostMortem(w, /*died=*/true);
    w.proc.reset();
  }
}

void Soak::CheckHangs(Clock::time_point now) {
  const auto limit = FromSeconds(opt_.hang_timeout_s);
  // A worker stuck inside a call. Calls have no deadline, so a worker may
  // rightly wait while its peers are being replaced; three times the limit
  // is far past that, and past every sleep slice in mp.
  const auto worker_limit = 3 * limit;
  for (Worker& w : workers_) {
    if (!w.proc) continue;
    const uint64_t t = HeartbeatOf(w.kind, w.slot).ticks.load();
    if (t != w.seen_ticks) {
      w.seen_ticks = t;
      w.ticks_moved = now;
    } else if (now - w.ticks_moved > worker_limit) {
      Hang(absl::StrFormat("%s (pid %d) stuck: its loop has not turned for "
                           "%.1f s (phase %u)",
                           w.name(), w.proc->pid(),
                           Seconds(now - w.ticks_moved),
                           HeartbeatOf(w.kind, w.slot).phase.load()));
      w.ticks_moved = now;  // once per stall
    }
  }
  // A kind that makes no progress at all.
  uint64_t progress[kKinds] = {};
  bool present[kKinds] = {};
  for (Worker& w : workers_) {
    const int k = static_cast<int>(w.kind);
    present[k] = true;
    progress[k] += HeartbeatOf(w.kind, w.slot).progress.load();
  }
  for (int k = 0; k < kKinds; ++k) {
    if (!present[k]) continue;
    if (progress[k] != kind_progress_[k]) {
      kind_progress_[k] = progress[k];
      kind_moved_[k] = now;
    } else if (now - kind_moved_[k] > limit) {
      Hang(absl::StrFormat("no %s made progress for %.1f s",
                           KindName(static_cast<Kind>(k)),
                           Seconds(now - kind_moved_[k])));
      kind_moved_[k] = now;
    }
  }
}

void Soak::PrintProgress(Clock::time_point now) {
  Control* ctl = world_.ctl;
  const uint64_t delivered = ctl->delivered.load();
  const double dt = Seconds(now - last_progress_print_);
  uint64_t kills = 0;
  for (uint64_t k : kills_) kills += k;
  std::printf(
      "[%7.1fs] moved %llu (%.0f/s)  kills %llu (p %llu c %llu l %llu s "
      "%llu)  owner-died %llu  lost %llu  torn %llu  dup %llu\n",
      Seconds(now - start_), static_cast<unsigned long long>(delivered),
      dt > 0 ? static_cast<double>(delivered - last_delivered_) / dt : 0.0,
      static_cast<unsigned long long>(kills),
      static_cast<unsigned long long>(kills_[0]),
      static_cast<unsigned long long>(kills_[1]),
      static_cast<unsigned long long>(kills_[2]),
      static_cast<unsigned long long>(kills_[3] + kills_[4]),
      static_cast<unsigned long long>(ctl->owner_died_seen.load()),
      static_cast<unsigned long long>(queue_->lost_records()),
      static_cast<unsigned long long>(ctl->torn.load()),
      static_cast<unsigned long long>(ctl->duplicates.load()));
  std::fflush(stdout);
  last_delivered_ = delivered;
  last_progress_print_ = now;
}

void Soak::RunPhase() {
  start_ = Clock::now();
  end_ = start_ + FromSeconds(opt_.duration_s);
  for (int k = 0; k < kKinds; ++k) kind_moved_[k] = start_;
  last_progress_print_ = start_;
  next_progress_ = start_ + FromSeconds(opt_.progress_every_s);
  for (Worker& w : workers_) {
    if (!Spawn(w)) return;
  }
  std::uniform_real_distribution<double> jitter(0.5, 1.5);
  auto next_kill_after = [&](Clock::time_point t) {
    return t + FromSeconds(opt_.kill_every_s * jitter(rng_));
  };
  Clock::time_point next_kill =
      opt_.kill_every_s > 0 ? next_kill_after(start_) : Clock::time_point::max();
  std::uniform_int_distribution<size_t> pick(0, workers_.size() - 1);
  for (;;) {
    Clock::time_point now = Clock::now();
    if (now >= end_ || failed_ || g_interrupted) break;
    const Clock::time_point wake =
        std::min({next_kill, next_progress_, now + milliseconds(5), end_});
    std::this_thread::sleep_until(wake);
    now = Clock::now();
    CheckExits();
    if (failed_) break;
    if (now >= next_kill) {
      Worker& victim = workers_[pick(rng_)];
      if (!KillAndReap(victim)) break;
      ++kills_[static_cast<int>(victim.kind)];
      if (!Spawn(victim)) break;
      next_kill = next_kill_after(now);
    }
    CheckHangs(now);
    if (now >= next_progress_) {
      PrintProgress(now);
      next_progress_ += FromSeconds(opt_.progress_every_s);
    }
    bool all_full = true;
    for (int i = 0; i < opt_.producers; ++i) {
      all_full = all_full && world_.ctl->producers[i].full.load() != 0;
    }
    if (all_full) {
      ended_early_full_ = true;
      break;
    }
  }
  end_ = Clock::now();
}

// Waits for `w` to leave by itself until `deadline`; a straggler is a hang,
// killed and reaped.
void Soak::StopAndJoin(Worker& w, mp::Deadline deadline, const char* what) {
  if (!w.proc) return;
  absl::Status s;
  if (w.kind == Kind::kPinger || w.kind == Kind::kPonger) {
    // A pair waits on its events without a deadline: set both until it has
    // seen the stop flag and left.
    for (;;) {
      world_.ping[w.slot].Set();
      world_.pong[w.slot].Set();
      s = w.proc->Join(std::chrono::milliseconds(20));
      if (!s.ok() || !w.proc->IsAlive() || deadline.Expired()) break;
    }
  } else {
    s = w.proc->Join(deadline);
  }
  // Join returns OK at its deadline too (Python's join): a straggler is one
  // still alive.
  if (s.ok() && w.proc->IsAlive()) s = absl::DeadlineExceededError("running");
  if (!s.ok()) {
    Hang(absl::StrCat(w.name(), " (pid ", w.proc->pid(), ") did not ", what,
                      " in time"));
    world_.ctl->abort.store(1);
    KillAndReap(w);
  } else {
    const int code = w.proc->exitcode().value_or(-999);
    if (code != 0) {
      ++unexpected_exits_;
      Fail(absl::StrCat(w.name(), " (pid ", w.proc->pid(),
                        ") exited with code ", code, " at the end"));
    }
    PostMortem(w, /*died=*/code != 0);
  }
  w.proc.reset();
}

void Soak::Shutdown() {
  Control* ctl = world_.ctl;
  const auto grace = FromSeconds(opt_.hang_timeout_s) + std::chrono::seconds(2);
  // Producers, lockers and signal pairs first.
  ctl->stop.store(1, std::memory_order_release);
  mp::Deadline deadline = mp::Deadline::After(grace);
  for (Worker& w : workers_) {
    if (w.kind != Kind::kConsumer) StopAndJoin(w, deadline, "stop");
  }
  // A put after the last producer: takes the producer lock over from a
  // producer killed holding it (which is when lost_records() counts its
  // record), and shows the queue still works end to end.
  bool consumers_alive = false;
  for (Worker& w : workers_) {
    consumers_alive = consumers_alive || (w.kind == Kind::kConsumer && w.proc);
  }
  if (consumers_alive) {
    Message marker = MakeMessage(kMarkerProducer, 0, 1);
    marker.payload = "end";
    marker.checksum = Checksum(kMarkerProducer, 0, marker.payload);
    absl::Status s = queue_->Put(marker, mp::Deadline::After(grace));
    marker_put_ = s.ok();
    if (!s.ok()) Hang(absl::StrCat("the end marker's put: ", s.ToString()));
  }
  // Consumers drain what is left and leave at the end of the stream.
  queue_->Close();
  deadline = mp::Deadline::After(grace);
  for (Worker& w : workers_) {
    if (w.kind == Kind::kConsumer) StopAndJoin(w, deadline, "drain and exit");
  }
  FinalLockCheck();
}

// Every locker is gone: the lock must be free, perhaps with one owner death
// nobody has seen yet.
void Soak::FinalLockCheck() {
  if (opt_.lockers == 0) return;
  LockArea& la = world_.ctl->lock_area;
  const mp::LockResult r = la.lock.Acquire(mp::Deadline::After(
      FromSeconds(opt_.hang_timeout_s)));
  if (r == mp::LockResult::kTimedOut) {
    Hang("the lock is still held after every locker is gone");
    return;
  }
  const uint64_t a0 = la.a0.load();
  const uint64_t a1 = la.a1.load();
  if (r == mp::LockResult::kOwnerDied) {
    NameDeadHolder(la);
    world_.ctl->owner_died_seen.fetch_add(1);
    if (a0 != a1) {
      world_.ctl->repairs.fetch_add(1);
      la.a1.store(a0);
    }
  } else if (a0 != a1) {
    world_.ctl->lock_violations.fetch_add(1);
    Fail(absl::StrCat("final check: lock invariant broken without owner-died: "
                      "a0 ", a0, " a1 ", a1));
  }
  if (absl::Status s = la.lock.Release(); !s.ok()) {
    Fail(absl::StrCat("final check: release: ", s.ToString()));
  }
}

void Soak::Reconcile() {
  Control* ctl = world_.ctl;
  // Records killed consumers held: delivered if nobody recorded them since.
  for (const std::string& r : kept_records_) {
    Verdict v = Examine(world_, r.data(), r.size(), "killed consumer's slot");
    if (v.kind == Verdict::kData && !SetBit(world_.bitmap(v.producer), v.seq)) {
      ++kept_delivered_;
    } else if (v.kind == Verdict::kMarker && ctl->markers.load() == 0) {
      ctl->markers.fetch_add(1);
    }
  }
  for (int p = 0; p < opt_.producers; ++p) {
    const uint64_t* bits = world_.bitmap(p);
    const uint64_t end = resume_[p];
    std::vector<uint64_t>& flight = in_flight_deaths_[p];
    std::sort(flight.begin(), flight.end());
    uint64_t set_below = 0;
    uint64_t set_above = 0;
    for (size_t i = 0; i < world_.bitmap_words; ++i) {
      const uint64_t lo = i * 64;
      uint64_t below = 0;
      if (lo + 64 <= end) {
        below = ~uint64_t{0};
      } else if (lo < end) {
        below = (uint64_t{1} << (end - lo)) - 1;
      }
      set_below += std::popcount(bits[i] & below);
      set_above += std::popcount(bits[i] & ~below);
    }
    uint64_t flight_delivered = 0;
    for (uint64_t s : flight) flight_delivered += TestBit(bits, s);
    const uint64_t acked = end - flight.size();
    const uint64_t acked_delivered = set_below - flight_delivered;
    const uint64_t missing = acked - acked_delivered;
    moved_ += set_below;
    missing_ += missing;
    phantom_beyond_ += set_above;
    in_flight_total_ += flight.size();
    in_flight_delivered_ += flight_delivered;
    if (missing > 0) {
      std::vector<std::string> first;
      for (uint64_t s = 0; s < end && first.size() < 8; ++s) {
        if (!TestBit(bits, s) &&
            !std::binary_search(flight.begin(), flight.end(), s)) {
          first.push_back(absl::StrCat(s));
        }
      }
      Fail(absl::StrCat("producer ", p, ": ", missing,
                        " acknowledged messages never delivered, first seqs ",
                        absl::StrJoin(first, ", ")));
    }
    if (set_above > 0) {
      Fail(absl::StrCat("producer ", p, ": ", set_above,
                        " messages delivered beyond the last one put (", end,
                        ")"));
    }
  }
  lost_records_ = queue_->lost_records();
  queue_.reset();
  if (absl::Status s = mp::SharedMemory::Unlink(world_.queue_name); !s.ok()) {
    Fail(absl::StrCat("unlink ", world_.queue_name, ": ", s.ToString()));
  }
  const std::string leak = "/" + prefix_ + "leak";
  if (opt_.inject == "shm") {
    (void)mp::SharedMemory::Create(leak, 4096);  // left behind on purpose
  }
  for (const std::string& name : ListShm()) {
    if (shm_before_.count(name)) continue;
    (absl::StartsWith(name, prefix_) ? shm_left_ : shm_others_).push_back(name);
  }
  if (opt_.inject == "shm") (void)mp::SharedMemory::Unlink(leak);
}

int Soak::Summarize() {
  Control* ctl = world_.ctl;
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  uint64_t kills = 0;
  for (uint64_t k : kills_) kills += k;
  const uint64_t owner_died = ctl->owner_died_seen.load();
  const bool owner_died_ok =
      holder_deaths_certain_ <= owner_died &&
      owner_died <= holder_deaths_certain_ + holder_deaths_possible_;
  // The owner-died log, by name.
  const LockArea& la = ctl->lock_area;
  const uint32_t named_count = la.named_count.load();
  std::set<uint32_t> named;
  uint64_t named_alive = 0;
  uint64_t named_twice = 0;
  for (uint32_t i = 0; i < named_count; ++i) {
    const uint32_t id = la.named[i].load();
    if (!named.insert(id).second) {
      ++named_twice;
      Fail(absl::StrCat("owner-died named locker #", id, " twice"));
    } else if (dead_locker_ids_.count(id) == 0) {
      ++named_alive;
      Fail(absl::StrCat("owner-died named locker #", id,
                        ", which did not die"));
    }
  }
  uint64_t never_named = 0;
  const bool log_full = named_count >= kMaxNamed;
  if (!log_full) {
    for (uint32_t id : killed_inside_ids_) {
      if (named.count(id) == 0) {
        ++never_named;
        Fail(absl::StrCat("locker #", id, " was killed holding the lock and "
                          "no acquirer reported its death"));
      }
    }
  }
  const bool losses_ok = lost_records_ <= in_flight_total_;
  const uint64_t markers = ctl->markers.load();
  const bool markers_ok = markers == (marker_put_ ? 1u : 0u);
  const uint64_t torn = ctl->torn.load();
  const uint64_t duplicates = ctl->duplicates.load();
  const uint64_t phantom = ctl->phantom.load() + phantom_beyond_;
  const uint64_t lock_violations = ctl->lock_violations.load();
  const uint64_t flag_wrong = ctl->owner_died_flag_wrong.load();
  const uint64_t signal_violations = ctl->signal_violations.load();
  const uint64_t worker_errors = ctl->worker_errors.load();
  const bool pass = !failed_ && owner_died_ok && losses_ok && markers_ok &&
                    torn == 0 && duplicates == 0 && missing_ == 0 &&
                    phantom == 0 && lock_violations == 0 && flag_wrong == 0 &&
                    signal_violations == 0 && worker_errors == 0 &&
                    unexpected_exits_ == 0 && hangs_ == 0 &&
                    shm_left_.empty();
  const double ran = Seconds(end_ - start_);
  std::printf("== soak summary ==\n");
  std::printf("ran                 %.1f s of %.1f s%s, seed %llu\n", ran,
              opt_.duration_s,
              g_interrupted       ? " (interrupted)"
              : ended_early_full_ ? " (ended early: a producer slot is full)"
                                  : "",
              u(opt_.seed));
  std::printf("workers             %d producers, %d consumers, %d lockers, "
              "%d signal pairs; kill every %.0f ms\n",
              opt_.producers, opt_.consumers, opt_.lockers, opt_.signal_pairs,
              opt_.kill_every_s * 1e3);
  std::printf("messages moved      %llu (%.0f/s; of them in flight at a "
              "kill: %llu, kept by a killed consumer: %llu)\n",
              u(moved_), ran > 0 ? moved_ / ran : 0.0, u(in_flight_delivered_),
              u(kept_delivered_));
  std::printf("kills               %llu (producers %llu, consumers %llu, "
              "lockers %llu, signalers %llu; one per %.0f ms)\n",
              u(kills), u(kills_[0]), u(kills_[1]), u(kills_[2]),
              u(kills_[3] + kills_[4]), kills > 0 ? ran * 1e3 / kills : 0.0);
  std::printf("owner-died seen     %llu (holders killed: %llu certain, %llu "
              "possible; want certain <= seen <= certain + possible) %s\n",
              u(owner_died), u(holder_deaths_certain_),
              u(holder_deaths_possible_), owner_died_ok ? "ok" : "FAIL");
  std::printf("owner-died by name  %u named; %llu not a dead locker, %llu "
              "named twice, %llu killed inside and never named%s\n",
              named_count, u(named_alive), u(named_twice), u(never_named),
              log_full ? " (log full: last check skipped)" : "");
  std::printf("losses reported     %llu (lost_records; producers killed in "
              "Put: %llu, their message undelivered: %llu; want reported <= "
              "killed in Put) %s\n",
              u(lost_records_), u(in_flight_total_),
              u(in_flight_total_ - in_flight_delivered_),
              losses_ok ? "ok" : "FAIL");
  std::printf("torn                %llu\n", u(torn));
  std::printf("duplicates          %llu\n", u(duplicates));
  std::printf("missing             %llu\n", u(missing_));
  std::printf("phantom             %llu\n", u(phantom));
  std::printf("end marker          %llu delivered (want %d) %s\n", u(markers),
              marker_put_ ? 1 : 0, markers_ok ? "ok" : "FAIL");
  std::printf("lock invariant      %llu violations, %llu owner_died() flag "
              "errors (%llu critical sections, %llu repairs)\n",
              u(lock_violations), u(flag_wrong),
              u(ctl->lock_area.a0.load()), u(ctl->repairs.load()));
  std::printf("signal pairs        %llu rounds, %llu stale answers, %llu "
              "violations\n",
              u(ctl->signal_rounds.load()), u(ctl->signal_stale.load()),
              u(signal_violations));
  std::printf("worker errors       %llu\n", u(worker_errors));
  std::printf("unexpected exits    %llu\n", u(unexpected_exits_));
  std::printf("hangs               %llu\n", u(hangs_));
  std::printf("/dev/shm left       %zu%s%s\n", shm_left_.size(),
              shm_left_.empty() ? "" : ": ",
              absl::StrJoin(shm_left_, " ").c_str());
  if (!shm_others_.empty()) {
    std::printf("                    (new but not this run's: %s)\n",
                absl::StrJoin(shm_others_, " ").c_str());
  }
  const uint32_t n = std::min<uint32_t>(ctl->incident_count.load(),
                                        kMaxIncidents);
  if (n > 0 || !notes_.empty()) {
    std::printf("incidents (%u from workers, first %u shown):\n",
                ctl->incident_count.load(), n);
    for (uint32_t i = 0; i < n; ++i) {
      std::printf("  %.*s\n", static_cast<int>(sizeof(Incident::text)),
                  ctl->incidents[i].text);
    }
    for (const std::string& note : notes_) std::printf("  %s\n", note.c_str());
  }
  std::printf("result              %s\n", pass ? "PASS" : "FAIL");
  std::fflush(stdout);
  return pass ? 0 : 1;
}

int Soak::Run() {
  if (absl::Status s = Setup(); !s.ok()) {
    std::fprintf(stderr, "soak: setup: %s\n", s.ToString().c_str());
    if (queue_) {
      queue_.reset();
      (void)mp::SharedMemory::Unlink(world_.queue_name);
    }
    return 2;
  }
  std::printf("soak: %.0f s, %d producers, %d consumers, %d lockers, %d "
              "signal pairs, kill every %.0f ms, seed %llu, queue %s (%zu "
              "bytes)\n",
              opt_.duration_s, opt_.producers, opt_.consumers, opt_.lockers,
              opt_.signal_pairs, opt_.kill_every_s * 1e3,
              static_cast<unsigned long long>(opt_.seed),
              world_.queue_name.c_str(), queue_->capacity());
  std::fflush(stdout);
  RunPhase();
  if (Clock::now() - last_progress_print_ > milliseconds(500)) {
    PrintProgress(Clock::now());
  }
  Shutdown();
  Reconcile();
  return Summarize();
}

}  // namespace
}  // namespace soak

int main(int argc, char** argv) {
  soak::Options opt;
  bool help = false;
  const std::string error = soak::ParseFlags(argc, argv, &opt, &help);
  if (help) {
    std::fputs(soak::kUsage, stdout);
    return 0;
  }
  if (!error.empty()) {
    std::fprintf(stderr, "soak: %s (see --help)\n", error.c_str());
    return 2;
  }
  struct sigaction sa = {};
  sa.sa_handler = soak::OnInterrupt;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  soak::Soak soak(std::move(opt));
  return soak.Run();
}
