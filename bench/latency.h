// bench/latency.h
// -----------------------------------------------------------------------------
// Per-iteration latency percentiles for the ping-pong and round-trip
// benchmarks, exported as Google Benchmark user counters so that they appear
// in the JSON output (and so in the report, bench/report/report.py):
//
//   mp_bench::LatencyRecorder lat;
//   for (auto _ : state) {
//     auto t0 = Clock::now();
//     ... one round trip ...
//     lat.Record(Clock::now() - t0);
//   }
//   lat.Export(state);   // counters p50_ns, p90_ns, p99_ns, p99.9_ns
//
// The samples go into a log-linear histogram (64 sub-buckets per power of
// two, so each percentile is within about 1.6% of the exact value), a fixed
// 32 KiB whatever the iteration count: recording is an increment, with no
// allocation in the timed loop. A percentile is the upper edge of the bucket
// holding it, so a reported value is never below the true one.

#ifndef MP_BENCH_LATENCY_H_
#define MP_BENCH_LATENCY_H_

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>

#include "benchmark/benchmark.h"

namespace mp_bench {

class LatencyRecorder {
 public:
  static constexpr int kSubBits = 6;  // 64 sub-buckets per power of two
  static constexpr int kSub = 1 << kSubBits;

  void Record(std::chrono::nanoseconds d) {
    const int64_t ns = d.count();
    ++counts_[Bucket(ns < 0 ? 0 : static_cast<uint64_t>(ns))];
    ++total_;
  }

  // The smallest recorded bound b such that at least fraction q (0..1] of
  // the samples are <= b; 0 when nothing was recorded.
  double Percentile(double q) const {
    if (total_ == 0) return 0;
    uint64_t need = static_cast<uint64_t>(q * static_cast<double>(total_));
    if (need == 0) need = 1;
    uint64_t seen = 0;
    for (size_t b = 0; b < counts_.size(); ++b) {
      seen += counts_[b];
      if (seen >= need) return static_cast<double>(UpperEdge(b));
    }
    return static_cast<double>(UpperEdge(counts_.size() - 1));
  }

  // Sets the p50_ns, p90_ns, p99_ns and p99.9_ns counters on `state`.
  void Export(benchmark::State& state) const {
    state.counters["p50_ns"] = Percentile(0.50);
    state.counters["p90_ns"] = Percentile(0.90);
    state.counters["p99_ns"] = Percentile(0.99);
    state.counters["p99.9_ns"] = Percentile(0.999);
  }

 private:
  // Values below kSub get a bucket each; above, bucket (exponent, the next
  // kSubBits bits).
  static size_t Bucket(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    const int e = 63 - std::countl_zero(v);  // v in [2^e, 2^(e+1))
    const uint64_t sub = (v >> (e - kSubBits)) & (kSub - 1);
    return static_cast<size_t>((e - kSubBits + 1) * kSub + sub);
  }
  static uint64_t UpperEdge(size_t b) {
    if (b < kSub) return b;
    const int e = static_cast<int>(b / kSub) + kSubBits - 1;
    const uint64_t sub = b % kSub;
    // Largest v with this exponent and sub-bucket.
    return (uint64_t{1} << e) + ((sub + 1) << (e - kSubBits)) - 1;
  }

  std::array<uint64_t, (64 - kSubBits + 1) * kSub> counts_{};
  uint64_t total_ = 0;
};

}  // namespace mp_bench

#endif  // MP_BENCH_LATENCY_H_
