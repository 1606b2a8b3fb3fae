// mp/core/fault.h
// -----------------------------------------------------------------------------
// Named crash points between the steps of the library's protocols, so that a
// test can kill a process at exactly "after the CAS, before the robust-list
// link" instead of hoping a random SIGKILL lands there.
//
//   MP_FAULT_POINT("lock.acquire.after_cas");
//
// Built with `--config=fault` (which defines MP_FAULT_POINTS), each point
// counts its hits and, when armed, kills the calling process on the n-th hit:
//
//   MP_CHECK_OK(mp::fault::Arm("ring.put.after_payload", 3,
//                              mp::fault::Action::kKill));
//   // or, before the process starts: MP_FAULT=ring.put.after_payload:3:kill
//
// In the default build a point compiles to a static_assert on its name and
// nothing else: no code, no data, no branch (bench/ shows the same figures
// with and without the points). Arm() then fails with FailedPrecondition.
//
// This file is the mechanism only; it names no point. Each package lists its
// own points in a table of its own (mp/sync/internal/fault_points.h,
// mp/queue/internal/fault_points.h: where each point sits, in a comment) and
// declares the groups it owns, a group being the part of a point's name
// before its first '.':
//
//   namespace mp::sync_internal {
//   inline constexpr std::string_view kFaultPointNames[] = {
//       "lock.acquire.after_cas", ...};
//   inline MP_FAULT_CONSTINIT mp::fault::Table fault_points(
//       "mp/sync", kFaultPointNames);
//   }  // namespace mp::sync_internal
//   MP_FAULT_GROUP("lock", mp::sync_internal::kFaultPointNames,
//                  mp::sync_internal::fault_points);
//
// A call site includes its package's table. Unknown names do not compile: a
// group no included header declares is an incomplete type, a name missing
// from its group's table a consteval error ("unknown fault point").
//
// In a build with points, every table registers itself before main (or when
// its code is loaded), and Arm(), Hits() and Points() find points of every
// table linked into the program by name. Two tables naming one point abort
// at registration with a message.

#ifndef MP_CORE_FAULT_H_
#define MP_CORE_FAULT_H_

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"

namespace mp::fault {

#if defined(MP_FAULT_POINTS)
inline constexpr bool kEnabled = true;
#else
inline constexpr bool kEnabled = false;
#endif

// The group of a point: its name up to the first '.' (a group's own name,
// without a '.', is itself), 1 to 31 characters. A structural type, so that
// it can name a Group.
struct GroupName {
  char text[32] = {};
  consteval GroupName(std::string_view point) {
    const size_t n = std::min(point.find('.'), point.size());
    if (n == 0 || n >= sizeof text) {
      throw "a fault point is named group.step (group: 1 to 31 characters)";
    }
    for (size_t i = 0; i < n; ++i) text[i] = point[i];
  }
};

// Declared by the package that owns the group (MP_FAULT_GROUP); never
// defined here, so a point of an undeclared group does not compile.
template <GroupName G>
struct Group;

// The index of `name` in `table`; a name that is not there is a compile
// error (the throw is not a constant expression).
template <size_t N>
consteval size_t IndexIn(const std::string_view (&table)[N],
                         std::string_view name) {
  for (size_t i = 0; i < N; ++i) {
    if (table[i] == name) return i;
  }
  throw "unknown fault point: add it to its package's fault_points.h";
}

// One package's points at run time: their names and, in a build with
// points, their hit counters, registered with Arm/Hits/Points. In the
// default build a Table does nothing and, declared MP_FAULT_CONSTINIT, is
// constant-initialised: no code runs for it at startup.
class Table {
 public:
  template <size_t N>
#if !defined(MP_FAULT_POINTS)
  constexpr
#endif
      Table(std::string_view package, const std::string_view (&points)[N])
      : package_(package), names_(points), size_(N) {
#if defined(MP_FAULT_POINTS)
    Register();
#endif
  }
  Table(const Table&) = delete;
  Table& operator=(const Table&) = delete;

  std::string_view package() const { return package_; }
  size_t size() const { return size_; }
  std::string_view name(size_t i) const { return names_[i]; }

 private:
  friend struct TableAccess;
  void Register();  // defined only in a build with points

  std::string_view package_;
  const std::string_view* names_;
  size_t size_;
  std::atomic<uint64_t>* hits_ = nullptr;  // size_ counters
  Table* next_ = nullptr;                  // the registry's list
};

#if defined(MP_FAULT_POINTS)
#define MP_FAULT_CONSTINIT
#else
#define MP_FAULT_CONSTINIT constinit
#endif

enum class Action {
  kKill,  // raise(SIGKILL): the process dies as under kill -9
  kExit,  // _exit(kExitCode): no destructors, no atexit handlers
};
inline constexpr int kExitCode = 86;

// Arms `point` in this process: its `nth_hit`-th hit from now (1 = the next)
// performs `action`. Replaces any earlier arming. FailedPrecondition in a
// build without fault points; NotFound for a name no linked table has;
// InvalidArgument for nth_hit 0.
absl::Status Arm(std::string_view point, uint64_t nth_hit, Action action);
// Parses "point:nth[:kill|exit]" and arms it. The MP_FAULT environment
// variable holds this form; it is read and applied by the first hit, Arm,
// Hits or Points call of the process (after every table has registered, so
// before the first hit counts); a spec that does not parse or names no
// point aborts the process with a message.
absl::Status ArmFromSpec(std::string_view spec);
void Disarm();
// Hits of `point` in this process since it started (0 in a build without
// fault points, or for an unknown name).
uint64_t Hits(std::string_view point);
// Every registered point's name, sorted (empty in a build without points).
std::vector<std::string> Points();

namespace internal {
void Hit(Table& table, size_t index);
}  // namespace internal

}  // namespace mp::fault

// Declares `group` (a string literal) as owned by a package: its points are
// named in `names` (a constexpr std::string_view array) and counted by
// `table` (the mp::fault::Table over `names`). At namespace scope, outside
// any namespace.
#define MP_FAULT_GROUP(group, names, table)                              \
  template <>                                                            \
  struct mp::fault::Group<::mp::fault::GroupName(group)> {               \
    static constexpr const auto& kNames = names;                         \
    static ::mp::fault::Table& table_ref() { return table; }             \
  }

#if defined(MP_FAULT_POINTS)
#define MP_FAULT_POINT(name)                                              \
  ::mp::fault::internal::Hit(                                             \
      ::mp::fault::Group<::mp::fault::GroupName(name)>::table_ref(),      \
      std::integral_constant<                                             \
          size_t, ::mp::fault::IndexIn(                                   \
                      ::mp::fault::Group<::mp::fault::GroupName(name)>::  \
                          kNames,                                         \
                      name)>::value)
#else
#define MP_FAULT_POINT(name)                                               \
  static_assert(::mp::fault::IndexIn(                                      \
                    ::mp::fault::Group<::mp::fault::GroupName(name)>::kNames, \
                    name) != static_cast<size_t>(-1))
#endif

#endif  // MP_CORE_FAULT_H_
