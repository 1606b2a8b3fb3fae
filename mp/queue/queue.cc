#include "mp/queue/queue.h"

#include <unistd.h>

#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "mp/core/liveness.h"

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
    std::string_view name, const QueueOptions& options,
    const ElementType& type) {
  if (absl::Status s = CheckMode(options.mode); !s.ok()) return s;
  const size_t cap = CapacityFor(options);
  auto mem = SharedMemory::Create(name, kNamedRingOffset + Ring::BytesFor(cap),
                                  options.permissions);
  if (!mem.ok()) return mem.status();
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  char* base = static_cast<char*>(state->memory.data());
  state->ring = RingView::Format(base + kNamedRingOffset, cap, options.mode);
  state->ring.WatchTruncation(state->memory.truncation_flag());
  state->named = true;
  state->check_spsc = options.mode == RingMode::kSpsc;
  // The header last (its magic last of all): an opener that sees it sees a
  // formatted ring.
  WriteSegmentHeader(base, SegmentKind::kQueue, Ring::kVersion,
                     static_cast<uint32_t>(options.mode), type.tag, type.size,
                     Ring::BytesFor(cap));
  return state;
}

namespace {

const char* ModeName(uint32_t mode) {
  switch (static_cast<RingMode>(mode)) {
    case RingMode::kSpsc:
      return "SPSC";
    case RingMode::kMpmc:
      return "MPMC";
  }
  return "an unknown mode";
}

absl::Status Prefixed(std::string_view name, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("queue ", std::string(name),
                                             ": ", s.message()));
}

}  // namespace

absl::StatusOr<std::shared_ptr<QueueState>> OpenNamedQueue(
    std::string_view name, const SegmentAccess& access,
    const ElementType& type, std::optional<RingMode> mode) {
  auto mem = SharedMemory::Open(name, access);
  if (!mem.ok()) return mem.status();
  // One copy of the header, checked: nothing in it is read again.
  absl::StatusOr<SegmentHeader> h = ReadSegmentHeader(mem->data(), mem->size());
  if (!h.ok()) return Prefixed(name, h.status());
  if (h->kind != static_cast<uint32_t>(SegmentKind::kQueue)) {
    return Prefixed(name, absl::InvalidArgumentError(absl::StrCat(
                              "the segment is a ", std::string(SegmentKindName(h->kind)),
                              " (kind ", h->kind, "), not a queue")));
  }
  if (h->version != Ring::kVersion) {
    return Prefixed(name, absl::InvalidArgumentError(absl::StrCat(
                              "ring layout version ", h->version,
                              ", expected ", Ring::kVersion)));
  }
  if (h->type_tag != type.tag || h->type_size != type.size) {
    return Prefixed(
        name, absl::InvalidArgumentError(absl::StrCat(
                  "holds elements of another type (tag ",
                  absl::Hex(h->type_tag), ", size ", h->type_size,
                  "), expected ", type.name, " (tag ", absl::Hex(type.tag),
                  ", size ", type.size, ")")));
  }
  if (h->flags != static_cast<uint32_t>(RingMode::kSpsc) &&
      h->flags != static_cast<uint32_t>(RingMode::kMpmc)) {
    return Prefixed(name, absl::DataLossError(
                              absl::StrCat("bad mode ", h->flags)));
  }
  if (mode.has_value() && static_cast<uint32_t>(*mode) != h->flags) {
    return Prefixed(name, absl::InvalidArgumentError(absl::StrCat(
                              "created ", ModeName(h->flags), ", expected ",
                              ModeName(static_cast<uint32_t>(*mode)))));
  }
  auto ring = RingView::Attach(
      static_cast<char*>(mem->data()) + kNamedRingOffset,
      mem->size() - kNamedRingOffset);
  if (!ring.ok()) return Prefixed(name, ring.status());
  if (static_cast<uint32_t>(ring->mode()) != h->flags) {
    return Prefixed(name, absl::DataLossError(absl::StrCat(
                              "header says ", ModeName(h->flags),
                              ", ring says ",
                              ModeName(static_cast<uint32_t>(ring->mode())))));
  }
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  state->ring = *ring;
  state->ring.WatchTruncation(state->memory.truncation_flag());
  state->named = true;
  state->check_spsc = ring->mode() == RingMode::kSpsc;
  return state;
}

absl::Status CheckSpscSide(QueueState& state, bool producer) {
  QueueState::SpscSide& side = producer ? state.producer : state.consumer;
  if (side.tid.load(std::memory_order_relaxed) == liveness::CurrentTid()) {
    return absl::OkStatus();
  }
  const uint32_t pid = static_cast<uint32_t>(getpid());
  if (side.pid.load(std::memory_order_acquire) != pid) {
    if (absl::Status s = state.ring.ClaimSpscSide(producer); !s.ok()) {
      return s;
    }
    side.pid.store(pid, std::memory_order_release);
  }
  side.tid.store(liveness::CurrentTid(), std::memory_order_relaxed);
  return absl::OkStatus();
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
