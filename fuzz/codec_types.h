// fuzz/codec_types.h
// -----------------------------------------------------------------------------
// The types codec_fuzz decodes, in the order its first input byte picks them,
// with sample values from which make_corpus writes the seed corpus. One list
// for both, so a seed always names the type it was encoded from.
//
// The kinds: bool and arithmetic types, a scoped enum, trivially copyable
// structs and arrays (copied as their bytes), std::string, std::vector,
// std::optional and std::pair of those, nested, and user codecs shaped as
// the examples' (MyFancyClass: a name) and the tests' (Task: two ints, a
// label and tags).

#ifndef MP_FUZZ_CODEC_TYPES_H_
#define MP_FUZZ_CODEC_TYPES_H_

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "mp/core/status_macros.h"
#include "mp/queue/codec.h"

namespace mp::fuzz {

enum class Color : uint8_t { kRed, kGreen, kBlue };

// Trivially copyable, as examples/multiprocessing_producer_consumer.cc's Task.
struct Point {
  int32_t a = 0;
  int32_t b = 0;
  bool operator==(const Point&) const = default;
};

// As examples/multiprocessing_queue.cc's MyFancyClass: a user codec.
struct Fancy {
  std::string name;
  bool operator==(const Fancy&) const = default;
};

// As tests/queue/codec_named_pipe_test.cc's Task: a user codec over parts.
struct Job {
  int a = 0;
  int b = 0;
  std::string label;
  std::vector<std::string> tags;
  bool operator==(const Job&) const = default;
};

}  // namespace mp::fuzz

template <>
struct mp::Codec<mp::fuzz::Fancy> {
  static void Encode(const mp::fuzz::Fancy& v, mp::ByteWriter& out) {
    out.Put(v.name);
  }
  static absl::Status Decode(mp::ByteReader& in, mp::fuzz::Fancy* v) {
    return in.Get(&v->name);
  }
};

template <>
struct mp::Codec<mp::fuzz::Job> {
  static void Encode(const mp::fuzz::Job& t, mp::ByteWriter& out) {
    out.Put(t.a);
    out.Put(t.b);
    out.Put(t.label);
    out.Put(t.tags);
  }
  static absl::Status Decode(mp::ByteReader& in, mp::fuzz::Job* t) {
    MP_RETURN_IF_ERROR(in.Get(&t->a));
    MP_RETURN_IF_ERROR(in.Get(&t->b));
    MP_RETURN_IF_ERROR(in.Get(&t->label));
    return in.Get(&t->tags);
  }
};

namespace mp::fuzz {

using CodecTypes = std::tuple<
    bool, char, int8_t, uint16_t, int32_t, uint64_t, float, double, Color,
    Point, std::array<int16_t, 3>, std::string, std::vector<int32_t>,
    std::vector<uint8_t>, std::vector<Point>, std::vector<std::string>,
    std::vector<std::vector<int16_t>>, std::optional<std::string>,
    std::optional<int32_t>, std::optional<bool>, std::optional<Point>,
    std::optional<std::vector<std::string>>, std::pair<std::string, int32_t>,
    std::pair<int32_t, double>, std::pair<bool, std::string>,
    std::vector<std::optional<std::string>>,
    std::vector<std::optional<int32_t>>,
    std::vector<std::pair<std::string, uint64_t>>, Fancy, Job,
    std::vector<bool>>;

inline constexpr size_t kCodecTypes = std::tuple_size_v<CodecTypes>;

// The first input byte that picks T.
template <class T, size_t I = 0>
constexpr uint8_t CodecIndexOf() {
  static_assert(I < kCodecTypes, "not a codec_fuzz type");
  if constexpr (std::is_same_v<T, std::tuple_element_t<I, CodecTypes>>) {
    return static_cast<uint8_t>(I);
  } else {
    return CodecIndexOf<T, I + 1>();
  }
}

// A few values of each type: the default one first, then typical ones.
template <class T>
std::vector<T> Samples();

template <class T>
std::vector<T> ArithmeticSamples() {
  std::vector<T> v = {T{}, T(1), std::numeric_limits<T>::max(),
                      std::numeric_limits<T>::lowest()};
  if constexpr (std::is_floating_point_v<T>) {
    v.push_back(std::numeric_limits<T>::quiet_NaN());
    v.push_back(-std::numeric_limits<T>::infinity());
  }
  return v;
}

template <>
inline std::vector<bool> Samples() {
  return {false, true};
}
template <>
inline std::vector<char> Samples() {
  return ArithmeticSamples<char>();
}
template <>
inline std::vector<int8_t> Samples() {
  return ArithmeticSamples<int8_t>();
}
template <>
inline std::vector<uint16_t> Samples() {
  return ArithmeticSamples<uint16_t>();
}
template <>
inline std::vector<int32_t> Samples() {
  return ArithmeticSamples<int32_t>();
}
template <>
inline std::vector<uint64_t> Samples() {
  return ArithmeticSamples<uint64_t>();
}
template <>
inline std::vector<float> Samples() {
  return ArithmeticSamples<float>();
}
template <>
inline std::vector<double> Samples() {
  return ArithmeticSamples<double>();
}
template <>
inline std::vector<Color> Samples() {
  return {Color::kRed, Color::kBlue};
}
template <>
inline std::vector<Point> Samples() {
  return {{}, {6, 7}, {-1, 1 << 30}};
}
template <>
inline std::vector<std::array<int16_t, 3>> Samples() {
  return {{}, {{1, -2, 3}}};
}
template <>
inline std::vector<std::string> Samples() {
  return {"", "x", "Fancy Dan", std::string(100, 'z'),
          std::string("\0\xff", 2)};
}
template <>
inline std::vector<std::vector<int32_t>> Samples() {
  return {{}, {1}, {1, -2, 3, std::numeric_limits<int32_t>::min()}};
}
template <>
inline std::vector<std::vector<uint8_t>> Samples() {
  return {{}, {0, 255, 7}};
}
template <>
inline std::vector<std::vector<Point>> Samples() {
  return {{}, {{1, 2}, {3, 4}}};
}
template <>
inline std::vector<std::vector<std::string>> Samples() {
  return {{}, {""}, {"a", "bc", ""}};
}
template <>
inline std::vector<std::vector<std::vector<int16_t>>> Samples() {
  return {{}, {{}, {1, 2}}, {{-1}}};
}
template <>
inline std::vector<std::optional<std::string>> Samples() {
  return {std::nullopt, "", "some"};
}
template <>
inline std::vector<std::optional<int32_t>> Samples() {
  return {std::nullopt, 0, 42};
}
template <>
inline std::vector<std::optional<bool>> Samples() {
  return {std::nullopt, false, true};
}
template <>
inline std::vector<std::optional<Point>> Samples() {
  return {std::nullopt, Point{2, 3}};
}
template <>
inline std::vector<std::optional<std::vector<std::string>>> Samples() {
  return {std::nullopt, std::vector<std::string>{},
          std::vector<std::string>{"x", "y"}};
}
template <>
inline std::vector<std::pair<std::string, int32_t>> Samples() {
  return {{}, {"key", 7}};
}
template <>
inline std::vector<std::pair<int32_t, double>> Samples() {
  return {{}, {1, 0.5}};
}
template <>
inline std::vector<std::pair<bool, std::string>> Samples() {
  return {{}, {true, "yes"}};
}
template <>
inline std::vector<std::vector<std::optional<std::string>>> Samples() {
  return {{}, {std::nullopt, "a", std::nullopt}};
}
template <>
inline std::vector<std::vector<std::optional<int32_t>>> Samples() {
  return {{}, {std::nullopt, 5}};
}
template <>
inline std::vector<std::vector<std::pair<std::string, uint64_t>>> Samples() {
  return {{}, {{"a", 1}, {"", 2}}};
}
template <>
inline std::vector<Fancy> Samples() {
  return {{}, {"Fancy Dan"}};
}
template <>
inline std::vector<Job> Samples() {
  return {{}, {3, 4, "multiply", {"fast", "small"}}};
}
template <>
inline std::vector<std::vector<bool>> Samples() {
  return {{}, {true, false, true}};
}

}  // namespace mp::fuzz

#endif  // MP_FUZZ_CODEC_TYPES_H_
