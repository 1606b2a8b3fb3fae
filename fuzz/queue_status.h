// fuzz/queue_status.h: what a queue operation may answer on a segment that
// another process may have rewritten (ring_fuzz, open_fuzz): any status but
// these is a bug, as is a crash. RemoveSideSegments: a queue on a rewritten
// ring may leave big messages' side segments (queue.h) unread; a fuzz run
// removes them so that it leaves nothing in /dev/shm.

#ifndef MP_FUZZ_QUEUE_STATUS_H_
#define MP_FUZZ_QUEUE_STATUS_H_

#include <dirent.h>
#include <sys/mman.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace mp::fuzz {

inline bool IsOperationStatus(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kResourceExhausted:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kDataLoss:
      return true;
    default:
      return false;
  }
}

// Unlinks every /dev/shm entry whose name starts with `prefix` (a queue's
// side_segment_prefix()).
inline void RemoveSideSegments(const std::string& prefix) {
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return;
  while (dirent* e = readdir(d)) {
    if (std::string_view(e->d_name).substr(0, prefix.size()) == prefix) {
      shm_unlink(("/" + std::string(e->d_name)).c_str());
    }
  }
  closedir(d);
}

}  // namespace mp::fuzz

#endif  // MP_FUZZ_QUEUE_STATUS_H_
