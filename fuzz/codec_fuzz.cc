// fuzz/codec_fuzz.cc
// -----------------------------------------------------------------------------
// Every mp::Codec decoder over bytes a peer sent. Input: byte 0 picks the
// type (modulo the number of types below), the rest is the message.
// Properties, for each type:
//
//  * DecodeMessage returns OK or DataLoss and reads only the input (a heap
//    block of exactly its size).
//  * A message that decodes is the canonical encoding of what it decoded
//    to: EncodeMessage gives back the same bytes, and decoding those gives
//    an equal value (so a decoder accepts nothing the encoder could not have
//    written, such as a bool of 2 or a tag of 7).
//  * Decoding into an object that already holds a value replaces it.
//  * Read as a stream (ByteReader::Get until the bytes run out), every
//    successful Get consumes at least one byte, so a stream always ends.
//
// The types are listed in codec_types.h.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "fuzz/codec_types.h"
#include "fuzz/fuzz_util.h"
#include "mp/queue/codec.h"

namespace {

using mp::fuzz::CodecTypes;

template <class T>
std::string Encode(const T& v) {
  std::string out;
  mp::EncodeMessage(v, &out);
  return out;
}

// Equal values. Types holding floating point compare their encodings (a
// NaN is not equal to itself, yet decodes and re-encodes faithfully).
template <class T>
bool Same(const T& x, const T& y) {
  if constexpr (std::is_floating_point_v<T> ||
                std::is_same_v<T, std::pair<int32_t, double>>) {
    return Encode(x) == Encode(y);
  } else {
    return x == y;
  }
}

bool IsDecodeError(const absl::Status& s) {
  return s.code() == absl::StatusCode::kDataLoss;
}

template <class T>
void Check(const char* p, size_t n) {
  T v{};
  absl::Status s = mp::DecodeMessage(p, n, &v);
  if (s.ok()) {
    const std::string again = Encode(v);
    FUZZ_CHECK(again.size() == n);
    FUZZ_CHECK(n == 0 || std::memcmp(again.data(), p, n) == 0);
    T w{};
    FUZZ_CHECK(mp::DecodeMessage(again.data(), again.size(), &w).ok());
    FUZZ_CHECK(Same(v, w));
    // Into an object that holds a value: the default's encoding replaces it.
    T dirty = v;
    const std::string empty = Encode(T{});
    FUZZ_CHECK(mp::DecodeMessage(empty.data(), empty.size(), &dirty).ok());
    FUZZ_CHECK(Same(dirty, T{}));
  } else {
    FUZZ_CHECK(IsDecodeError(s));
  }

  // As a stream of values.
  mp::ByteReader in(p, n);
  while (in.remaining() > 0) {
    const size_t before = in.remaining();
    T x{};
    absl::Status g = in.Get(&x);
    if (!g.ok()) {
      FUZZ_CHECK(IsDecodeError(g));
      break;
    }
    FUZZ_CHECK(in.remaining() < before);
  }
}

template <size_t... I>
void Dispatch(size_t which, const char* p, size_t n,
              std::index_sequence<I...>) {
  ((which == I ? Check<std::tuple_element_t<I, CodecTypes>>(p, n) : void()),
   ...);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t which = data[0] % mp::fuzz::kCodecTypes;
  // The message alone in a block of its exact size.
  mp::fuzz::AlignedBytes message(data + 1, size - 1, size - 1, 1);
  Dispatch(which, message.data(), message.size(),
           std::make_index_sequence<mp::fuzz::kCodecTypes>{});
  return 0;
}
