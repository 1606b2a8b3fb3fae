// fuzz/open_fuzz.cc
// -----------------------------------------------------------------------------
// The input is a named queue's /dev/shm segment as anybody may have left it,
// behind one byte of setup:
//
//   byte 0   bits 1..0  the segment's permission bits: 0600, 0640, 0660, 0666
//            bit 2      chown the segment to uid 65534 (when run as root)
//            bits 4..3  the mode Open expects: none, kSpsc, kMpmc, none
//   bytes 1.. the segment: SegmentHeader, then the ring (mp/queue/queue.h)
//
// Properties: Queue<std::string>::Open and Queue<int64_t>::Open, with the
// default access and with an access that accepts the owner and mode, accept
// the segment or say NotFound / PermissionDenied / FailedPrecondition /
// InvalidArgument / DataLoss, never read outside the mapping (the segment's
// size is the input's) and never crash; a queue they accept answers a few
// Puts and Gets (past deadlines) with a status of the contract.

#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "fuzz/fuzz_util.h"
#include "fuzz/queue_status.h"
#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/queue.h"

namespace {

using mp::QueueMode;

bool IsOpenError(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

using mp::fuzz::IsOperationStatus;

template <class T>
void TryOpen(const std::string& name, const mp::SegmentAccess& access,
             std::optional<QueueMode> mode, const T& sample) {
  absl::StatusOr<mp::Queue<T>> q = mp::Queue<T>::Open(name, access, mode);
  if (!q.ok()) {
    FUZZ_CHECK(IsOpenError(q.status()));
    return;
  }
  FUZZ_CHECK(q->capacity() >= mp::queue_internal::Ring::kMinCapacity);
  for (int i = 0; i < 3; ++i) {
    // A message over a small ring's maximum goes through a side segment.
    const absl::Status put = q->Put(sample, mp::Deadline::Past());
    FUZZ_CHECK(IsOperationStatus(put));
    absl::StatusOr<T> v = q->Get(mp::Deadline::Past());
    FUZZ_CHECK(IsOperationStatus(v.status()));
  }
  (void)q->lost_records();
  (void)q->corrupt_records();
  (void)q->qsize();
  mp::fuzz::RemoveSideSegments(q->side_segment_prefix());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;  // a segment cannot be empty
  static const std::string name = "/mp-fuzz-open-" + std::to_string(getpid());
  (void)mp::SharedMemory::Unlink(name);  // a crashed earlier run's leftover
  static constexpr mode_t kModes[] = {0600, 0640, 0660, 0666};
  const uint8_t setup = data[0];
  const mode_t perms = kModes[setup & 3];
  absl::StatusOr<mp::SharedMemory> mem =
      mp::SharedMemory::Create(name, size - 1, perms);
  FUZZ_CHECK(mem.ok());
  std::memcpy(mem->data(), data + 1, size - 1);
  // shm_open applies the umask: set the bits as asked.
  const std::string path = "/dev/shm" + name;
  FUZZ_CHECK(chmod(path.c_str(), perms) == 0);
  constexpr uid_t kNobody = 65534;
  const bool chowned =
      (setup & 4) != 0 && geteuid() == 0 && chown(path.c_str(), kNobody, -1) == 0;
  std::optional<QueueMode> mode;
  if (((setup >> 3) & 3) == 1) mode = QueueMode::kSpsc;
  if (((setup >> 3) & 3) == 2) mode = QueueMode::kMpmc;
  const mp::SegmentAccess strict{};
  const mp::SegmentAccess lenient{
      .owner = chowned ? kNobody : mp::SegmentAccess::kCallerUid,
      .permissions = 0666};
  TryOpen<std::string>(name, strict, mode, std::string("fuzz"));
  TryOpen<std::string>(name, lenient, mode, std::string(100, 'x'));
  TryOpen<int64_t>(name, lenient, mode, int64_t{42});
  // The default access refuses what is not the caller's 0600 segment.
  if (perms != 0600 || chowned) {
    FUZZ_CHECK(mp::Queue<std::string>::Open(name).status().code() ==
               absl::StatusCode::kPermissionDenied);
  }
  FUZZ_CHECK(mp::SharedMemory::Unlink(name).ok());
  return 0;
}
