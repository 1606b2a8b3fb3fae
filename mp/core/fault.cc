#include "mp/core/fault.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mp::fault {
namespace {

constexpr int kNotArmed = -1;

std::atomic<uint64_t> hits[kNumPoints];
std::atomic<int> armed_point{kNotArmed};
std::atomic<uint64_t> countdown{0};
std::atomic<int> armed_action{0};

// Debian's Abseil has its own string_view type.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

int FindPoint(std::string_view name) {
  for (size_t i = 0; i < kNumPoints; ++i) {
    if (kPoints[i] == name) return static_cast<int>(i);
  }
  return kNotArmed;
}

[[noreturn]] void Perform(Action action) {
  if (action == Action::kExit) _exit(kExitCode);
  raise(SIGKILL);
  _exit(kExitCode);  // not reached
}

// MP_FAULT is read when the process starts, before main.
struct ArmFromEnvironment {
  ArmFromEnvironment() {
    if (!kEnabled) return;
    const char* spec = std::getenv("MP_FAULT");
    if (spec == nullptr || *spec == '\0') return;
    absl::Status s = ArmFromSpec(spec);
    if (!s.ok()) {
      std::fprintf(stderr, "mp: MP_FAULT=%s: %s\n", spec,
                   std::string(s.message()).c_str());
      std::abort();
    }
  }
} arm_from_environment;

}  // namespace

absl::Status Arm(std::string_view point, uint64_t nth_hit, Action action) {
  if (!kEnabled) {
    return absl::FailedPreconditionError(
        "fault points are compiled out: build with --config=fault");
  }
  const int index = FindPoint(point);
  if (index == kNotArmed) {
    return absl::NotFoundError(absl::StrCat("no fault point named ", Sv(point)));
  }
  if (nth_hit == 0) {
    return absl::InvalidArgumentError("nth_hit must be at least 1");
  }
  armed_point.store(kNotArmed, std::memory_order_relaxed);
  countdown.store(nth_hit, std::memory_order_relaxed);
  armed_action.store(static_cast<int>(action), std::memory_order_relaxed);
  armed_point.store(index, std::memory_order_release);
  return absl::OkStatus();
}

absl::Status ArmFromSpec(std::string_view spec) {
  const size_t c1 = spec.find(':');
  if (c1 == std::string_view::npos) {
    return absl::InvalidArgumentError("expected point:nth[:kill|exit]");
  }
  std::string_view point = spec.substr(0, c1);
  std::string_view rest = spec.substr(c1 + 1);
  Action action = Action::kKill;
  const size_t c2 = rest.find(':');
  if (c2 != std::string_view::npos) {
    std::string_view a = rest.substr(c2 + 1);
    if (a == "exit") {
      action = Action::kExit;
    } else if (a != "kill") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown action '", Sv(a), "': kill or exit"));
    }
    rest = rest.substr(0, c2);
  }
  uint64_t nth = 0;
  if (!absl::SimpleAtoi(Sv(rest), &nth)) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad hit count '", Sv(rest), "'"));
  }
  return Arm(point, nth, action);
}

void Disarm() { armed_point.store(kNotArmed, std::memory_order_relaxed); }

uint64_t Hits(std::string_view point) {
  const int index = FindPoint(point);
  return index == kNotArmed ? 0 : hits[index].load(std::memory_order_relaxed);
}

namespace internal {

void Hit(size_t index) {
  hits[index].fetch_add(1, std::memory_order_relaxed);
  if (armed_point.load(std::memory_order_acquire) != static_cast<int>(index)) {
    return;
  }
  if (countdown.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    Perform(static_cast<Action>(armed_action.load(std::memory_order_relaxed)));
  }
}

}  // namespace internal
}  // namespace mp::fault
