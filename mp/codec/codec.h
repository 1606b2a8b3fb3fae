// mp/codec/codec.h
// -----------------------------------------------------------------------------
// How values become bytes on their way through a queue or a pipe, and into
// a manager's containers (one codec for mp/queue, mp/pool and mp/manager).
//
//   * A trivially copyable T is copied as its bytes (Queue<T> skips the
//     codec for it), except for these, whose codecs check every byte:
//   * bool is one byte, 0 or 1.
//   * std::string, std::vector<U>, std::optional<U> and std::pair<A, B> are
//     length-prefixed / tagged compositions of their parts, whatever U, A
//     and B are (an optional's flag or a pair's bool copied as raw bytes
//     could arrive as a byte that is no bool at all).
//   * Any other type goes through mp::Codec<T>, which the user specialises:
//
//       struct Task { int a, b; std::string label; };
//       template <>
//       struct mp::Codec<Task> {
//         static void Encode(const Task& t, mp::ByteWriter& out) {
//           out.Put(t.a); out.Put(t.b); out.Put(t.label);
//         }
//         static absl::Status Decode(mp::ByteReader& in, Task* t) {
//           MP_RETURN_IF_ERROR(in.Get(&t->a));
//           MP_RETURN_IF_ERROR(in.Get(&t->b));
//           return in.Get(&t->label);
//         }
//       };
//
// Decoders never read past the bytes they were given: a short or malformed
// input is a DataLoss status, never a crash, and what they accept is exactly
// what Encode writes. Decode needs a default-constructible T. A queue
// rejects a message whose decoder leaves bytes over.
//
// Bytes from a peer you do not trust: a type copied as its bytes is only as
// safe as its every bit pattern is a value. Integers, floating point, enums
// with a fixed underlying type and structs or arrays of those are; if your
// trivially copyable type holds a bool or an enum without a fixed type,
// give it a Codec specialisation that checks them.

#ifndef MP_CODEC_CODEC_H_
#define MP_CODEC_CODEC_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace mp {

template <class T, class Enable = void>
struct Codec;  // specialise for your own types

// Appends bytes to a std::string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void Write(const void* data, size_t n) {
    out_->append(static_cast<const char*>(data), n);
  }
  template <class T>
  void Put(const T& value) {
    Codec<T>::Encode(value, *this);
  }

 private:
  std::string* out_;
};

// Reads bytes from a bounded range.
class ByteReader {
 public:
  ByteReader(const char* data, size_t n) : p_(data), left_(n) {}
  // Copies the next n bytes out; DataLoss (and nothing read) if fewer remain.
  // Inline with the error out of line, so a fixed-size Get compiles to a
  // compare and a constant-size copy.
  absl::Status Read(void* dst, size_t n) {
    if (__builtin_expect(n > left_, false)) return Truncated(n);
    if (n != 0) std::memcpy(dst, p_, n);
    p_ += n;
    left_ -= n;
    return absl::OkStatus();
  }
  template <class T>
  absl::Status Get(T* value) {
    return Codec<T>::Decode(*this, value);
  }
  size_t remaining() const { return left_; }

 private:
  __attribute__((noinline, cold)) absl::Status Truncated(size_t n) const {
    return absl::DataLossError(absl::StrCat(
        "codec: message truncated: need ", n, " bytes, ", left_, " left"));
  }
  const char* p_;
  size_t left_;
};

namespace codec_internal {
template <class T>
struct HasOwnCodec : std::false_type {};  // std::optional and std::pair
template <class U>
struct HasOwnCodec<std::optional<U>> : std::true_type {};
template <class A, class B>
struct HasOwnCodec<std::pair<A, B>> : std::true_type {};
}  // namespace codec_internal

template <class T>
struct Codec<T, std::enable_if_t<std::is_trivially_copyable_v<T> &&
                                 !codec_internal::HasOwnCodec<T>::value>> {
  // Marks the plain byte copy (see CodecCopiesBytes).
  static constexpr bool kCopiesBytes = true;
  static void Encode(const T& v, ByteWriter& out) { out.Write(&v, sizeof(T)); }
  static absl::Status Decode(ByteReader& in, T* v) {
    return in.Read(v, sizeof(T));
  }
};

// True when Codec<T> is the plain byte copy, so that a T (or an array of
// them) may be copied in and out without calling it. False for bool, for
// every std::optional and std::pair, and for types with a user codec.
template <class T>
concept CodecCopiesBytes = requires { requires Codec<T>::kCopiesBytes; };

template <>
struct Codec<bool> {
  static void Encode(const bool& v, ByteWriter& out) {
    const uint8_t b = v ? 1 : 0;
    out.Write(&b, 1);
  }
  static absl::Status Decode(ByteReader& in, bool* v) {
    uint8_t b = 0;
    if (absl::Status st = in.Read(&b, 1); !st.ok()) return st;
    if (b > 1) return absl::DataLossError("codec: bad bool byte");
    *v = b != 0;
    return absl::OkStatus();
  }
};

template <>
struct Codec<std::string> {
  static void Encode(const std::string& s, ByteWriter& out) {
    uint64_t n = s.size();
    out.Write(&n, sizeof(n));
    out.Write(s.data(), s.size());
  }
  static absl::Status Decode(ByteReader& in, std::string* s) {
    uint64_t n = 0;
    if (absl::Status st = in.Read(&n, sizeof(n)); !st.ok()) return st;
    if (n > in.remaining()) {
      return absl::DataLossError(
          absl::StrCat("codec: string of ", n, " bytes in ", in.remaining()));
    }
    s->resize(static_cast<size_t>(n));
    return in.Read(s->data(), static_cast<size_t>(n));
  }
};

template <class U>
struct Codec<std::vector<U>> {
  static void Encode(const std::vector<U>& v, ByteWriter& out) {
    uint64_t n = v.size();
    out.Write(&n, sizeof(n));
    if constexpr (CodecCopiesBytes<U>) {
      out.Write(v.data(), v.size() * sizeof(U));
    } else {
      for (const U& u : v) out.Put(u);
    }
  }
  static absl::Status Decode(ByteReader& in, std::vector<U>* v) {
    uint64_t n = 0;
    if (absl::Status st = in.Read(&n, sizeof(n)); !st.ok()) return st;
    // Every element takes at least one byte (sizeof(U) when copied as
    // bytes), so a count larger than what is left is malformed: reject
    // before resizing.
    const size_t min_each =
        CodecCopiesBytes<U> ? std::max<size_t>(sizeof(U), 1) : 1;
    if (n > in.remaining() / min_each) {
      return absl::DataLossError(
          absl::StrCat("codec: vector of ", n, " elements in ",
                       in.remaining(), " bytes"));
    }
    v->clear();
    if constexpr (CodecCopiesBytes<U>) {
      v->resize(static_cast<size_t>(n));
      return in.Read(v->data(), static_cast<size_t>(n) * sizeof(U));
    } else {
      v->reserve(static_cast<size_t>(n));
      for (uint64_t i = 0; i < n; ++i) {
        U u{};
        if (absl::Status st = in.Get(&u); !st.ok()) return st;
        v->push_back(std::move(u));
      }
      return absl::OkStatus();
    }
  }
};

template <class U>
struct Codec<std::optional<U>> {
  static void Encode(const std::optional<U>& v, ByteWriter& out) {
    uint8_t has = v.has_value() ? 1 : 0;
    out.Write(&has, 1);
    if (v) out.Put(*v);
  }
  static absl::Status Decode(ByteReader& in, std::optional<U>* v) {
    uint8_t has = 0;
    if (absl::Status st = in.Read(&has, 1); !st.ok()) return st;
    if (has > 1) return absl::DataLossError("codec: bad optional tag");
    if (!has) {
      v->reset();
      return absl::OkStatus();
    }
    U u{};
    if (absl::Status st = in.Get(&u); !st.ok()) return st;
    *v = std::move(u);
    return absl::OkStatus();
  }
};

template <class A, class B>
struct Codec<std::pair<A, B>> {
  static void Encode(const std::pair<A, B>& v, ByteWriter& out) {
    out.Put(v.first);
    out.Put(v.second);
  }
  static absl::Status Decode(ByteReader& in, std::pair<A, B>* v) {
    if (absl::Status st = in.Get(&v->first); !st.ok()) return st;
    return in.Get(&v->second);
  }
};

// Encodes `v` into `out` (cleared first).
template <class T>
void EncodeMessage(const T& v, std::string* out) {
  out->clear();
  ByteWriter w(out);
  w.Put(v);
}

// Decodes a whole message: DataLoss if malformed or if bytes are left over.
template <class T>
absl::Status DecodeMessage(const char* data, size_t n, T* v) {
  ByteReader r(data, n);
  if (absl::Status st = r.Get(v); !st.ok()) return st;
  if (r.remaining() != 0) {
    return absl::DataLossError(
        absl::StrCat("codec: ", r.remaining(), " trailing bytes in message"));
  }
  return absl::OkStatus();
}

}  // namespace mp

#endif  // MP_CODEC_CODEC_H_
