// mp/core/shared_arena.h
// -----------------------------------------------------------------------------
// SharedArena: an allocator whose every byte of bookkeeping lives inside the
// shared segment it manages, so any process that maps the segment (a forked
// child, or an unrelated process that opened it by name) can allocate and
// free resident objects in it.
//
//   auto mem = mp::SharedMemory::Create("/jobs", 1 << 20);
//   auto* arena = mp::SharedArena::Format(mem->data(), mem->size()).value();
//   auto* counter = arena->New<std::atomic<int64_t>>(0);
//   uint64_t where = arena->OffsetOf(counter);   // valid in every process
//   ... another process: SharedArena::Attach(base, size)->At<...>(where)
//
// Design: power-of-two size classes (kNumClasses of them: blocks of 128 B ..
// 2 GiB, each with a 64-byte header before its payload), one lock-free
// LIFO free list per class, fresh blocks cut from a bump offset. Heads are
// tagged (32-bit generation | 32-bit block index) so a pop racing with a
// pop-and-push of the same block (ABA) fails its CAS. Blocks are never
// split or merged. Every payload is 64-byte aligned.
//
// Crash safety: there is no lock. A process killed in the middle of an
// allocation or a free can at worst leak the block it was handling; it can
// never leave the arena locked or its lists cyclic.
//
// Memory ordering: Allocate returns memory whose earlier contents (from a
// previous Deallocate in any process) happen-before the caller's use; the
// caller publishes its object to others with its own release store.

#ifndef MP_CORE_SHARED_ARENA_H_
#define MP_CORE_SHARED_ARENA_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <utility>

#include "absl/status/statusor.h"

namespace mp {

class SharedArena {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr int kNumClasses = 25;  // block sizes 128 B .. 2 GiB

  // Lays a new, empty arena over [base, base + size). `base` must be 64-byte
  // aligned; size at least 4 KiB. Any earlier content is forgotten.
  static absl::StatusOr<SharedArena*> Format(void* base, size_t size);
  // Validates and returns the arena another process formatted at `base`.
  // InvalidArgument / DataLoss when the header is not a sane arena of at
  // most `size` bytes: bad magic, version or size, a bump offset or a free
  // list head outside the carved region (a hostile or corrupt segment is
  // rejected, not used).
  static absl::StatusOr<SharedArena*> Attach(void* base, size_t size);

  // `size` bytes aligned to `alignment` (at most 64), or nullptr when the
  // arena is full or the request cannot be met. The size Format wrote is
  // trusted once Attach has checked it; the free lists live in the segment
  // and every process writes them, so they are checked as they are used:
  // Allocate follows a link only to a free block of the right class inside
  // the carved region, and returns nullptr for that class's requests while
  // its list is corrupt. It never touches memory outside the arena. Blocks
  // a writer made overlap are not detected.
  void* Allocate(size_t size, size_t alignment = kAlignment);
  // Returns memory from Allocate to the arena. Aborts with a message on a
  // pointer this arena did not hand out or on a double free.
  void Deallocate(void* p);
  // As Deallocate, but DataLoss instead of the abort: for a pointer read
  // from bytes another process wrote (a recovery following a record that
  // may be corrupt).
  absl::Status TryDeallocate(void* p);

  template <class T, class... Args>
  T* New(Args&&... args) {
    static_assert(alignof(T) <= kAlignment, "over-aligned resident type");
    void* p = Allocate(sizeof(T), alignof(T));
    return p == nullptr ? nullptr : new (p) T(std::forward<Args>(args)...);
  }
  template <class T>
  void Delete(T* p) {
    if (p == nullptr) return;
    p->~T();
    Deallocate(p);
  }

  // Position-independent references: offsets from the arena's base.
  uint64_t OffsetOf(const void* p) const;
  template <class T>
  T* At(uint64_t offset) const {
    return reinterpret_cast<T*>(reinterpret_cast<char*>(
                                    const_cast<SharedArena*>(this)) +
                                offset);
  }

  size_t capacity() const { return size_; }
  // Bytes cut from the bump region so far (blocks in use or on free lists).
  size_t BytesCarved() const { return bump_.load(std::memory_order_relaxed); }

 private:
  SharedArena() = default;
  struct BlockHeader;
  BlockHeader* HeaderOf(const void* payload) const;
  // The block at `index` if it is a free block of class `klass` inside the
  // carved region, else nullptr.
  BlockHeader* FreeBlock(uint32_t index, int klass) const;

  uint64_t magic_;
  uint32_t version_;
  uint32_t reserved_;
  uint64_t size_;
  std::atomic<uint64_t> bump_;
  // Each head: generation << 32 | block index (offset / 64); index 0 = empty.
  std::atomic<uint64_t> free_heads_[kNumClasses];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free);

}  // namespace mp

#endif  // MP_CORE_SHARED_ARENA_H_
