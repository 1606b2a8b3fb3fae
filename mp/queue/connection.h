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
//   absl::StatusOr<bool> ready = reader.Poll(0.5);  // seconds, as Python
//
// Framing: each message is a 4-byte length then its bytes (Codec<T>, see
// codec.h, for Send/Recv). A Connection is a handle: copies share the same
// descriptors (and a fork()ed child inherits them); Close() closes them in
// this process for every copy. Use one Connection end from one thread or
// process at a time (as in Python: no lock).
//
// Timeouts (README "Timeouts"): Poll takes an mp::Deadline, a std::chrono
// duration, or Python's seconds (default 0: no wait; nullopt: forever).
// Send and Recv block without a deadline, as Python's do: Poll first.
//
// Status codes, one per cause (Python's exception in brackets):
//
//   | cause                              | code               | calls        |
//   |------------------------------------|--------------------|--------------|
//   | this end closed [OSError "handle   | FailedPrecondition | Send*, Recv*,|
//   |   is closed"]                      | "connection is     | Poll         |
//   |                                    | closed"            |              |
//   | wrong direction of a one-way pipe  | InvalidArgument    | Send* on the |
//   |   [OSError "connection is          | "connection is     | reader, Recv*|
//   |   read-only" / "write-only"]       | read-only/write-   | and Poll on  |
//   |                                    | only"              | the writer   |
//   | peer gone, receiving [EOFError]    | OutOfRange         | Recv*        |
//   | peer gone, sending [BrokenPipe-    | Aborted "peer has  | Send*        |
//   |   Error]                           | closed the         |              |
//   |                                    | connection"        |              |
//   | frame cut short, or undecodable    | DataLoss           | Recv*        |
//   | message larger than the buffer     | ResourceExhausted  | RecvBytesInto|
//   |   (kept for the next receive)      | (names its size)   |              |
//   | message of 4 GiB or more           | InvalidArgument    | Send*        |
//   | no descriptors left                | ResourceExhausted  | MakePipe     |
//   | any other system error             | Internal           | all          |
//
// Poll answers "no data yet" with false, never with a status: its errors
// are the closed and wrong-direction ones above. No call here times out
// with DeadlineExceeded: Poll's timeout is its false.
//
// Why these codes: closing is a state of this handle (FailedPrecondition,
// as a closed queue); the direction never changes, so a call in the wrong
// one is wrong whatever the state (InvalidArgument, retrying cannot help);
// a vanished peer on receive is the end of the stream (OutOfRange, as
// queues report a closed, drained queue); on send the pipe is broken for
// good, not the caller's misuse (Aborted, as a broken Barrier).

#ifndef MP_QUEUE_CONNECTION_H_
#define MP_QUEUE_CONNECTION_H_

#include <chrono>
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
  // waiting until the deadline: true / false. FailedPrecondition on a
  // closed end, InvalidArgument on a write-only end (Python raises).
  absl::StatusOr<bool> Poll(Deadline deadline);
  template <class Rep, class Period>
  absl::StatusOr<bool> Poll(std::chrono::duration<Rep, Period> timeout) {
    return Poll(Deadline::After(timeout));
  }
  // Python's poll(timeout=0): seconds; 0 (the default) does not wait,
  // nullopt (None) waits forever.
  absl::StatusOr<bool> Poll(std::optional<double> timeout_seconds = 0.0) {
    return Poll(Deadline::FromPython(timeout_seconds));
  }

  // Closes this process's descriptors (for every copy of this handle).
  // Closing a closed end does nothing.
  void Close();
  bool closed() const;
  bool readable() const;
  bool writable() const;
  // The descriptor; -1 once closed.
  int fileno() const;

 private:
  friend absl::StatusOr<std::pair<Connection, Connection>> MakePipe(
      bool duplex);
  struct State;
  explicit Connection(std::shared_ptr<State> s) : state_(std::move(s)) {}
  std::shared_ptr<State> state_;
};

// A connected pair. duplex: both ends send and receive. One-way (duplex =
// false): returns (reader, writer), as Python does. ResourceExhausted when
// the process or system has no descriptors left, Internal for any other
// failure of socketpair(2).
absl::StatusOr<std::pair<Connection, Connection>> MakePipe(bool duplex = true);
// Python's Pipe(duplex=True): MakePipe, throwing mp::Error with its status.
std::pair<Connection, Connection> Pipe(bool duplex = true);

}  // namespace mp

#endif  // MP_QUEUE_CONNECTION_H_
