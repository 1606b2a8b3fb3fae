// mp/core/segment_header.h
// -----------------------------------------------------------------------------
// The common header at offset 0 of every named segment mp creates, so that a
// tool (mpctl) or a process opening the segment can tell what it is, who made
// it and whether that process still lives, without trusting anything else in
// the segment. The layout is stable: fields are only ever added in
// `reserved`, and `version` says the layout of the kind's own data.
//
//   offset size field
//        0    8 magic          kMagic ("mpseg\0\0\1"), written last at Create
//        8    4 kind           SegmentKind
//       12    4 version        format version of the kind's data
//       16    4 creator_pid    the creating process's pid
//       20    4 flags          kind-specific (a queue: its QueueMode)
//       24    8 creator_start  the creator's start time (liveness.h), so a
//                              recycled pid is not mistaken for it
//       32    8 type_tag       what the segment holds (a queue: a hash of its
//                              element type's name); 0: not recorded
//       40    4 type_size      bytes of one element when copied as is, 0
//                              when elements go through a codec
//       44    4 header_size    64: where the kind's data starts
//       48    8 data_bytes     bytes of the kind's data after the header
//       56    8 reserved       zero
//
// A reader copies the 64 bytes out once and checks the copy
// (ReadSegmentHeader): what another process writes later is never re-read
// as geometry.

#ifndef MP_CORE_SEGMENT_HEADER_H_
#define MP_CORE_SEGMENT_HEADER_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "absl/status/statusor.h"

namespace mp {

enum class SegmentKind : uint32_t {
  kQueue = 1,
  kLock = 2,
  kEvent = 3,
  kSemaphore = 4,
  kCondition = 5,
  kArena = 6,
  kManager = 7,
  kPool = 8,
  // A big message in transit through a queue's side channel (queue.h):
  // named kSideSegmentPrefix..., its creator the producer.
  kMessage = 9,
};

// A short name for a kind ("queue", "lock", ...), "unknown" otherwise.
const char* SegmentKindName(uint32_t kind);

struct SegmentHeader {
  static constexpr uint64_t kMagic = 0x010000676573706dull;  // "mpseg\0\0\1"
  static constexpr uint32_t kSize = 64;

  uint64_t magic;
  uint32_t kind;
  uint32_t version;
  uint32_t creator_pid;
  uint32_t flags;
  uint64_t creator_start;
  uint64_t type_tag;
  uint32_t type_size;
  uint32_t header_size;
  uint64_t data_bytes;
  uint64_t reserved;
};
static_assert(std::is_standard_layout_v<SegmentHeader>);
static_assert(std::is_trivially_copyable_v<SegmentHeader>);
static_assert(sizeof(SegmentHeader) == SegmentHeader::kSize);

// Fills the header at `base` (zeroed memory of a segment being created) for
// the calling process, publishing the magic last.
void WriteSegmentHeader(void* base, SegmentKind kind, uint32_t version,
                        uint32_t flags, uint64_t type_tag, uint32_t type_size,
                        uint64_t data_bytes);

// Copies the header out of a segment of `size` bytes at `base` and checks
// it: DataLoss when the segment is too small or its magic, header size or
// data size is wrong (not an mp segment, or a damaged one). The kind and
// version are the caller's to check against what it expects.
absl::StatusOr<SegmentHeader> ReadSegmentHeader(const void* base,
                                                size_t size);

// A stable 64-bit tag for a type name (FNV-1a), never 0.
uint64_t TypeTag(std::string_view type_name);

}  // namespace mp

#endif  // MP_CORE_SEGMENT_HEADER_H_
