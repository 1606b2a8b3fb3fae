// mp/queue/connection.h
// -----------------------------------------------------------------------------
// Pipe() and Connection: multiprocessing.Pipe over a Unix stream socket pair.
//
//   auto [parent, child] = mp::Pipe();          // duplex
//   mp::Process p([child]() mutable { MP_CHECK_OK(child.Send(42)); });
//   MP_CHECK_OK(p.Start());
//   absl::StatusOr<int> v = parent.Recv<int>();  // 42
//
//   auto [reader, writer] = mp::Pipe(false);    // one way, as in Python
//
// Framing: each message is a 4-byte length then its bytes (Codec<T>, see
// codec.h, for Send/Recv). A Connection is a handle: copies share the same
// descriptors (and a fork()ed child inherits them); Close() closes them in
// this process for every copy. Use one Connection end from one thread or
// process at a time (as in Python: no lock).
//
// Status codes: OutOfRange at end of file (the peer closed: Python's
// EOFError); DataLoss for a frame cut short or a message that does not
// decode; ResourceExhausted from RecvBytesInto when the message is larger
// than the buffer: the message is kept and the status names its size, so a
// retry with a larger buffer gets it (never truncated silently);
// FailedPrecondition on a closed handle or a send to a peer that is gone, or
// in the wrong direction of a one-way pipe.

#ifndef MP_QUEUE_CONNECTION_H_
#define MP_QUEUE_CONNECTION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "mp/core/futex.h"
#include "mp/queue/codec.h"

namespace mp {

class Connection {
 public:
  Connection() = default;

  // Sends one message of raw bytes. Blocks while the socket buffer is full.
  absl::Status SendBytes(absl::Span<const char> bytes);
  absl::Status SendBytes(const std::string& bytes) {
    return SendBytes(absl::Span<const char>(bytes.data(), bytes.size()));
  }
  // Receives one whole message (blocks until it arrives).
  absl::StatusOr<std::string> RecvBytes();
  // Receives one message into `buffer` and returns its size, or
  // ResourceExhausted ("message of N bytes does not fit in M") leaving the
  // message pending for the next receive.
  absl::StatusOr<size_t> RecvBytesInto(absl::Span<char> buffer);

  template <class T>
  absl::Status Send(const T& value) {
    std::string buf;
    EncodeMessage(value, &buf);
    return SendBytes(buf);
  }
  template <class T>
  absl::StatusOr<T> Recv() {
    absl::StatusOr<std::string> bytes = RecvBytes();
    if (!bytes.ok()) return bytes.status();
    T value{};
    absl::Status s = DecodeMessage(bytes->data(), bytes->size(), &value);
    if (!s.ok()) return s;
    return value;
  }

  // Whether a message (or end of file) can be received without blocking,
  // waiting until `timeout` seconds (0: no wait; nullopt: forever).
  bool Poll(std::optional<double> timeout = 0.0);
  bool Poll(Deadline deadline);

  // Closes this process's descriptors (for every copy of this handle).
  void Close();
  bool closed() const;
  bool readable() const;
  bool writable() const;
  int fileno() const;

 private:
  friend std::pair<Connection, Connection> Pipe(bool duplex);
  struct State;
  explicit Connection(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

// A connected pair. duplex: both ends send and receive. One-way (duplex =
// false): returns (reader, writer), as Python does. Aborts (std::bad_alloc)
// if the system has no descriptors left.
std::pair<Connection, Connection> Pipe(bool duplex = true);

}  // namespace mp

#endif  // MP_QUEUE_CONNECTION_H_
