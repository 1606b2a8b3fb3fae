// fuzz/frame_fuzz.cc
// -----------------------------------------------------------------------------
// The framing of Pipe/Connection and PipeQueue, over bytes a peer wrote. The
// input is the byte stream: it is written to a socket pair (Connection) and
// to a pipe (the frame reader PipeQueue uses), the writer closes, and the
// reader receives until the stream ends. A small reference parser says what
// the stream holds (4-byte little-endian length, then that many bytes), and
// the library must agree with it exactly:
//
//  * Connection::RecvBytes / RecvBytesInto / Recv<std::string> return the
//    same messages in order; a message longer than the caller's buffer is
//    ResourceExhausted and stays pending, whole, for the next receive; the
//    stream ends with OutOfRange at a frame boundary, DataLoss when cut.
//  * queue_internal::ReadFrameLength / ReadFrameBody read the same frames
//    from a pipe, with PipeQueue's end-of-stream marker ending them.
//  * Memory follows the bytes that arrive, not the length a peer announces:
//    a 4 GiB length followed by ten bytes must not allocate 4 GiB.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "fuzz/fuzz_util.h"
#include "mp/core/futex.h"
#include "mp/queue/codec.h"
#include "mp/queue/connection.h"
#include "mp/queue/pipe_queue.h"

namespace {

using mp::fuzz::AlignedBytes;

// Well under a socket pair's or a pipe's buffer, so one non-blocking write
// takes it all and no reader thread is needed.
constexpr size_t kMaxStream = 32 * 1024;

enum class End { kEof, kCut, kEndOfStream };

struct Parsed {
  std::vector<std::string> messages;
  End end;
};

// The reference: what the stream holds. `eos` honours PipeQueue's marker.
Parsed Parse(const char* p, size_t n, bool eos) {
  Parsed out;
  size_t at = 0;
  for (;;) {
    if (at == n) {
      out.end = End::kEof;
      return out;
    }
    if (n - at < 4) {
      out.end = End::kCut;
      return out;
    }
    uint32_t len;
    std::memcpy(&len, p + at, 4);
    at += 4;
    if (eos && len == mp::queue_internal::kEndOfStream) {
      out.end = End::kEndOfStream;
      return out;
    }
    if (n - at < len) {
      out.end = End::kCut;
      return out;
    }
    out.messages.emplace_back(p + at, len);
    at += len;
  }
}

// Writes all of [p, p + n) to `fd` at once, then closes it.
void WriteAndClose(int fd, const char* p, size_t n) {
  if (n != 0) {
    FUZZ_CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
    ssize_t w = write(fd, p, n);
    FUZZ_CHECK(w == static_cast<ssize_t>(n));
  }
  FUZZ_CHECK(close(fd) == 0);
}

void CheckEnd(const absl::Status& s, End end) {
  if (end == End::kEof) {
    FUZZ_CHECK(s.code() == absl::StatusCode::kOutOfRange);
  } else {
    FUZZ_CHECK(s.code() == absl::StatusCode::kDataLoss);
  }
}

void OverConnection(const char* p, size_t n, uint8_t mode) {
  const Parsed want = Parse(p, n, /*eos=*/false);
  auto [reader, writer] = mp::Pipe();
  WriteAndClose(dup(writer.fileno()), p, n);
  writer.Close();

  std::vector<char> small(mode % 24);
  size_t next = 0;
  for (;;) {
    absl::StatusOr<bool> ready = reader.Poll(mp::Deadline::Past());
    FUZZ_CHECK(ready.ok() && *ready);  // a message or the end
    absl::Status status;
    std::string got;
    switch ((mode / 24 + next) % 3) {
      case 0: {
        absl::StatusOr<std::string> m = reader.RecvBytes();
        status = m.status();
        if (m.ok()) got = *std::move(m);
        break;
      }
      case 1: {
        absl::StatusOr<size_t> k =
            reader.RecvBytesInto(absl::Span<char>(small.data(), small.size()));
        status = k.status();
        if (k.ok()) {
          got.assign(small.data(), *k);
        } else if (k.status().code() == absl::StatusCode::kResourceExhausted) {
          // Too large for the buffer: still whole for the next receive.
          FUZZ_CHECK(next < want.messages.size());
          FUZZ_CHECK(want.messages[next].size() > small.size());
          absl::StatusOr<std::string> m = reader.RecvBytes();
          FUZZ_CHECK(m.ok());
          status = absl::OkStatus();
          got = *std::move(m);
        }
        break;
      }
      case 2: {
        // A std::string message is its own 8-byte length and bytes.
        absl::StatusOr<std::string> m = reader.Recv<std::string>();
        if (next < want.messages.size()) {
          const std::string& raw = want.messages[next];
          std::string decoded;
          const bool ok =
              mp::DecodeMessage(raw.data(), raw.size(), &decoded).ok();
          FUZZ_CHECK(m.ok() == ok);
          if (!ok) {
            FUZZ_CHECK(m.status().code() == absl::StatusCode::kDataLoss);
          } else {
            FUZZ_CHECK(*m == decoded);
          }
          ++next;
          continue;
        }
        status = m.status();
        break;
      }
    }
    if (next < want.messages.size()) {
      FUZZ_CHECK(status.ok());
      FUZZ_CHECK(got == want.messages[next]);
      ++next;
      continue;
    }
    FUZZ_CHECK(!status.ok());
    CheckEnd(status, want.end);
    break;
  }
  // The end stays the end.
  FUZZ_CHECK(!reader.RecvBytes().ok());
}

void OverPipe(const char* p, size_t n) {
  const Parsed want = Parse(p, n, /*eos=*/true);
  int fds[2];
  FUZZ_CHECK(pipe2(fds, O_CLOEXEC) == 0);
  WriteAndClose(fds[1], p, n);
  size_t next = 0;
  for (;;) {
    absl::StatusOr<uint32_t> len = mp::queue_internal::ReadFrameLength(fds[0]);
    if (!len.ok()) {
      FUZZ_CHECK(next == want.messages.size());
      CheckEnd(len.status(), want.end);
      break;
    }
    if (*len == mp::queue_internal::kEndOfStream) {
      FUZZ_CHECK(next == want.messages.size());
      FUZZ_CHECK(want.end == End::kEndOfStream);
      break;
    }
    std::string body;
    absl::Status s = mp::queue_internal::ReadFrameBody(fds[0], &body, *len);
    if (!s.ok()) {
      FUZZ_CHECK(next == want.messages.size());
      FUZZ_CHECK(want.end == End::kCut);
      FUZZ_CHECK(s.code() == absl::StatusCode::kDataLoss);
      // What the reader holds follows what arrived (at most n bytes), with
      // room for one read-ahead chunk, whatever length was announced.
      FUZZ_CHECK(body.capacity() <= 4 * (n + 64 * 1024));
      break;
    }
    FUZZ_CHECK(next < want.messages.size());
    FUZZ_CHECK(body == want.messages[next]);
    ++next;
  }
  close(fds[0]);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0];
  const size_t n = size - 1 < kMaxStream ? size - 1 : kMaxStream;
  AlignedBytes stream(data + 1, n, n, 1);
  OverPipe(stream.data(), n);
  OverConnection(stream.data(), n, mode);
  return 0;
}
