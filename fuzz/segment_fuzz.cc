// fuzz/segment_fuzz.cc
// -----------------------------------------------------------------------------
// The input is a whole file another process left in /dev/shm: perhaps a named
// mp segment (common header, then a ring or a sync object), perhaps anything
// else. mpctl's readers must report it, never follow it. Properties:
//
//  * ReadSegmentHeader, over a block of exactly the input's size, accepts it
//    or says DataLoss, and an accepted header fits the input.
//  * DescribeRing over the bytes after the header (a block of exactly those
//    bytes) is OK or DataLoss; an OK snapshot's derived figures are within
//    what its own valid fields allow (bytes queued <= capacity, records
//    queued <= bytes / 8), however the fields were set.
//  * DescribeSyncState, for the kind and state size the header names, is OK,
//    InvalidArgument or DataLoss.
//  * The input written to a file in a scratch directory: mpctl's
//    DescribeSegment and Inspect (pread, O_NOFOLLOW, no mapping) give a
//    verdict, never crash, and their JSON and text renderings are built
//    (the JSON holds no raw control character).
// A fixture /proc (an empty directory) keeps each run from scanning the
// machine's processes.

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "fuzz/fuzz_util.h"
#include "mp/core/segment_header.h"
#include "mp/queue/internal/ring_snapshot.h"
#include "mp/sync/internal/snapshot.h"
#include "tools/mpctl/report.h"
#include "tools/mpctl/segments.h"

namespace {

using mp::fuzz::AlignedBytes;

struct Scratch {
  std::string dir;
  std::string proc;
  std::string file;
  Scratch() {
    const char* base = std::getenv("TEST_TMPDIR");
    // Named after the pid, so tools/fuzz can remove it after a crash.
    dir = std::string(base != nullptr ? base : "/tmp") + "/mp-segment-fuzz-" +
          std::to_string(getpid());
    proc = dir + "/proc";
    file = dir + "/seg";
    unlink(file.c_str());  // left by an earlier process of the same pid
    rmdir(proc.c_str());
    rmdir(dir.c_str());
    FUZZ_CHECK(mkdir(dir.c_str(), 0700) == 0);
    FUZZ_CHECK(mkdir(proc.c_str(), 0700) == 0);
    atexit([] {
      Scratch& s = Get();
      unlink(s.file.c_str());
      rmdir(s.proc.c_str());
      rmdir(s.dir.c_str());
    });
  }
  static Scratch& Get() {
    static Scratch* s = new Scratch();
    return *s;
  }
};

void CheckNoControl(const std::string& json) {
  for (char c : json) {
    FUZZ_CHECK(c == '\n' || static_cast<unsigned char>(c) >= 0x20);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kHeader = mp::SegmentHeader::kSize;
  AlignedBytes all(data, size, size, 8);
  absl::StatusOr<mp::SegmentHeader> h = mp::ReadSegmentHeader(all.data(), size);
  if (!h.ok()) {
    FUZZ_CHECK(h.status().code() == absl::StatusCode::kDataLoss);
  } else {
    FUZZ_CHECK(h->header_size == kHeader);
    FUZZ_CHECK(h->data_bytes <= size - kHeader);
  }

  if (size >= kHeader) {
    const size_t n = size - kHeader;
    AlignedBytes ring(data + kHeader, n, n, 8);
    absl::StatusOr<mp::queue_internal::RingSnapshot> r =
        mp::queue_internal::DescribeRing(ring.data(), n, n);
    if (!r.ok()) {
      FUZZ_CHECK(r.status().code() == absl::StatusCode::kDataLoss);
    } else {
      if (r->indices_valid) {
        FUZZ_CHECK(r->capacity_valid);
        FUZZ_CHECK(r->bytes_used <= r->capacity);
        FUZZ_CHECK(r->bytes_used == r->tail - r->head);
      } else {
        FUZZ_CHECK(r->bytes_used == 0);
        FUZZ_CHECK(!r->problems.empty());
      }
      if (r->counts_valid && r->indices_valid) {
        FUZZ_CHECK(r->records_queued <= r->bytes_used / 8);
      }
      FUZZ_CHECK(r->task_slots.size() <= 32);
    }
    if (h.ok()) {
      absl::StatusOr<mp::sync_internal::SyncSnapshot> s =
          mp::sync_internal::DescribeSyncState(h->kind, h->type_size,
                                               ring.data(), n);
      if (!s.ok()) {
        FUZZ_CHECK(s.status().code() == absl::StatusCode::kInvalidArgument ||
                   s.status().code() == absl::StatusCode::kDataLoss);
      }
    }
  }

  // The whole path mpctl takes, from a file.
  Scratch& scratch = Scratch::Get();
  const int fd = open(scratch.file.c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0);
  size_t done = 0;
  while (done < size) {
    const ssize_t w = write(fd, data + done, size - done);
    FUZZ_CHECK(w > 0);
    done += static_cast<size_t>(w);
  }
  close(fd);
  mpctl::Options options;
  options.dir = scratch.dir;
  options.proc_root = scratch.proc;
  absl::StatusOr<mpctl::SegmentInfo> info =
      mpctl::DescribeSegment(options, "seg", mpctl::ScanProcesses(options));
  FUZZ_CHECK(info.ok());
  FUZZ_CHECK(info->file_size == size);
  FUZZ_CHECK(info->holders.empty());
  FUZZ_CHECK(info->verdict != mpctl::Verdict::kInUse &&
             info->verdict != mpctl::Verdict::kSkipped);
  FUZZ_CHECK((info->verdict == mpctl::Verdict::kStale) ==
             (h.ok() && info->problem.empty()));
  absl::StatusOr<mpctl::Inspection> in = mpctl::Inspect(options, "seg");
  FUZZ_CHECK(in.ok());
  FUZZ_CHECK(in->info.verdict == info->verdict);
  CheckNoControl(mpctl::InspectionJson(*in).substr(0));
  (void)mpctl::InspectionText(*in);
  return 0;
}
