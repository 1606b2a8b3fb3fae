// soak/workers.h
// -----------------------------------------------------------------------------
// The soak's worker processes. Each Run* function is the target of one
// mp::Process; it loops until Control::stop (or ::abort) and returns, or is
// SIGKILLed by the parent at any instruction. Every blocking call has a
// timeout, so a loop iteration ends within a second whatever its peers do,
// and a worker whose `ticks` stop moving is stuck inside a call.
//
// A worker that sees something impossible (an invariant broken, a status no
// call may return) counts it in Control and logs an incident; it exits with
// a non-zero code only when it cannot go on (the queue cannot be opened).

#ifndef SOAK_WORKERS_H_
#define SOAK_WORKERS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "mp/sync/event.h"
#include "soak/state.h"

namespace soak {

// What every worker is given at fork: the options, the shared mapping and
// where its parts are, the queue's name, and the signal pairs' events.
struct World {
  Options opt;
  Control* ctl = nullptr;
  uint64_t* bitmaps = nullptr;  // producers x bitmap_words
  size_t bitmap_words = 0;      // opt.max_seq / 64
  char* records = nullptr;      // consumers x record_bytes
  size_t record_bytes = 0;      // the queue's largest message
  std::string queue_name;
  std::vector<mp::Event> ping;  // one per signal pair
  std::vector<mp::Event> pong;

  uint64_t* bitmap(int producer) const {
    return bitmaps + static_cast<size_t>(producer) * bitmap_words;
  }
  char* record(int consumer) const {
    return records + static_cast<size_t>(consumer) * record_bytes;
  }
};

// What a record turned out to be. kBad: torn, undecodable or from nowhere
// (counted in Control and logged by Examine).
struct Verdict {
  enum Kind { kBad, kData, kMarker } kind = kBad;
  uint32_t producer = 0;
  uint64_t seq = 0;
};
Verdict Examine(const World& w, const char* bytes, size_t n, const char* who);

// Puts MakeMessage(slot, seq) for seq = start, start + 1, ... into the queue.
void RunProducer(const World& w, int slot, uint64_t start);
// Pops into its slot, checks, records; leaves when the queue is closed and
// drained (or on abort).
void RunConsumer(const World& w, int slot);
// Takes the lock, checks and advances the two-word invariant. `id`: this
// incarnation's number (never 0), stored in LockArea::holder while inside.
void RunLocker(const World& w, int slot, uint32_t id);
void RunPinger(const World& w, int pair);
void RunPonger(const World& w, int pair);

// Test-and-set of bit `seq` in `bitmap`; returns the bit's old value.
inline bool SetBit(uint64_t* bitmap, uint64_t seq) {
  std::atomic_ref<uint64_t> word(bitmap[seq / 64]);
  const uint64_t mask = uint64_t{1} << (seq % 64);
  return (word.fetch_or(mask, std::memory_order_relaxed) & mask) != 0;
}
inline bool TestBit(const uint64_t* bitmap, uint64_t seq) {
  return (bitmap[seq / 64] >> (seq % 64)) & 1;
}

}  // namespace soak

#endif  // SOAK_WORKERS_H_
