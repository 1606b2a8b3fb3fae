// mp/sync/internal/named.h
// -----------------------------------------------------------------------------
// Named sync primitives: a /dev/shm segment holding the common segment header
// (mp/core/segment_header.h) and, after it, one resident state (a
// ResidentLock, ResidentEvent, ...). Create formats it (O_EXCL, the mode
// asked for); Open checks the header (kind, format version, state size)
// before any byte of the state is used. Not a public interface: the handles
// (Lock::Create, Event::Open, ...) are.

#ifndef MP_SYNC_INTERNAL_NAMED_H_
#define MP_SYNC_INTERNAL_NAMED_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "mp/core/segment_header.h"
#include "mp/core/shared_memory.h"

namespace mp::sync_internal {

// The layout version of every named sync segment: the header, then the
// state at SegmentHeader::kSize.
inline constexpr uint32_t kNamedSyncVersion = 1;
inline constexpr size_t kNamedStateOffset = SegmentHeader::kSize;

// Creates `name` with room for a State, builds it with `init(void* at)`,
// then publishes the header. AlreadyExists when the name is taken.
template <class State, class Init>
absl::StatusOr<std::shared_ptr<SharedMemory>> CreateNamed(
    std::string_view name, SegmentKind kind, mode_t mode, Init init) {
  static_assert(kNamedStateOffset % alignof(State) == 0);
  auto mem = SharedMemory::Create(name, kNamedStateOffset + sizeof(State),
                                  mode);
  if (!mem.ok()) return mem.status();
  init(static_cast<char*>(mem->data()) + kNamedStateOffset);
  WriteSegmentHeader(mem->data(), kind, kNamedSyncVersion, /*flags=*/0,
                     /*type_tag=*/0, /*type_size=*/sizeof(State),
                     /*data_bytes=*/sizeof(State));
  return std::make_shared<SharedMemory>(*std::move(mem));
}

// Opens `name` as a segment of `kind` holding a State: NotFound,
// PermissionDenied (SharedMemory::Open's checks), DataLoss for a segment
// that is not mp's or is damaged, InvalidArgument for another kind, another
// format version or another state size.
template <class State>
absl::StatusOr<std::shared_ptr<SharedMemory>> OpenNamed(
    std::string_view name, SegmentKind kind, const SegmentAccess& access) {
  auto mem = SharedMemory::Open(name, access);
  if (!mem.ok()) return mem.status();
  const std::string what(name);
  auto header = ReadSegmentHeader(mem->data(), mem->size());
  if (!header.ok()) {
    return absl::Status(header.status().code(),
                        absl::StrCat(what, ": ", header.status().message()));
  }
  if (header->kind != static_cast<uint32_t>(kind)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": segment of kind ", SegmentKindName(header->kind),
                     ", expected kind ",
                     SegmentKindName(static_cast<uint32_t>(kind))));
  }
  if (header->version != kNamedSyncVersion ||
      header->type_size != sizeof(State) ||
      header->data_bytes < sizeof(State)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": kind ", SegmentKindName(header->kind), " of format version ",
        header->version, " and ", header->type_size,
        " state bytes, not version ", kNamedSyncVersion, " and ",
        sizeof(State)));
  }
  return std::make_shared<SharedMemory>(*std::move(mem));
}

}  // namespace mp::sync_internal

#endif  // MP_SYNC_INTERNAL_NAMED_H_
