// mp/manager/manager.cc: the manager segment and its directory of containers.
//
// Segment layout (kind SegmentKind::kManager, version 1):
//      0  SegmentHeader (segment_header.h), magic written last
//     64  ManagerHeader (below)
//   4096  SharedArena: the directory's ContainerHeader first, then every
//         container, table and entry
// The directory is a dict (store.h) from container name to a DirEntry.

#include "mp/manager/manager.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "mp/core/segment_header.h"
#include "mp/core/status_macros.h"

namespace mp {
namespace manager_internal {

namespace {

constexpr uint64_t kManagerMagic = 0x72676e6d6d70ull;  // "pmmngr"
constexpr uint32_t kVersion = 1;
constexpr uint64_t kArenaOffset = 4096;

struct ManagerHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t reserved;
  uint64_t arena_offset;
  uint64_t arena_size;
  uint64_t directory;  // offset of the directory's header in the arena
  std::atomic<uint64_t> next_unnamed;
};
static_assert(sizeof(ManagerHeader) <= kArenaOffset - SegmentHeader::kSize);

struct DirEntry {
  uint32_t kind;
  uint32_t reserved;
  uint64_t type_tag;
  uint64_t offset;
};

}  // namespace

struct Segment {
  SharedMemory memory;
  SharedArena* arena = nullptr;
  ContainerHeader* directory = nullptr;
  ManagerHeader* header = nullptr;
};

Space SpaceOf(const Segment* seg) { return Space(seg->arena); }

namespace {

absl::StatusOr<std::shared_ptr<Segment>> Format(SharedMemory memory,
                                                bool named) {
  if (memory.size() < kArenaOffset + 64 * 1024) {
    return absl::InvalidArgumentError(
        "manager: capacity must be at least 68 KiB");
  }
  auto seg = std::make_shared<Segment>();
  seg->memory = std::move(memory);
  char* base = static_cast<char*>(seg->memory.data());
  absl::StatusOr<SharedArena*> arena = SharedArena::Format(
      base + kArenaOffset, seg->memory.size() - kArenaOffset);
  if (!arena.ok()) return arena.status();
  seg->arena = *arena;
  void* dir = seg->arena->Allocate(sizeof(ContainerHeader));
  if (dir == nullptr) return absl::ResourceExhaustedError("manager: no room");
  std::memset(dir, 0, sizeof(ContainerHeader));
  seg->directory = static_cast<ContainerHeader*>(dir);
  InitDict(seg->directory, Kind::kDirectory, 0);
  auto* mh = reinterpret_cast<ManagerHeader*>(base + SegmentHeader::kSize);
  mh->magic = kManagerMagic;
  mh->version = kVersion;
  mh->arena_offset = kArenaOffset;
  mh->arena_size = seg->memory.size() - kArenaOffset;
  mh->directory = seg->arena->OffsetOf(dir);
  seg->header = mh;
  (void)named;
  WriteSegmentHeader(base, SegmentKind::kManager, kVersion, 0, 0, 0,
                     seg->memory.size() - SegmentHeader::kSize);
  return seg;
}

}  // namespace

absl::StatusOr<ContainerHeader*> FindOrCreate(Segment* seg,
                                              std::string_view name,
                                              Kind kind, uint64_t type_tag,
                                              uint64_t elem_size,
                                              uint64_t count,
                                              const void* initial) {
  const Space s = SpaceOf(seg);
  std::string key(name);
  if (key.empty()) {
    key = absl::StrCat(
        "#", seg->header->next_unnamed.fetch_add(1, std::memory_order_relaxed));
  } else if (key[0] == '#') {
    return absl::InvalidArgumentError(
        "manager: names starting with '#' are reserved for unnamed containers");
  }
  Guard g(s, seg->directory);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<std::string> found = DictGetLocked(s, seg->directory, key);
  if (found.ok()) {
    DirEntry e;
    if (found->size() != sizeof e) {
      return absl::DataLossError("manager: corrupt directory entry");
    }
    std::memcpy(&e, found->data(), sizeof e);
    if (e.kind != static_cast<uint32_t>(kind)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "manager: '", key, "' is a ", KindName(e.kind), ", not a ",
          KindName(static_cast<uint32_t>(kind))));
    }
    if (e.type_tag != type_tag) {
      return absl::InvalidArgumentError(absl::StrCat(
          "manager: '", key, "' is a ", KindName(e.kind),
          " of other element types than the ones asked for"));
    }
    auto* h = reinterpret_cast<ContainerHeader*>(
        s.At(e.offset, sizeof(ContainerHeader), 64));
    if (h == nullptr || h->kind != e.kind || h->type_tag != e.type_tag) {
      return absl::DataLossError(
          absl::StrCat("manager: corrupt container header for '", key, "'"));
    }
    if ((kind == Kind::kValue || kind == Kind::kArray) &&
        (CellsData(s, h) == nullptr || h->f[0] != elem_size ||
         (kind == Kind::kValue && h->f[1] != 1))) {
      return absl::DataLossError(
          absl::StrCat("manager: corrupt cells for '", key, "'"));
    }
    return h;
  }
  if (!absl::IsNotFound(found.status())) return found.status();

  Txn t(s, seg->directory);
  char* mem = t.Alloc(sizeof(ContainerHeader));
  if (mem == nullptr) {
    return absl::ResourceExhaustedError("manager: the shared segment is full");
  }
  auto* h = reinterpret_cast<ContainerHeader*>(mem);
  switch (kind) {
    case Kind::kDict:
    case Kind::kNamespace:
      InitDict(h, kind, type_tag);
      break;
    case Kind::kList:
      InitList(h, type_tag);
      break;
    case Kind::kValue:
    case Kind::kArray:
      if (!InitCells(t, s, h, kind, type_tag, elem_size, count)) {
        return absl::ResourceExhaustedError(
            "manager: the shared segment is full");
      }
      if (initial != nullptr && elem_size * count != 0) {
        std::memcpy(CellsData(s, h), initial, elem_size * count);
      }
      break;
    case Kind::kDirectory:
      return absl::InvalidArgumentError("manager: not a container kind");
  }
  DirEntry e{static_cast<uint32_t>(kind), 0, type_tag, s.OffsetOf(h)};
  MP_RETURN_IF_ERROR(DictSetIn(
      t, s, seg->directory, key,
      std::string_view(reinterpret_cast<const char*>(&e), sizeof e)));
  t.Commit();
  return h;
}

}  // namespace manager_internal

using manager_internal::ContainerHeader;
using manager_internal::Segment;

Manager::Manager(size_t capacity) : Manager(ValueOrThrow(Make(capacity))) {}

absl::StatusOr<Manager> Manager::Make(size_t capacity) {
  absl::StatusOr<SharedMemory> mem = SharedMemory::Anonymous(capacity);
  if (!mem.ok()) return mem.status();
  auto seg = manager_internal::Format(*std::move(mem), false);
  if (!seg.ok()) return seg.status();
  return Manager(*std::move(seg));
}

absl::StatusOr<Manager> Manager::Create(std::string_view name,
                                        size_t capacity, mode_t mode) {
  absl::StatusOr<SharedMemory> mem = SharedMemory::Create(name, capacity, mode);
  if (!mem.ok()) return mem.status();
  const std::string full = mem->name();
  auto seg = manager_internal::Format(*std::move(mem), true);
  if (!seg.ok()) {
    (void)SharedMemory::Unlink(full);
    return seg.status();
  }
  return Manager(*std::move(seg));
}

absl::StatusOr<Manager> Manager::Open(std::string_view name,
                                      const SegmentAccess& access) {
  using manager_internal::ManagerHeader;
  absl::StatusOr<SharedMemory> mem = SharedMemory::Open(name, access);
  if (!mem.ok()) return mem.status();
  absl::StatusOr<SegmentHeader> sh =
      ReadSegmentHeader(mem->data(), mem->size());
  if (!sh.ok()) return sh.status();
  if (sh->kind != static_cast<uint32_t>(SegmentKind::kManager)) {
    return absl::InvalidArgumentError(
        absl::StrCat("manager: ", mem->name(), " is a ",
                     SegmentKindName(sh->kind), " segment, not a manager"));
  }
  if (sh->version != manager_internal::kVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("manager: ", mem->name(), " has format version ",
                     sh->version, ", this library reads ",
                     manager_internal::kVersion));
  }
  char* base = static_cast<char*>(mem->data());
  if (mem->size() < manager_internal::kArenaOffset + 4096) {
    return absl::DataLossError("manager: segment too small");
  }
  // One copy of the fixed fields, checked; never re-read as geometry.
  struct {
    uint64_t magic;
    uint32_t version;
    uint32_t reserved;
    uint64_t arena_offset;
    uint64_t arena_size;
    uint64_t directory;
  } mh;
  static_assert(sizeof mh == offsetof(ManagerHeader, next_unnamed));
  std::memcpy(&mh, base + SegmentHeader::kSize, sizeof mh);
  if (mh.magic != manager_internal::kManagerMagic ||
      mh.arena_offset != manager_internal::kArenaOffset ||
      mh.arena_size != mem->size() - manager_internal::kArenaOffset) {
    return absl::DataLossError(absl::StrCat(
        "manager: ", mem->name(), " has a damaged manager header"));
  }
  auto seg = std::make_shared<Segment>();
  absl::StatusOr<SharedArena*> arena =
      SharedArena::Attach(base + mh.arena_offset, mh.arena_size);
  if (!arena.ok()) return arena.status();
  manager_internal::Space s(*arena);
  auto* dir = reinterpret_cast<ContainerHeader*>(
      s.At(mh.directory, sizeof(ContainerHeader), 64));
  if (dir == nullptr ||
      dir->kind != static_cast<uint32_t>(manager_internal::Kind::kDirectory)) {
    return absl::DataLossError(absl::StrCat(
        "manager: ", mem->name(), " has a damaged directory"));
  }
  seg->memory = *std::move(mem);
  seg->arena = *arena;
  seg->directory = dir;
  seg->header = reinterpret_cast<ManagerHeader*>(base + SegmentHeader::kSize);
  return Manager(std::move(seg));
}

absl::Status Manager::Unlink(std::string_view name) {
  return SharedMemory::Unlink(name);
}

absl::StatusOr<bool> Manager::Has(std::string_view name) const {
  const manager_internal::Space s = manager_internal::SpaceOf(seg_.get());
  manager_internal::Guard g(s, seg_->directory);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<std::string> found =
      manager_internal::DictGetLocked(s, seg_->directory, name);
  if (found.ok()) return true;
  if (absl::IsNotFound(found.status())) return false;
  return found.status();
}

const std::string& Manager::name() const { return seg_->memory.name(); }
size_t Manager::capacity() const { return seg_->memory.size(); }
size_t Manager::BytesCarved() const { return seg_->arena->BytesCarved(); }

}  // namespace mp
