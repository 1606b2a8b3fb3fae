#include "mp/queue/queue.h"

#include <unistd.h>

#include "absl/strings/str_cat.h"

namespace mp::queue_internal {
namespace {

size_t CapacityFor(const QueueOptions& options) {
  if (options.maxsize <= 0) return kDefaultCapacity;
  return Ring::RoundCapacity(static_cast<size_t>(options.maxsize));
}

absl::Status CheckMode(RingMode mode) {
  if (mode != RingMode::kSpsc && mode != RingMode::kMpmc) {
    return absl::InvalidArgumentError("queue: bad mode");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<QueueState>> MakeAnonymousQueue(
    const QueueOptions& options) {
  if (absl::Status s = CheckMode(options.mode); !s.ok()) return s;
  const size_t cap = CapacityFor(options);
  auto mem = SharedMemory::Anonymous(Ring::BytesFor(cap));
  if (!mem.ok()) return mem.status();
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  state->ring = RingView::Format(state->memory.data(), cap, options.mode);
  return state;
}

absl::StatusOr<std::shared_ptr<QueueState>> CreateNamedQueue(
    std::string_view name, const QueueOptions& options) {
  if (absl::Status s = CheckMode(options.mode); !s.ok()) return s;
  const size_t cap = CapacityFor(options);
  auto mem = SharedMemory::Create(name, Ring::BytesFor(cap),
                                  options.permissions);
  if (!mem.ok()) return mem.status();
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  state->ring = RingView::Format(state->memory.data(), cap, options.mode);
  return state;
}

absl::StatusOr<std::shared_ptr<QueueState>> OpenNamedQueue(
    std::string_view name, const SegmentAccess& access) {
  auto mem = SharedMemory::Open(name, access);
  if (!mem.ok()) return mem.status();
  auto ring = RingView::Attach(mem->data(), mem->size());
  if (!ring.ok()) {
    return absl::Status(ring.status().code(),
                        absl::StrCat("queue ", std::string(name), ": ",
                                     ring.status().message()));
  }
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  state->ring = *ring;
  return state;
}

uint32_t TaskSlotFor(QueueState& state) {
  const uint64_t pid = static_cast<uint32_t>(getpid());
  const uint64_t cached = state.task_slot.load(std::memory_order_acquire);
  if ((cached >> 32) == pid && (cached & 0xffffffffu) != 0) {
    return static_cast<uint32_t>(cached & 0xffffffffu) - 1;
  }
  const uint32_t slot = state.ring.ClaimTaskSlot();
  if (slot != Ring::kNoSlot) {
    state.task_slot.store((pid << 32) | (slot + 1), std::memory_order_release);
  }
  return slot;
}

std::string& EncodeBuffer() {
  thread_local std::string buf;
  return buf;
}

std::string& DecodeBuffer() {
  thread_local std::string buf;
  return buf;
}

}  // namespace mp::queue_internal
