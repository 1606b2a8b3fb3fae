#include "mp/queue/connection.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "mp/core/error.h"
#include "mp/queue/pipe_queue.h"

namespace mp {

struct Connection::State {
  int fd = -1;
  bool can_read = false;
  bool can_write = false;
  std::optional<std::string> pending;  // a message too large for the caller
  ~State() {
    if (fd >= 0) close(fd);
  }
};

namespace {

std::string Errno(const char* what, int err) {
  return absl::StrCat(what, ": ", std::strerror(err));
}

absl::Status WriteAll(int fd, const char* p, size_t n, bool socket) {
  while (n > 0) {
    ssize_t w = socket ? send(fd, p, n, MSG_NOSIGNAL) : write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EPIPE || errno == ECONNRESET) {
        return absl::AbortedError("peer has closed the connection");
      }
      return absl::InternalError(Errno("write", errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return absl::OkStatus();
}

// Reads exactly n bytes. OutOfRange on EOF before the first byte when
// `eof_ok`, DataLoss on EOF in the middle.
absl::Status ReadAll(int fd, char* p, size_t n, bool eof_ok) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == ECONNRESET) {
        // The peer closed with bytes of ours unread: it is gone, as at EOF.
        if (got == 0 && eof_ok) {
          return absl::OutOfRangeError("end of file (connection reset)");
        }
        return absl::DataLossError("connection: message cut short (reset)");
      }
      return absl::InternalError(Errno("read", errno));
    }
    if (r == 0) {
      if (got == 0 && eof_ok) return absl::OutOfRangeError("end of file");
      return absl::DataLossError("connection: message cut short");
    }
    got += static_cast<size_t>(r);
  }
  return absl::OkStatus();
}

}  // namespace

namespace queue_internal {

absl::Status WriteFrame(int fd, const char* data, size_t n, bool socket) {
  if (n >= kEndOfStream) {
    return absl::InvalidArgumentError("message too large for a frame");
  }
  uint32_t len = static_cast<uint32_t>(n);
  if (absl::Status s = WriteAll(fd, reinterpret_cast<const char*>(&len),
                                sizeof(len), socket);
      !s.ok()) {
    return s;
  }
  return WriteAll(fd, data, n, socket);
}

absl::Status WriteEndOfStream(int fd) {
  uint32_t len = kEndOfStream;
  return WriteAll(fd, reinterpret_cast<const char*>(&len), sizeof(len), false);
}

absl::StatusOr<uint32_t> ReadFrameLength(int fd) {
  uint32_t len = 0;
  if (absl::Status s = ReadAll(fd, reinterpret_cast<char*>(&len), sizeof(len),
                               /*eof_ok=*/true);
      !s.ok()) {
    return s;
  }
  return len;
}

absl::Status ReadFrameBody(int fd, std::string* out, uint32_t len) {
  // The length is the peer's word: grow the buffer as bytes arrive (in
  // chunks that double, so copying stays linear) instead of allocating it
  // up front, or a peer that announces 4 GiB and hangs up costs 4 GiB.
  constexpr size_t kFirstChunk = 64 * 1024;
  out->clear();
  size_t got = 0;
  while (got < len) {
    const size_t chunk =
        std::min<size_t>(len - got, std::max(kFirstChunk, got));
    out->resize(got + chunk);
    if (absl::Status s =
            ReadAll(fd, out->data() + got, chunk, /*eof_ok=*/false);
        !s.ok()) {
      return s;
    }
    got += chunk;
  }
  return absl::OkStatus();
}

bool PollReadable(int fd, Deadline deadline) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, deadline.PollMillis());
    if (r < 0 && errno == EINTR) continue;
    if (r > 0) return true;
    if (r == 0 && !deadline.Expired() && !deadline.infinite()) continue;
    return false;
  }
}

}  // namespace queue_internal

absl::StatusOr<std::pair<Connection, Connection>> MakePipe(bool duplex) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    const int err = errno;
    std::string msg = Errno("socketpair", err);
    if (err == EMFILE || err == ENFILE || err == ENOMEM || err == ENOBUFS) {
      return absl::ResourceExhaustedError(msg);
    }
    return absl::InternalError(msg);
  }
  auto a = std::make_shared<Connection::State>();
  auto b = std::make_shared<Connection::State>();
  a->fd = fds[0];
  b->fd = fds[1];
  if (duplex) {
    a->can_read = a->can_write = b->can_read = b->can_write = true;
  } else {
    a->can_read = true;   // reader
    b->can_write = true;  // writer
    shutdown(fds[0], SHUT_WR);
    shutdown(fds[1], SHUT_RD);
  }
  return std::pair<Connection, Connection>(Connection(a), Connection(b));
}

std::pair<Connection, Connection> Pipe(bool duplex) {
  return ValueOrThrow(MakePipe(duplex));
}

absl::Status Connection::SendBytes(absl::Span<const char> bytes) {
  if (!state_ || state_->fd < 0) {
    return absl::FailedPreconditionError("connection is closed");
  }
  if (!state_->can_write) {
    return absl::InvalidArgumentError("connection is read-only");
  }
  return queue_internal::WriteFrame(state_->fd, bytes.data(), bytes.size(),
                                    /*socket=*/true);
}

absl::StatusOr<std::string> Connection::RecvBytes() {
  if (!state_ || state_->fd < 0) {
    return absl::FailedPreconditionError("connection is closed");
  }
  if (!state_->can_read) {
    return absl::InvalidArgumentError("connection is write-only");
  }
  if (state_->pending) {
    std::string out = std::move(*state_->pending);
    state_->pending.reset();
    return out;
  }
  absl::StatusOr<uint32_t> len = queue_internal::ReadFrameLength(state_->fd);
  if (!len.ok()) return len.status();
  std::string out;
  if (absl::Status s = queue_internal::ReadFrameBody(state_->fd, &out, *len);
      !s.ok()) {
    return s;
  }
  return out;
}

absl::StatusOr<size_t> Connection::RecvBytesInto(absl::Span<char> buffer) {
  absl::StatusOr<std::string> msg = RecvBytes();
  if (!msg.ok()) return msg.status();
  if (msg->size() > buffer.size()) {
    size_t need = msg->size();
    state_->pending = *std::move(msg);
    return absl::ResourceExhaustedError(
        absl::StrCat("message of ", need, " bytes does not fit in a buffer of ",
                     buffer.size(), " bytes"));
  }
  if (!msg->empty()) std::memcpy(buffer.data(), msg->data(), msg->size());
  return msg->size();
}

absl::StatusOr<bool> Connection::Poll(Deadline deadline) {
  if (!state_ || state_->fd < 0) {
    return absl::FailedPreconditionError("connection is closed");
  }
  if (!state_->can_read) {
    return absl::InvalidArgumentError("connection is write-only");
  }
  if (state_->pending) return true;
  return queue_internal::PollReadable(state_->fd, deadline);
}

void Connection::Close() {
  if (state_ && state_->fd >= 0) {
    close(state_->fd);
    state_->fd = -1;
  }
}

bool Connection::closed() const { return !state_ || state_->fd < 0; }
bool Connection::readable() const { return state_ && state_->can_read; }
bool Connection::writable() const { return state_ && state_->can_write; }
int Connection::fileno() const { return state_ ? state_->fd : -1; }

}  // namespace mp
