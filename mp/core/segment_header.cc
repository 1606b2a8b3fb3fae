#include "mp/core/segment_header.h"

#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "mp/core/liveness.h"

namespace mp {

const char* SegmentKindName(uint32_t kind) {
  switch (static_cast<SegmentKind>(kind)) {
    case SegmentKind::kQueue:
      return "queue";
    case SegmentKind::kLock:
      return "lock";
    case SegmentKind::kEvent:
      return "event";
    case SegmentKind::kSemaphore:
      return "semaphore";
    case SegmentKind::kCondition:
      return "condition";
    case SegmentKind::kArena:
      return "arena";
    case SegmentKind::kManager:
      return "manager";
    case SegmentKind::kPool:
      return "pool";
    case SegmentKind::kMessage:
      return "message";
  }
  return "unknown";
}

void WriteSegmentHeader(void* base, SegmentKind kind, uint32_t version,
                        uint32_t flags, uint64_t type_tag, uint32_t type_size,
                        uint64_t data_bytes) {
  auto* h = static_cast<SegmentHeader*>(base);
  const uint32_t pid = static_cast<uint32_t>(getpid());
  h->kind = static_cast<uint32_t>(kind);
  h->version = version;
  h->creator_pid = pid;
  h->flags = flags;
  h->creator_start = liveness::TaskStartTime(pid);
  h->type_tag = type_tag;
  h->type_size = type_size;
  h->header_size = SegmentHeader::kSize;
  h->data_bytes = data_bytes;
  h->reserved = 0;
  // Last: a reader that sees the magic sees the rest.
  std::atomic_ref<uint64_t>(h->magic).store(SegmentHeader::kMagic,
                                            std::memory_order_release);
}

absl::StatusOr<SegmentHeader> ReadSegmentHeader(const void* base,
                                                size_t size) {
  if (size < SegmentHeader::kSize) {
    return absl::DataLossError(
        absl::StrCat("segment of ", size, " bytes has no room for mp's ",
                     SegmentHeader::kSize, "-byte header"));
  }
  SegmentHeader h;
  const uint64_t magic =
      std::atomic_ref<const uint64_t>(
          *static_cast<const uint64_t*>(base))
          .load(std::memory_order_acquire);
  std::memcpy(&h, base, sizeof(h));
  h.magic = magic;
  if (h.magic != SegmentHeader::kMagic) {
    return absl::DataLossError("not an mp segment (bad magic)");
  }
  if (h.header_size != SegmentHeader::kSize) {
    return absl::DataLossError(
        absl::StrCat("mp segment with a header size of ", h.header_size,
                     ", not ", SegmentHeader::kSize));
  }
  if (h.data_bytes > size - SegmentHeader::kSize) {
    return absl::DataLossError(absl::StrCat(
        "mp segment of ", size, " bytes claims ", h.data_bytes,
        " bytes of data after its header (truncated?)"));
  }
  return h;
}

uint64_t TypeTag(std::string_view type_name) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : type_name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h == 0 ? 1 : h;
}

}  // namespace mp
