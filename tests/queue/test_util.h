// Helpers shared by the queue tests: checked messages and child processes.
#ifndef TESTS_QUEUE_TEST_UTIL_H_
#define TESTS_QUEUE_TEST_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

// In a child process: a failed expectation ends it with exit code 3 (the
// parent asserts on the exit code). Needs mp/core/process.h for mp::Exit.
#define CHILD_CHECK(cond)                                               \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::fprintf(stderr, "%s:%d: CHILD_CHECK(%s) failed\n", __FILE__, \
                   __LINE__, #cond);                                    \
      mp::Exit(3);                                                      \
    }                                                                   \
  } while (0)

namespace mp_test {

// A message that checks itself: producer id, sequence number, payload bytes
// derived from both, and a checksum over everything.
//   bytes 0..3 producer | 4..11 seq | 12..19 checksum | 20.. payload
inline constexpr size_t kCheckedHeader = 20;

inline uint64_t Mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  return x;
}

inline uint64_t Checksum(const char* p, size_t n, uint64_t seed) {
  uint64_t h = seed;
  for (size_t i = 0; i < n; ++i) h = (h ^ static_cast<uint8_t>(p[i])) * 1099511628211ull;
  return h;
}

inline std::string MakeMessage(uint32_t producer, uint64_t seq, size_t size) {
  if (size < kCheckedHeader) size = kCheckedHeader;
  std::string m(size, '\0');
  std::memcpy(m.data(), &producer, 4);
  std::memcpy(m.data() + 4, &seq, 8);
  uint64_t x = Mix(seq * 31 + producer);
  for (size_t i = kCheckedHeader; i < size; ++i) {
    m[i] = static_cast<char>(x >> ((i % 8) * 8));
    if (i % 8 == 7) x = Mix(x + i);
  }
  uint64_t c = Checksum(m.data() + kCheckedHeader, size - kCheckedHeader,
                        seq ^ producer);
  std::memcpy(m.data() + 12, &c, 8);
  return m;
}

// True when `m` is intact; sets producer and seq.
inline bool CheckMessage(const std::string& m, uint32_t* producer,
                         uint64_t* seq) {
  if (m.size() < kCheckedHeader) return false;
  uint64_t c;
  std::memcpy(producer, m.data(), 4);
  std::memcpy(seq, m.data() + 4, 8);
  std::memcpy(&c, m.data() + 12, 8);
  return c == Checksum(m.data() + kCheckedHeader, m.size() - kCheckedHeader,
                       *seq ^ *producer) &&
         m == MakeMessage(*producer, *seq, m.size());
}

// Iterations for soak-style loops: `dflt`, or $MP_QUEUE_SOAK times more.
inline int SoakScale() {
  const char* s = std::getenv("MP_QUEUE_SOAK");
  return s ? std::max(1, std::atoi(s)) : 1;
}

}  // namespace mp_test

#endif  // TESTS_QUEUE_TEST_UTIL_H_
