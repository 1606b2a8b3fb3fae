// Laying out a fresh ring (Format) and validating one another process laid
// out (Attach): nothing here moves records (ring.cc).

#include <cstdint>
#include <new>

#include "absl/strings/str_cat.h"
#include "mp/queue/internal/ring.h"

namespace mp::queue_internal {

size_t Ring::RoundCapacity(size_t capacity) {
  size_t c = kMinCapacity;
  while (c < capacity && c < kMaxCapacity) c <<= 1;
  return c;
}

Ring* Ring::Format(void* base, size_t capacity, RingMode mode,
                   uint64_t maxsize, uint64_t queue_id) {
  Ring* r = new (base) Ring();
  r->maxsize_ = maxsize;
  r->queue_id_ = queue_id;
  r->magic_ = kMagic;
  r->version_ = kVersion;
  r->mode_ = static_cast<uint32_t>(mode);
  r->capacity_ = capacity;
  r->mask_ = capacity - 1;
  return r;
}

absl::StatusOr<Ring*> Ring::Attach(void* base, size_t size) {
  if (base == nullptr || reinterpret_cast<uintptr_t>(base) % kCacheLine != 0) {
    return absl::InvalidArgumentError("ring: misaligned segment");
  }
  if (size < sizeof(Ring)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring: segment of ", size, " bytes is too small"));
  }
  Ring* r = static_cast<Ring*>(base);
  if (r->magic_ != kMagic) return absl::DataLossError("ring: bad magic");
  if (r->version_ != kVersion) {
    return absl::DataLossError(absl::StrCat("ring: version ", r->version_));
  }
  if (r->mode_ != static_cast<uint32_t>(RingMode::kSpsc) &&
      r->mode_ != static_cast<uint32_t>(RingMode::kMpmc)) {
    return absl::DataLossError("ring: bad mode");
  }
  uint64_t cap = r->capacity_;
  if (cap < kMinCapacity || cap > kMaxCapacity || (cap & (cap - 1)) != 0 ||
      r->mask_ != cap - 1 || cap > size - sizeof(Ring)) {
    return absl::DataLossError(absl::StrCat("ring: bad capacity ", cap));
  }
  // The cache before its index: head_cache_ is stored (release) after head
  // was loaded (acquire), so reading the cache first (acquire) orders that
  // load before ours and our head is at least the cached value, live ring or
  // not. In a live ring the reads are not one snapshot: a consumer and a
  // producer may both move a lap between our reads of head and tail. Only a
  // state seen twice in a row with nothing moved is judged.
  uint64_t last_head = ~uint64_t{0}, last_tail = ~uint64_t{0};
  for (int attempt = 0;; ++attempt) {
    const uint64_t head_cache =
        r->head_cache_.load(std::memory_order_acquire);
    const uint64_t head = r->head_.load(std::memory_order_acquire);
    const uint64_t tail = r->tail_.load(std::memory_order_acquire);
    if (head <= tail && tail - head <= cap && head % 8 == 0 && tail % 8 == 0 &&
        head_cache <= head) {
      return r;
    }
    if ((head == last_head && tail == last_tail) || attempt == 1000) {
      return absl::DataLossError("ring: indices out of range");
    }
    last_head = head;
    last_tail = tail;
  }
}

RingView RingView::Format(void* base, size_t capacity, RingMode mode,
                          uint64_t maxsize, uint64_t queue_id) {
  return RingView(Ring::Format(base, capacity, mode, maxsize, queue_id),
                  capacity, mode, maxsize, queue_id);
}

absl::StatusOr<RingView> RingView::Attach(void* base, size_t size) {
  absl::StatusOr<Ring*> r = Ring::Attach(base, size);
  if (!r.ok()) return r.status();
  // One read of each, then validated again here: what Ring::Attach checked
  // may have been rewritten since.
  const uint64_t cap = std::atomic_ref<uint64_t>((*r)->capacity_).load(
      std::memory_order_relaxed);
  const uint32_t mode = std::atomic_ref<uint32_t>((*r)->mode_).load(
      std::memory_order_relaxed);
  if (cap < Ring::kMinCapacity || cap > Ring::kMaxCapacity ||
      (cap & (cap - 1)) != 0 || cap > size - sizeof(Ring)) {
    return absl::DataLossError(absl::StrCat("ring: bad capacity ", cap));
  }
  if (mode != static_cast<uint32_t>(RingMode::kSpsc) &&
      mode != static_cast<uint32_t>(RingMode::kMpmc)) {
    return absl::DataLossError("ring: bad mode");
  }
  // Any value is safe here: the limit only bounds claims, the id only names
  // side segments (of this queue's own prefix).
  const uint64_t maxsize = std::atomic_ref<uint64_t>((*r)->maxsize_).load(
      std::memory_order_relaxed);
  const uint64_t queue_id = std::atomic_ref<uint64_t>((*r)->queue_id_).load(
      std::memory_order_relaxed);
  return RingView(*r, static_cast<size_t>(cap), static_cast<RingMode>(mode),
                  maxsize, queue_id);
}

}  // namespace mp::queue_internal
