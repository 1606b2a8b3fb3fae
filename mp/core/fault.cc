#include "mp/core/fault.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace mp::fault {

// The registry's view of a Table's private fields.
struct TableAccess {
  static std::atomic<uint64_t>* hits(Table& t) { return t.hits_; }
  static Table*& next(Table& t) { return t.next_; }
  static void SetHits(Table& t, std::atomic<uint64_t>* h) { t.hits_ = h; }
};

namespace {

// Every registered table, newest first. Constant-initialised, so a table
// registering before this file's dynamic initialisation still finds it.
constinit std::atomic<Table*> registry{nullptr};

// The armed point: its table and index; countdown hits to go.
constinit std::atomic<Table*> armed_table{nullptr};
constinit std::atomic<size_t> armed_index{0};
constinit std::atomic<uint64_t> countdown{0};
constinit std::atomic<int> armed_action{0};

// Debian's Abseil has its own string_view type.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

struct Found {
  Table* table = nullptr;
  size_t index = 0;
};

Found FindPoint(std::string_view name) {
  for (Table* t = registry.load(std::memory_order_acquire); t != nullptr;
       t = TableAccess::next(*t)) {
    for (size_t i = 0; i < t->size(); ++i) {
      if (t->name(i) == name) return {t, i};
    }
  }
  return {};
}

[[noreturn]] void Perform(Action action) {
  if (action == Action::kExit) _exit(kExitCode);
  raise(SIGKILL);
  _exit(kExitCode);  // not reached
}

absl::Status ArmFound(Found f, std::string_view point, uint64_t nth_hit,
                      Action action) {
  if (f.table == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "no fault point named '", Sv(point),
        "' (points are declared in each package's fault_points.h)"));
  }
  if (nth_hit == 0) {
    return absl::InvalidArgumentError("nth_hit must be at least 1");
  }
  armed_table.store(nullptr, std::memory_order_relaxed);
  countdown.store(nth_hit, std::memory_order_relaxed);
  armed_action.store(static_cast<int>(action), std::memory_order_relaxed);
  armed_index.store(f.index, std::memory_order_relaxed);
  armed_table.store(f.table, std::memory_order_release);
  return absl::OkStatus();
}

// MP_FAULT is read and applied once every table has registered: by the
// first call that needs it (a hit, Arm, Hits, Points).
std::once_flag environment_once;

absl::Status ParseAndArm(std::string_view spec) {
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
  return ArmFound(FindPoint(point), point, nth, action);
}

void ApplyEnvironmentOnce() {
  if (!kEnabled) return;
  std::call_once(environment_once, [] {
    const char* environment_spec = std::getenv("MP_FAULT");
    if (environment_spec == nullptr || *environment_spec == '\0') return;
    absl::Status s = ParseAndArm(environment_spec);
    if (!s.ok()) {
      std::fprintf(stderr, "mp: MP_FAULT=%s: %s\n", environment_spec,
                   std::string(s.message()).c_str());
      std::abort();
    }
  });
}

}  // namespace

#if defined(MP_FAULT_POINTS)
void Table::Register() {
  for (size_t i = 0; i < size_; ++i) {
    if (Found f = FindPoint(names_[i]); f.table != nullptr) {
      std::fprintf(stderr,
                   "mp: fault point '%s' is declared by both %s and %s\n",
                   std::string(names_[i]).c_str(),
                   std::string(f.table->package()).c_str(),
                   std::string(package_).c_str());
      std::abort();
    }
  }
  hits_ = new std::atomic<uint64_t>[size_]();
  Table* head = registry.load(std::memory_order_relaxed);
  do {
    next_ = head;
  } while (!registry.compare_exchange_weak(head, this,
                                           std::memory_order_release,
                                           std::memory_order_relaxed));
}
#endif

absl::Status Arm(std::string_view point, uint64_t nth_hit, Action action) {
  if (!kEnabled) {
    return absl::FailedPreconditionError(
        "fault points are compiled out: build with --config=fault");
  }
  ApplyEnvironmentOnce();
  return ArmFound(FindPoint(point), point, nth_hit, action);
}

absl::Status ArmFromSpec(std::string_view spec) {
  if (!kEnabled) {
    return absl::FailedPreconditionError(
        "fault points are compiled out: build with --config=fault");
  }
  ApplyEnvironmentOnce();
  return ParseAndArm(spec);
}

void Disarm() {
  ApplyEnvironmentOnce();
  armed_table.store(nullptr, std::memory_order_relaxed);
}

uint64_t Hits(std::string_view point) {
  ApplyEnvironmentOnce();
  const Found f = FindPoint(point);
  if (f.table == nullptr || TableAccess::hits(*f.table) == nullptr) return 0;
  return TableAccess::hits(*f.table)[f.index].load(std::memory_order_relaxed);
}

std::vector<std::string> Points() {
  ApplyEnvironmentOnce();
  std::vector<std::string> names;
  for (Table* t = registry.load(std::memory_order_acquire); t != nullptr;
       t = TableAccess::next(*t)) {
    for (size_t i = 0; i < t->size(); ++i) names.emplace_back(t->name(i));
  }
  std::sort(names.begin(), names.end());
  return names;
}

namespace internal {

void Hit(Table& table, size_t index) {
  ApplyEnvironmentOnce();
  TableAccess::hits(table)[index].fetch_add(1, std::memory_order_relaxed);
  if (armed_table.load(std::memory_order_acquire) != &table ||
      armed_index.load(std::memory_order_relaxed) != index) {
    return;
  }
  if (countdown.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    Perform(static_cast<Action>(armed_action.load(std::memory_order_relaxed)));
  }
}

}  // namespace internal
}  // namespace mp::fault
