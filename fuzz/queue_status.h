// fuzz/queue_status.h: what a queue operation may answer on a segment that
// another process may have rewritten (ring_fuzz, open_fuzz): any status but
// these is a bug, as is a crash.

#ifndef MP_FUZZ_QUEUE_STATUS_H_
#define MP_FUZZ_QUEUE_STATUS_H_

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

}  // namespace mp::fuzz

#endif  // MP_FUZZ_QUEUE_STATUS_H_
