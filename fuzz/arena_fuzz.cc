// fuzz/arena_fuzz.cc
// -----------------------------------------------------------------------------
// The input is the start of a SharedArena segment another process wrote; the
// segment is the input zero-filled to at least 4096 bytes (an arena's
// minimum), in a 64-byte aligned heap block of exactly that size. Properties:
//
//  * SharedArena::Attach accepts it or says InvalidArgument / DataLoss, and
//    never reads outside the block.
//  * Once attached, Allocate returns nullptr or a 64-byte aligned block that
//    lies inside the arena, past its header, whatever the free lists say;
//    it never aborts, reads or writes outside the block.
//  * Deallocate then Allocate of the same size gives the same block back
//    (the free lists are LIFO), and the bump offset stays in the arena.
//
// The harness never writes into a payload: blocks a hostile writer made
// overlap are not detected (see shared_arena.h), and writing through one
// would clobber another's header, which Deallocate then rightly rejects.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "fuzz/fuzz_util.h"
#include "mp/core/shared_arena.h"

namespace {

using mp::SharedArena;
using mp::fuzz::AlignedBytes;

constexpr size_t kMinArena = 4096;
// The arena's own header and a block's header: a payload starts past both.
constexpr size_t kArenaHeader = 320;
constexpr size_t kBlockHeader = 64;

// Sizes that reach the first few classes, a middle one and two no 4 KiB
// arena can hold (one beyond the largest class).
constexpr size_t kSizes[] = {1,    64,   100,  192,     500,
                             1000, 3000, 5000, 1 << 20, size_t{3} << 30};

struct Block {
  void* p;
  size_t size;
};

void CheckBlock(const AlignedBytes& seg, const SharedArena& arena,
                const Block& b) {
  FUZZ_CHECK(reinterpret_cast<uintptr_t>(b.p) % SharedArena::kAlignment == 0);
  FUZZ_CHECK(seg.Holds(b.p, b.size, kArenaHeader + kBlockHeader));
  const uint64_t off = arena.OffsetOf(b.p);
  FUZZ_CHECK(off + b.size <= arena.capacity());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  AlignedBytes seg(data, size, size < kMinArena ? kMinArena : size);
  absl::StatusOr<SharedArena*> attached =
      SharedArena::Attach(seg.data(), seg.size());
  if (!attached.ok()) {
    const absl::StatusCode c = attached.status().code();
    FUZZ_CHECK(c == absl::StatusCode::kInvalidArgument ||
               c == absl::StatusCode::kDataLoss);
    return 0;
  }
  SharedArena* arena = *attached;
  FUZZ_CHECK(arena->capacity() <= seg.size());
  FUZZ_CHECK(arena->BytesCarved() <= arena->capacity());

  // Requests the arena must refuse whatever its state.
  FUZZ_CHECK(arena->Allocate(8, 128) == nullptr);
  FUZZ_CHECK(arena->Allocate(8, 3) == nullptr);
  FUZZ_CHECK(arena->Allocate(8, 0) == nullptr);

  std::vector<Block> blocks;
  for (int round = 0; round < 2; ++round) {
    for (size_t s : kSizes) {
      void* p = arena->Allocate(s);
      if (p == nullptr) continue;
      blocks.push_back({p, s});
      CheckBlock(seg, *arena, blocks.back());
      FUZZ_CHECK(arena->BytesCarved() <= arena->capacity());
    }
  }
  // Free then take back: the block just freed is on top of its list.
  for (Block& b : blocks) {
    arena->Deallocate(b.p);
    void* again = arena->Allocate(b.size);
    FUZZ_CHECK(again == b.p);
  }
  for (auto it = blocks.rbegin(); it != blocks.rend(); ++it) {
    arena->Deallocate(it->p);
  }
  FUZZ_CHECK(arena->BytesCarved() <= arena->capacity());
  return 0;
}
