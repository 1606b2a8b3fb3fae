// soak/message.h
// -----------------------------------------------------------------------------
// The soak's self-checking message: who sent it, its place in the sender's
// stream, a payload whose size and bytes are both derived from those two, and
// a checksum over everything.
//
//   Message m = MakeMessage(/*producer=*/2, /*seq=*/17, /*max_payload=*/4096);
//   CheckResult r = CheckMessage(m, 4096);   // kOk, or what is wrong
//
// The payload length is a function of (producer, seq), so a record that was
// cut short or padded is caught even if its checksum happened to match, and
// the bytes are regenerated and compared, so a record that carries another
// message's payload is caught too. Travels through mp::Queue with the
// Codec<soak::Message> below (the codec a user would write for their type).

#ifndef SOAK_MESSAGE_H_
#define SOAK_MESSAGE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "mp/queue/codec.h"

namespace soak {

// The producer id of the parent's end-of-run marker (see soak.cc).
inline constexpr uint32_t kMarkerProducer = 0xffffffffu;

struct Message {
  uint32_t producer = 0;
  uint64_t seq = 0;
  uint64_t checksum = 0;
  std::string payload;
};

// A 64-bit finaliser (the murmur3 one): spreads every input bit.
inline uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

// Payload bytes of (producer, seq): 1 .. max_payload.
inline size_t PayloadSize(uint32_t producer, uint64_t seq,
                          size_t max_payload) {
  return 1 + static_cast<size_t>(
                 Mix((uint64_t{producer} << 48) ^ seq ^ 0x5eed) %
                 max_payload);
}

// The payload of (producer, seq): a stream of mixed words, 8 bytes at a time.
inline void FillPayload(uint32_t producer, uint64_t seq, char* out,
                        size_t n) {
  uint64_t x = Mix((uint64_t{producer} << 40) + seq);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::memcpy(out + i, &x, 8);
    x = Mix(x + i + 1);
  }
  for (; i < n; ++i) out[i] = static_cast<char>(x >> ((i % 8) * 8));
}

// Over the header fields and the payload, 8 bytes at a time.
inline uint64_t Checksum(uint32_t producer, uint64_t seq,
                         const std::string& payload) {
  uint64_t h = Mix(seq ^ (uint64_t{producer} << 32) ^ payload.size());
  size_t i = 0;
  for (; i + 8 <= payload.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, payload.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < payload.size(); ++i) {
    h = (h ^ static_cast<uint8_t>(payload[i])) * 0x100000001b3ull;
  }
  return Mix(h);
}

inline Message MakeMessage(uint32_t producer, uint64_t seq,
                           size_t max_payload) {
  Message m;
  m.producer = producer;
  m.seq = seq;
  m.payload.resize(PayloadSize(producer, seq, max_payload));
  FillPayload(producer, seq, m.payload.data(), m.payload.size());
  m.checksum = Checksum(producer, seq, m.payload);
  return m;
}

enum class CheckResult {
  kOk,
  kBadChecksum,  // torn or corrupted
  kBadLength,    // payload of the wrong size for (producer, seq)
  kBadPayload,   // checksum fine, bytes not those of (producer, seq)
};

inline CheckResult CheckMessage(const Message& m, size_t max_payload) {
  if (m.checksum != Checksum(m.producer, m.seq, m.payload)) {
    return CheckResult::kBadChecksum;
  }
  if (m.producer == kMarkerProducer) return CheckResult::kOk;
  if (m.payload.size() != PayloadSize(m.producer, m.seq, max_payload)) {
    return CheckResult::kBadLength;
  }
  std::string expect(m.payload.size(), '\0');
  FillPayload(m.producer, m.seq, expect.data(), expect.size());
  return expect == m.payload ? CheckResult::kOk : CheckResult::kBadPayload;
}

inline const char* CheckResultName(CheckResult r) {
  switch (r) {
    case CheckResult::kOk:
      return "ok";
    case CheckResult::kBadChecksum:
      return "bad checksum";
    case CheckResult::kBadLength:
      return "bad payload length";
    case CheckResult::kBadPayload:
      return "bad payload bytes";
  }
  return "?";
}

}  // namespace soak

// Wire format: producer u32 | seq u64 | checksum u64 | payload (the
// std::string codec: length u64, bytes).
template <>
struct mp::Codec<soak::Message> {
  static void Encode(const soak::Message& m, mp::ByteWriter& out) {
    out.Put(m.producer);
    out.Put(m.seq);
    out.Put(m.checksum);
    out.Put(m.payload);
  }
  static absl::Status Decode(mp::ByteReader& in, soak::Message* m) {
    if (absl::Status s = in.Get(&m->producer); !s.ok()) return s;
    if (absl::Status s = in.Get(&m->seq); !s.ok()) return s;
    if (absl::Status s = in.Get(&m->checksum); !s.ok()) return s;
    return in.Get(&m->payload);
  }
};

#endif  // SOAK_MESSAGE_H_
