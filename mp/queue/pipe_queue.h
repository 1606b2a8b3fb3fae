// mp/queue/pipe_queue.h
// -----------------------------------------------------------------------------
// PipeQueue<T>: Queue<T>'s interface over a kernel pipe, the way CPython's
// multiprocessing.Queue moves bytes (minus its feeder thread). Kept as the
// baseline the benchmarks compare the ring against; prefer Queue<T>.
//
// Framing: a 4-byte length, then the encoded message. Writers serialise on a
// PidLock in shared memory so frames never interleave, readers likewise so a
// frame is read whole by one reader; a lock whose holder died is taken over
// (see internal/ring.h), but a writer killed mid-frame leaves the pipe's
// stream cut (the next reader gets DataLoss): the pipe has no way to skip.
//
// Status codes as for Queue<T> (queue.h), with these differences: Put always
// blocks while the pipe is full (no Full); any message size is accepted.
// Close() sends an end-of-stream frame that every reader sees after the
// messages before it (each reader passes it on). The constructor throws
// mp::Error when it cannot get its shared memory or its pipe; Create()
// returns that status instead.

#ifndef MP_QUEUE_PIPE_QUEUE_H_
#define MP_QUEUE_PIPE_QUEUE_H_

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/error.h"
#include "mp/core/futex.h"
#include "mp/core/shared_memory.h"
#include "mp/queue/codec.h"
#include "mp/queue/internal/ring.h"

namespace mp {

namespace queue_internal {

absl::Status WriteFrame(int fd, const char* data, size_t n, bool socket);
absl::StatusOr<uint32_t> ReadFrameLength(int fd);
// Reads `len` bytes into `out`; DataLoss if the stream ends first. Memory
// grows with the bytes that arrive, not with the length announced.
absl::Status ReadFrameBody(int fd, std::string* out, uint32_t len);
bool PollReadable(int fd, Deadline deadline);
absl::Status WriteEndOfStream(int fd);

inline constexpr uint32_t kEndOfStream = 0xffffffffu;

// Resident: the two locks and the closed flag of a PipeQueue.
struct PipeQueueShared {
  alignas(kCacheLine) PidLock writers;
  alignas(kCacheLine) PidLock readers;
  alignas(kCacheLine) std::atomic<uint32_t> closed{0};
};
static_assert(std::is_standard_layout_v<PipeQueueShared>);

struct PipeFds {
  int fds[2] = {-1, -1};
  PipeFds() = default;
  PipeFds(const PipeFds&) = delete;
  PipeFds& operator=(const PipeFds&) = delete;
  ~PipeFds() {
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
  }
  // A fresh pipe: ResourceExhausted when no descriptors are left, Internal
  // for any other failure of pipe2(2).
  static absl::StatusOr<std::shared_ptr<PipeFds>> Make() {
    auto p = std::make_shared<PipeFds>();
    if (pipe2(p->fds, O_CLOEXEC) != 0) {
      const int err = errno;
      std::string msg = std::string("pipe2: ") + std::strerror(err);
      if (err == EMFILE || err == ENFILE) {
        return absl::ResourceExhaustedError(msg);
      }
      return absl::InternalError(msg);
    }
    return p;
  }
};

}  // namespace queue_internal

template <class T>
class PipeQueue {
 public:
  // Throws mp::Error (ResourceExhausted: no shared memory or descriptors
  // left; Internal otherwise); Create returns the status instead.
  PipeQueue() : PipeQueue(ValueOrThrow(Create())) {}
  static absl::StatusOr<PipeQueue> Create() {
    auto shared = Shared<queue_internal::PipeQueueShared>::Create();
    if (!shared.ok()) return shared.status();
    auto fds = queue_internal::PipeFds::Make();
    if (!fds.ok()) return fds.status();
    return PipeQueue(*std::move(shared), *std::move(fds));
  }

  // Blocks until the whole frame is written. FailedPrecondition after Close.
  absl::Status Put(const T& value) {
    if (shared_->closed.load(std::memory_order_acquire)) {
      return absl::FailedPreconditionError("queue is closed");
    }
    std::string buf;
    EncodeMessage(value, &buf);
    shared_->writers.Lock(Deadline::Infinite());
    absl::Status s = queue_internal::WriteFrame(fds_->fds[1], buf.data(),
                                                buf.size(), false);
    shared_->writers.Unlock();
    return s;
  }

  // DeadlineExceeded when nothing arrives by the timeout; OutOfRange after
  // Close once drained; DataLoss for a cut or undecodable frame. The
  // Deadline and duration forms, and Python's get(block, timeout).
  absl::StatusOr<T> Get(bool block = true,
                        std::optional<double> timeout_seconds = std::nullopt) {
    return Get(Deadline::FromPython(block, timeout_seconds));
  }
  template <class Rep, class Period>
  absl::StatusOr<T> Get(std::chrono::duration<Rep, Period> timeout) {
    return Get(Deadline::After(timeout));
  }
  absl::StatusOr<T> Get(Deadline deadline) {
    if (shared_->readers.Lock(deadline) == queue_internal::PidLock::Acquired::kNo) {
      return absl::DeadlineExceededError("queue is empty");
    }
    absl::StatusOr<T> out = GetLocked(deadline);
    shared_->readers.Unlock();
    return out;
  }

  // Ends the stream for every reader.
  void Close() {
    if (shared_->closed.exchange(1)) return;
    shared_->writers.Lock(Deadline::Infinite());
    queue_internal::WriteEndOfStream(fds_->fds[1]).IgnoreError();
    shared_->writers.Unlock();
  }
  void JoinThread() {}

 private:
  absl::StatusOr<T> GetLocked(Deadline deadline) {
    if (!queue_internal::PollReadable(fds_->fds[0], deadline)) {
      return absl::DeadlineExceededError("queue is empty");
    }
    absl::StatusOr<uint32_t> len = queue_internal::ReadFrameLength(fds_->fds[0]);
    if (!len.ok()) return len.status();
    if (*len == queue_internal::kEndOfStream) {
      // Pass the marker on to the next reader.
      shared_->writers.Lock(Deadline::Infinite());
      queue_internal::WriteEndOfStream(fds_->fds[1]).IgnoreError();
      shared_->writers.Unlock();
      return absl::OutOfRangeError("queue is closed");
    }
    std::string buf;
    if (absl::Status s = queue_internal::ReadFrameBody(fds_->fds[0], &buf, *len);
        !s.ok()) {
      return s;
    }
    T value{};
    if (absl::Status s = DecodeMessage(buf.data(), buf.size(), &value);
        !s.ok()) {
      return s;
    }
    return value;
  }

  PipeQueue(Shared<queue_internal::PipeQueueShared> shared,
            std::shared_ptr<queue_internal::PipeFds> fds)
      : shared_(std::move(shared)), fds_(std::move(fds)) {}

  Shared<queue_internal::PipeQueueShared> shared_;
  std::shared_ptr<queue_internal::PipeFds> fds_;
};

}  // namespace mp

#endif  // MP_QUEUE_PIPE_QUEUE_H_
