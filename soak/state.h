// soak/state.h
// -----------------------------------------------------------------------------
// What the soak's processes share: one anonymous shared mapping made by the
// parent before the first fork, so every worker (and every replacement) sees
// it at the same address. Layout of the mapping:
//
//   Control            counters, stop flags, incident log, the lock and the
//                      data it guards, the signal pairs, one slot per worker
//   bitmaps            per producer slot, one bit per sequence number:
//                      "a consumer has received (slot, seq)"; max_seq bits
//   records            per consumer slot, max_message bytes: the record that
//                      consumer is handling (see ConsumerSlot)
//
// Everything here is a resident type in mp's sense (DESIGN.md): standard
// layout, plain words and lock-free atomics, no pointers, all-zero is the
// initial state. Workers write their own slot; the parent reads slots only
// to watch progress and, once a worker is dead and reaped, to learn what it
// was doing when it died.

#ifndef SOAK_STATE_H_
#define SOAK_STATE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "mp/sync/lock.h"

namespace soak {

inline constexpr int kMaxPerKind = 32;
inline constexpr int kMaxIncidents = 16;
inline constexpr uint64_t kNone = ~uint64_t{0};

enum class Kind : uint32_t { kProducer, kConsumer, kLocker, kPinger, kPonger };
inline constexpr int kKinds = 5;
inline const char* KindName(Kind k) {
  static constexpr const char* kNames[kKinds] = {"producer", "consumer",
                                                 "locker", "pinger", "ponger"};
  return kNames[static_cast<int>(k)];
}

// What a run is asked to do (flags; see soak.cc for their defaults).
struct Options {
  double duration_s = 180;
  int producers = 3;
  int consumers = 2;
  int lockers = 3;
  int signal_pairs = 1;
  double kill_every_s = 0.05;  // 0: no kills
  double hang_timeout_s = 5;
  double progress_every_s = 5;
  long queue_bytes = 256 * 1024;
  size_t max_payload = 4096;
  uint64_t seed = 0;
  uint64_t max_seq = 0;  // per producer slot; 0: sized from the duration
  std::string inject;    // fault injection, for the tests of the soak itself
};

// Every worker's pulse. `ticks` moves on every loop iteration, whatever
// happened (a timed-out call included): if it stops, the worker is stuck in
// a call. `progress` moves when an operation succeeded: if it stops for a
// whole kind, that kind is starved.
struct Heartbeat {
  std::atomic<uint64_t> ticks{0};
  std::atomic<uint64_t> progress{0};
  std::atomic<uint32_t> phase{0};  // kind-specific, below
};

// A producer slot. Its sequence numbers are one stream across the
// incarnations that fill the slot: a replacement starts where the dead one
// stopped (the parent computes where, from these two words).
//   in_flight  the seq inside Put (stored before the call), kNone between
//   acked_end  every seq below it returned OK from Put, except those the
//              parent recorded as in flight when an earlier incarnation died
struct alignas(64) ProducerSlot {
  Heartbeat hb;
  std::atomic<uint64_t> in_flight{kNone};
  std::atomic<uint64_t> acked_end{0};
  std::atomic<uint32_t> full{0};  // reached max_seq: idles until stopped
};

// A consumer slot. The consumer pops each record straight into its record
// buffer, inside the ring's Pop (before the ring's head moves), and then
// stores `filled` = bytes + 1. It clears `filled` after the message is
// recorded in the bitmap. So a consumer killed anywhere after the copy
// leaves the record here, and the parent, which reaps it, keeps the copy:
// at the end a kept record whose bit is still clear is one the dead consumer
// took out of the ring and never recorded (delivered, not missing); one whose
// bit is set was recorded, or redelivered by the ring because the head had
// not moved yet.
struct alignas(64) ConsumerSlot {
  Heartbeat hb;
  std::atomic<uint64_t> filled{0};
};

struct alignas(64) LockerSlot {
  Heartbeat hb;
};

// Locker phases: where a locker is in its loop, for the parent to judge
// whether a killed locker held the lock.
enum LockerPhase : uint32_t {
  kIdle = 0,       // not holding (between Release and the next Acquire)
  kAcquiring = 1,  // inside Acquire: holds it only if the CAS already won
  kInside = 2,     // holds it, and LockArea::holder is its id
  kReleasing = 3,  // inside Release: holds it until the exchange
};

// The lock every locker takes, and what it guards:
//  * a0, a1: outside the critical section a0 == a1. A holder does a0++, some
//    work, a1++, so one killed inside leaves a0 == a1 + 1 for the next owner
//    to repair.
//  * holder: the incarnation id (the parent numbers every worker it starts,
//    from 1) of the locker inside, 0 when none is. Stored right after the
//    acquire (and after handling owner-died), cleared just before release.
//  * named[0 .. named_count): the owner-died log. An acquirer that gets
//    kOwnerDied appends `holder` (the dead owner, when it got as far as
//    storing its id) unless it is already the last entry: an acquirer killed
//    before storing its own id leaves `holder` as it was, and the next one
//    must not name the same death twice. Written under the lock only.
// So the parent can require: every named id is a locker it killed, named
// once; every locker it killed in phase kInside is named.
inline constexpr uint32_t kMaxNamed = 1u << 16;
struct alignas(64) LockArea {
  mp::ResidentLock lock;
  std::atomic<uint64_t> a0{0};
  std::atomic<uint64_t> a1{0};
  std::atomic<uint32_t> holder{0};
  std::atomic<uint32_t> named_count{0};
  std::atomic<uint32_t> named[kMaxNamed];
};

// Called by whoever got kOwnerDied, before storing its own id in `holder`.
inline void NameDeadHolder(LockArea& la) {
  const uint32_t h = la.holder.load(std::memory_order_relaxed);
  const uint32_t n = la.named_count.load(std::memory_order_relaxed);
  if (h == 0 || n >= kMaxNamed) return;
  if (n > 0 && la.named[n - 1].load(std::memory_order_relaxed) == h) return;
  la.named[n].store(h, std::memory_order_relaxed);
  la.named_count.store(n + 1, std::memory_order_relaxed);
}

// A pinger and a ponger over two mp::Events (the events are handles, kept
// by the parent): the pinger publishes token t and sets `ping`; the ponger
// waits for it, clears it, echoes the token and sets `pong`; the pinger
// waits for pong until it sees echo == t. Both wait without a deadline: a
// replacement ponger first answers the token published (its predecessor may
// have died owing that answer), a replacement pinger pings anew, and at the
// end the parent sets both events until the pair has left.
struct alignas(64) SignalPair {
  Heartbeat ping_hb;
  Heartbeat pong_hb;
  std::atomic<uint64_t> token{0};
  std::atomic<uint64_t> echo{0};
};

// A line of text for the summary, written by whoever found the problem.
struct Incident {
  char text[160];
};

struct alignas(64) Control {
  // Shutdown: producers first (so the parent can close the queue after the
  // last put), lockers and signal pairs with them; `abort` tells every
  // worker, consumers included, to leave now (failure path).
  std::atomic<uint32_t> stop{0};
  std::atomic<uint32_t> abort{0};
  std::atomic<uint32_t> injected{0};

  // Consumers.
  std::atomic<uint64_t> delivered{0};  // bits a consumer set (progress only)
  std::atomic<uint64_t> torn{0};       // failed CheckMessage or decode
  std::atomic<uint64_t> duplicates{0};  // bit already set
  std::atomic<uint64_t> phantom{0};     // producer or seq out of range
  std::atomic<uint64_t> markers{0};     // the parent's end marker
  // Lockers.
  std::atomic<uint64_t> owner_died_seen{0};
  std::atomic<uint64_t> repairs{0};  // owner-died with a0 != a1
  std::atomic<uint64_t> lock_violations{0};
  std::atomic<uint64_t> owner_died_flag_wrong{0};
  // Signal pairs.
  std::atomic<uint64_t> signal_rounds{0};
  std::atomic<uint64_t> signal_stale{0};
  std::atomic<uint64_t> signal_violations{0};
  // Any call that returned what it must not (an unexpected status).
  std::atomic<uint64_t> worker_errors{0};

  std::atomic<uint32_t> incident_count{0};
  Incident incidents[kMaxIncidents];

  LockArea lock_area;
  SignalPair pairs[kMaxPerKind];
  ProducerSlot producers[kMaxPerKind];
  ConsumerSlot consumers[kMaxPerKind];
  LockerSlot lockers[kMaxPerKind];
};
static_assert(std::is_standard_layout_v<Control>);
static_assert(std::is_trivially_destructible_v<Control>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// Appends a line to the incident log (the first kMaxIncidents are kept).
void ReportIncident(Control* ctl, const char* fmt, ...)
    __attribute__((format(printf, 2, 3)));

}  // namespace soak

#endif  // SOAK_STATE_H_
