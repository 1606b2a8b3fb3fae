#include "mp/core/shared_arena.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace mp {

// Every block starts with one cache line of header, then the payload.
//
//   +0  magic   u32   kBlockMagic
//   +4  state   u32   kAllocated | kFree  (CAS guards double free)
//   +8  klass   u32   size class: block bytes = 128 << klass
//   +16 next    u64   free-list link (block index), meaningful while free
//   +64 payload ...
struct SharedArena::BlockHeader {
  uint32_t magic;
  std::atomic<uint32_t> state;
  uint32_t klass;
  uint32_t reserved;
  std::atomic<uint64_t> next;
  char pad[64 - 24];
};

namespace {

constexpr uint64_t kArenaMagic = 0x6d702d6172656e61;  // "mp-arena"
constexpr uint32_t kArenaVersion = 1;
constexpr uint32_t kBlockMagic = 0x6d70626b;  // "mpbk"
constexpr uint32_t kAllocated = 1;
constexpr uint32_t kFree = 2;
constexpr uint64_t kHeaderBytes = 64;

uint64_t BlockBytes(int klass) { return uint64_t{128} << klass; }

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "mp::SharedArena: %s\n", what);
  std::abort();
}

uint64_t ArenaHeaderBytes() {
  // The arena object itself, rounded up to a cache line.
  return 64 * ((sizeof(uint64_t) * 4 + sizeof(uint64_t) * 32 + 63) / 64);
}

// Whether a block of class `klass` at block index `index` lies past the
// arena's header and wholly below `bump` (what has been carved so far).
bool BlockInCarvedRegion(uint32_t index, int klass, uint64_t bump) {
  const uint64_t off = uint64_t{index} * SharedArena::kAlignment;
  return off >= ArenaHeaderBytes() && off <= bump &&
         BlockBytes(klass) <= bump - off;
}

}  // namespace

absl::StatusOr<SharedArena*> SharedArena::Format(void* base, size_t size) {
  if (base == nullptr || reinterpret_cast<uintptr_t>(base) % kAlignment != 0) {
    return absl::InvalidArgumentError("arena base must be 64-byte aligned");
  }
  if (size < 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("arena needs at least 4096 bytes, got ", size));
  }
  if (size / kAlignment > UINT32_MAX) {
    return absl::InvalidArgumentError("arena larger than 256 GiB");
  }
  static_assert(sizeof(SharedArena) <= 64 * 5);
  auto* a = new (base) SharedArena();
  a->magic_ = kArenaMagic;
  a->version_ = kArenaVersion;
  a->reserved_ = 0;
  a->size_ = size;
  a->bump_.store(ArenaHeaderBytes(), std::memory_order_relaxed);
  for (auto& h : a->free_heads_) h.store(0, std::memory_order_relaxed);
  // No fence here: whoever hands the arena to another process publishes it
  // (fork, or a release store of its own), which orders these writes.
  return a;
}

absl::StatusOr<SharedArena*> SharedArena::Attach(void* base, size_t size) {
  if (base == nullptr || reinterpret_cast<uintptr_t>(base) % kAlignment != 0 ||
      size < 4096) {
    return absl::InvalidArgumentError("not a mapping an arena can live in");
  }
  auto* a = static_cast<SharedArena*>(base);
  if (a->magic_ != kArenaMagic) {
    return absl::DataLossError("no mp arena at this address (bad magic)");
  }
  if (a->version_ != kArenaVersion) {
    return absl::DataLossError(
        absl::StrCat("arena version ", a->version_, ", expected ",
                     kArenaVersion));
  }
  if (a->size_ > size || a->size_ < 4096) {
    return absl::DataLossError(absl::StrCat(
        "arena claims ", a->size_, " bytes but the mapping has ", size));
  }
  // Heads before bump: a block is carved (bump moves past it) before it is
  // ever freed, and a head names it only after a release CAS, so a live
  // arena always shows each head's block below the bump read after it.
  uint64_t heads[kNumClasses];
  for (int k = 0; k < kNumClasses; ++k) {
    heads[k] = a->free_heads_[k].load(std::memory_order_acquire);
  }
  uint64_t bump = a->bump_.load(std::memory_order_acquire);
  if (bump < ArenaHeaderBytes() || bump > a->size_ || bump % kAlignment) {
    return absl::DataLossError("arena bump offset out of range");
  }
  for (int k = 0; k < kNumClasses; ++k) {
    const uint32_t index = static_cast<uint32_t>(heads[k]);
    if (index != 0 && !BlockInCarvedRegion(index, k, bump)) {
      return absl::DataLossError(
          absl::StrCat("arena free list ", k, " starts outside the arena"));
    }
  }
  return a;
}

uint64_t SharedArena::OffsetOf(const void* p) const {
  return static_cast<uint64_t>(static_cast<const char*>(p) -
                               reinterpret_cast<const char*>(this));
}

SharedArena::BlockHeader* SharedArena::HeaderOf(const void* payload) const {
  uint64_t off = OffsetOf(payload);
  if (payload == nullptr || off < ArenaHeaderBytes() + kHeaderBytes ||
      off >= size_ || off % kAlignment != 0) {
    Die("Deallocate of a pointer this arena did not allocate");
  }
  return At<BlockHeader>(off - kHeaderBytes);
}

void* SharedArena::Allocate(size_t size, size_t alignment) {
  if (alignment == 0 || alignment > kAlignment ||
      (alignment & (alignment - 1)) != 0) {
    return nullptr;
  }
  static_assert(sizeof(BlockHeader) == 64);
  int klass = 0;
  while (klass < kNumClasses && BlockBytes(klass) - kHeaderBytes < size) {
    ++klass;
  }
  if (klass == kNumClasses) return nullptr;

  BlockHeader* block = nullptr;
  // Pop a recycled block. The generation in the head defeats ABA: a block
  // popped and pushed back between our load and CAS changes the generation.
  // The list lives in shared memory: a link is followed only to a free
  // block of this class inside the carved region. Such a block can stop
  // being one under our feet only if another process pops it, which moves
  // the head; a head that has not moved and still names something else is
  // a corrupt list, and the request fails rather than touch it.
  auto& head = free_heads_[klass];
  uint64_t h = head.load(std::memory_order_acquire);
  while (static_cast<uint32_t>(h) != 0) {
    BlockHeader* candidate = FreeBlock(static_cast<uint32_t>(h), klass);
    if (candidate == nullptr) {
      const uint64_t now = head.load(std::memory_order_acquire);
      if (now == h) return nullptr;
      h = now;
      continue;
    }
    uint64_t next = candidate->next.load(std::memory_order_relaxed);
    uint64_t replacement = ((h >> 32) + 1) << 32 | (next & 0xffffffffu);
    if (head.compare_exchange_weak(h, replacement, std::memory_order_acquire,
                                   std::memory_order_acquire)) {
      block = candidate;
      break;
    }
  }
  if (block == nullptr) {
    uint64_t bytes = BlockBytes(klass);
    uint64_t cur = bump_.load(std::memory_order_relaxed);
    do {
      if (cur + bytes > size_) return nullptr;
    } while (!bump_.compare_exchange_weak(cur, cur + bytes,
                                          std::memory_order_relaxed));
    block = At<BlockHeader>(cur);
    block->magic = kBlockMagic;
    block->klass = static_cast<uint32_t>(klass);
    block->reserved = 0;
    block->next.store(0, std::memory_order_relaxed);
    block->state.store(kAllocated, std::memory_order_relaxed);
  } else {
    // Checked free by FreeBlock and unchanged since (our CAS on the head
    // would have failed otherwise): only a writer that ignores the protocol
    // can make this fail. The block is then lost, not handed out.
    uint32_t expected = kFree;
    if (!block->state.compare_exchange_strong(expected, kAllocated)) {
      return nullptr;
    }
  }
  return reinterpret_cast<char*>(block) + kHeaderBytes;
}

SharedArena::BlockHeader* SharedArena::FreeBlock(uint32_t index,
                                                 int klass) const {
  const uint64_t bump =
      std::min<uint64_t>(bump_.load(std::memory_order_acquire), size_);
  if (!BlockInCarvedRegion(index, klass, bump)) return nullptr;
  BlockHeader* b = At<BlockHeader>(uint64_t{index} * kAlignment);
  if (b->magic != kBlockMagic || b->klass != static_cast<uint32_t>(klass) ||
      b->state.load(std::memory_order_acquire) != kFree) {
    return nullptr;
  }
  return b;
}

void SharedArena::Deallocate(void* p) {
  absl::Status st = TryDeallocate(p);
  if (!st.ok()) Die(std::string(st.message()).c_str());
}

absl::Status SharedArena::TryDeallocate(void* p) {
  if (p == nullptr) return absl::OkStatus();
  const uint64_t off = OffsetOf(p);
  if (off < ArenaHeaderBytes() + kHeaderBytes || off >= size_ ||
      off % kAlignment != 0) {
    return absl::DataLossError(
        "Deallocate of a pointer this arena did not allocate");
  }
  BlockHeader* block = HeaderOf(p);
  if (block->magic != kBlockMagic || block->klass >= kNumClasses) {
    return absl::DataLossError(
        "Deallocate of a pointer this arena did not allocate");
  }
  uint32_t expected = kAllocated;
  if (!block->state.compare_exchange_strong(expected, kFree,
                                            std::memory_order_acq_rel)) {
    return absl::DataLossError("double free of an arena block");
  }
  auto& head = free_heads_[block->klass];
  uint64_t index = OffsetOf(block) / kAlignment;
  uint64_t h = head.load(std::memory_order_relaxed);
  do {
    block->next.store(h & 0xffffffffu, std::memory_order_relaxed);
  } while (!head.compare_exchange_weak(h, ((h >> 32) + 1) << 32 | index,
                                       std::memory_order_release,
                                       std::memory_order_relaxed));
  return absl::OkStatus();
}

}  // namespace mp
