#include "mp/queue/queue.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "mp/core/fault.h"
#include "mp/core/liveness.h"

namespace mp::queue_internal {
namespace {

size_t CapacityFor(const QueueOptions& options) {
  if (options.capacity_bytes == 0) return kDefaultCapacity;
  return Ring::RoundCapacity(options.capacity_bytes);
}

uint64_t MaxsizeFor(const QueueOptions& options) {
  return options.maxsize > 0 ? static_cast<uint64_t>(options.maxsize) : 0;
}

// A random id for the queue's side segment names (never 0).
uint64_t NewQueueId() {
  uint64_t id = 0;
  if (getrandom(&id, sizeof(id), 0) != sizeof(id)) {
    id = (static_cast<uint64_t>(getpid()) << 32) ^
         static_cast<uint64_t>(
             std::chrono::steady_clock::now().time_since_epoch().count());
  }
  return id == 0 ? 1 : id;
}

// A message longer than this goes through a side segment: any that does not
// fit the ring, and any over a quarter of the ring once that is over 64 KiB
// (see "Messages of any size" in queue.h).
size_t SideThresholdFor(const RingView& ring) {
  constexpr size_t kSideMin = size_t{64} << 10;
  const size_t quarter = ring.capacity() / 4;
  return quarter > kSideMin && quarter < ring.max_message()
             ? quarter
             : ring.max_message();
}

void UnlinkSideSegment(uint64_t queue_id, uint64_t pos) {
  shm_unlink(SideSegmentName(queue_id, pos).c_str());
}

// The per-process fields of a state around `ring`.
void InitState(QueueState& state, mode_t permissions) {
  state.side_threshold = SideThresholdFor(state.ring);
  state.permissions = permissions;
  state.ring.set_dead_side_claim(&UnlinkSideSegment);
}

}  // namespace

absl::Status CheckOptions(const QueueOptions& options) {
  if (options.mode != QueueMode::kSpsc && options.mode != QueueMode::kMpmc) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QueueOptions::mode: unknown value ",
        static_cast<uint32_t>(options.mode), " (QueueMode::kMpmc or kSpsc)"));
  }
  if (options.capacity_bytes > Ring::kMaxCapacity) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QueueOptions::capacity_bytes: ", options.capacity_bytes,
        " bytes is more than the largest ring, ", Ring::kMaxCapacity,
        " bytes",
        options.capacity_bytes > (~size_t{0} >> 1)
            ? " (a negative value converted to size_t?)"
            : " (messages larger than the ring go through side segments)"));
  }
  if ((options.permissions & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QueueOptions::permissions: 0", absl::Hex(options.permissions),
        " has bits beyond 0777"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<QueueState>> MakeAnonymousQueue(
    const QueueOptions& options) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  const size_t cap = CapacityFor(options);
  auto mem = SharedMemory::Anonymous(Ring::BytesFor(cap));
  if (!mem.ok()) return mem.status();
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  state->ring = RingView::Format(state->memory.data(), cap,
                                 static_cast<RingMode>(options.mode),
                                 MaxsizeFor(options), NewQueueId());
  InitState(*state, options.permissions);
  return state;
}

absl::StatusOr<std::shared_ptr<QueueState>> CreateNamedQueue(
    std::string_view name, const QueueOptions& options,
    const ElementType& type) {
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  const size_t cap = CapacityFor(options);
  auto mem = SharedMemory::Create(name, kNamedRingOffset + Ring::BytesFor(cap),
                                  options.permissions);
  if (!mem.ok()) return mem.status();
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  char* base = static_cast<char*>(state->memory.data());
  state->ring = RingView::Format(base + kNamedRingOffset, cap,
                                 static_cast<RingMode>(options.mode),
                                 MaxsizeFor(options), NewQueueId());
  state->ring.WatchTruncation(state->memory.truncation_flag());
  state->named = true;
  state->guarded = true;
  InitState(*state, options.permissions);
  state->check_spsc = options.mode == QueueMode::kSpsc;
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
    const ElementType& type, std::optional<QueueMode> mode) {
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
  // Side segments get the permissions the queue's own segment has.
  mode_t permissions = 0600;
  if (absl::StatusOr<std::string> path = NormalizeSegmentName(name);
      path.ok()) {
    struct stat st;
    if (stat(("/dev/shm" + *path).c_str(), &st) == 0) {
      permissions = st.st_mode & 0777;
    }
  }
  auto state = std::make_shared<QueueState>();
  state->memory = *std::move(mem);
  state->ring = *ring;
  state->ring.WatchTruncation(state->memory.truncation_flag());
  state->named = true;
  state->guarded = true;
  InitState(*state, permissions);
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

// ---- The side channel (queue.h, "Messages of any size") ---------------------

namespace {

constexpr uint64_t kSideMagic = 0x3166657264697370ull;  // "psidref1"

struct SideRef {
  uint64_t magic;
  uint64_t queue_id;
  uint64_t pos;
  uint64_t size;
};
static_assert(sizeof(SideRef) == kSideRefBytes);

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOSPC:
    case ENOMEM:
    case EMFILE:
    case ENFILE:
    case EFBIG:
      return absl::ResourceExhaustedError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case EEXIST:  // a ring someone rewrote (a position used twice), or a
                  // stranger's file squatting the name
      return absl::DataLossError(msg);
    default:
      return absl::InternalError(msg);
  }
}

class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

struct SideWrite {
  const char* bytes;
  size_t n;
  const ElementType* type;
  mode_t permissions;
  uint64_t queue_id;
};

// Writes all of `iov` at offset `off` of `fd` (short writes continued).
absl::Status WriteAll(int fd, struct iovec* iov, int iovcnt, off_t off) {
  while (iovcnt > 0) {
    const ssize_t w = pwritev(fd, iov, iovcnt, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "queue: writing a big message's segment");
    }
    off += w;
    size_t left = static_cast<size_t>(w);
    while (iovcnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return absl::OkStatus();
}

// The ring's Fill for a big message (claim held, not committed): makes the
// segment named by the claim's position, writes header and message, and
// writes the reference into the record.
absl::Status FillSide(void* ctx, char* dst, size_t n, uint64_t pos) {
  const auto* w = static_cast<const SideWrite*>(ctx);
  if (n != sizeof(SideRef)) return absl::InternalError("queue: bad side ref");
  const std::string name = SideSegmentName(w->queue_id, pos);
  const int fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC,
                          w->permissions);
  if (fd < 0) {
    return ErrnoStatus(errno,
                       absl::StrCat("queue: creating segment ", name,
                                    " for a message of ", w->n, " bytes"));
  }
  ScopedFd closer(fd);
  absl::Status s;
  if (fchmod(fd, w->permissions) != 0) {  // the umask's bits back
    s = ErrnoStatus(errno, "queue: fchmod of a big message's segment");
  }
  // The header first, on its own: from here on an orphan says what it is
  // and who made it.
  SegmentHeader header{};
  WriteSegmentHeader(&header, SegmentKind::kMessage, kSideVersion, 0,
                     w->type->tag, w->type->size, w->n);
  if (s.ok()) {
    struct iovec iov[1] = {{&header, sizeof(header)}};
    s = WriteAll(fd, iov, 1, 0);
  }
  if (s.ok()) {
    MP_FAULT_POINT("queue.side.after_create");
    struct iovec iov[1] = {{const_cast<char*>(w->bytes), w->n}};
    if (w->n != 0) s = WriteAll(fd, iov, 1, SegmentHeader::kSize);
  }
  if (!s.ok()) {
    shm_unlink(name.c_str());
    return s;
  }
  MP_FAULT_POINT("queue.side.after_write");
  const SideRef ref{kSideMagic, w->queue_id, pos, w->n};
  std::memcpy(dst, &ref, sizeof(ref));
  return absl::OkStatus();
}

absl::Status SideDataLoss(const std::string& name, const std::string& what) {
  return absl::DataLossError(
      absl::StrCat("queue: big message's segment ", name, ": ", what));
}

}  // namespace

std::string SideSegmentName(uint64_t queue_id, uint64_t pos) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "/%s%016llx-%016llx", kSideSegmentPrefix,
                static_cast<unsigned long long>(queue_id),
                static_cast<unsigned long long>(pos));
  return buf;
}

absl::Status PutSide(QueueState& state, const char* bytes, size_t n,
                     const ElementType& type, Deadline deadline) {
  SideWrite w{bytes, n, &type, state.permissions, state.ring.queue_id()};
  return state.ring.PushSide(sizeof(SideRef), &FillSide, &w, deadline);
}

absl::Status ReadSideMessage(const QueueState& state, const char* ref_bytes,
                             size_t n, uint64_t pos, const ElementType& type,
                             std::unique_ptr<char[]>* out, size_t* out_n) {
  const std::string name = SideSegmentName(state.ring.queue_id(), pos);
  SideRef ref;
  if (n != sizeof(ref)) {
    return SideDataLoss(name, absl::StrCat("a reference of ", n, " bytes"));
  }
  std::memcpy(&ref, ref_bytes, sizeof(ref));
  if (ref.magic != kSideMagic || ref.queue_id != state.ring.queue_id() ||
      ref.pos != pos) {
    return SideDataLoss(name, "a malformed reference");
  }
  const int fd = shm_open(name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) {
    return SideDataLoss(name, absl::StrCat("cannot be opened: ",
                                           std::strerror(errno)));
  }
  ScopedFd closer(fd);
  // At once: whatever happens next, the segment does not outlive this read.
  shm_unlink(name.c_str());
  MP_FAULT_POINT("queue.side.after_unlink");
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return SideDataLoss(name, "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < SegmentHeader::kSize ||
      ref.size != file_size - SegmentHeader::kSize) {
    return SideDataLoss(name, absl::StrCat("holds ", file_size,
                                           " bytes, the reference says ",
                                           ref.size, " after the header"));
  }
  SegmentHeader raw;
  if (pread(fd, &raw, sizeof(raw), 0) != static_cast<ssize_t>(sizeof(raw))) {
    return SideDataLoss(name, "short header");
  }
  absl::StatusOr<SegmentHeader> h = ReadSegmentHeader(&raw, file_size);
  if (!h.ok()) return SideDataLoss(name, std::string(h.status().message()));
  if (h->kind != static_cast<uint32_t>(SegmentKind::kMessage) ||
      h->version != kSideVersion || h->data_bytes != ref.size ||
      h->type_tag != type.tag || h->type_size != type.size) {
    return SideDataLoss(name, "its header is not this queue's message");
  }
  const size_t size = static_cast<size_t>(ref.size);
  auto buf = std::make_unique_for_overwrite<char[]>(size == 0 ? 1 : size);
  size_t done = 0;
  while (done < size) {
    const ssize_t r = pread(fd, buf.get() + done, size - done,
                            static_cast<off_t>(SegmentHeader::kSize + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return SideDataLoss(name, "shorter than its header says");
    done += static_cast<size_t>(r);
  }
  *out = std::move(buf);
  *out_n = size;
  return absl::OkStatus();
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
