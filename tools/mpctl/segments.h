// tools/mpctl/segments.h
// -----------------------------------------------------------------------------
// What mpctl knows about the files of a shared-memory directory (/dev/shm):
// which are mp segments (mp/core/segment_header.h), who made them and whether
// that process still lives, which live processes map them or hold them open,
// and what can safely be removed. Every function takes the directory and the
// /proc root, so tests run it over fixtures.
//
//   mpctl::Options o;                       // /dev/shm, /proc
//   absl::StatusOr<mpctl::Listing> l = mpctl::ListSegments(o);
//   for (const mpctl::SegmentInfo& s : l->segments) ... s.verdict ...
//
// Reading never trusts a file and never writes to one: a name is opened
// O_RDONLY | O_NOFOLLOW | O_NONBLOCK relative to the directory, only a
// regular file is read (a symlink, FIFO, socket, device or directory is
// listed as kSkipped and never opened for reading), and only with pread into
// a private buffer of a bounded size (the 64-byte header for a listing; the
// header and the object's own fields for Inspect). Nothing is ever mapped.
//
// Verdicts (SegmentInfo::verdict):
//   kInUse    a live process maps the file or holds it open
//   kStale    an mp segment with a valid header that no process maps or holds
//   kForeign  a regular file without mp's magic (not mp's)
//   kCorrupt  mp's magic, but the header is invalid (ReadSegmentHeader says
//             DataLoss) or disagrees with the file's size or with its kind's
//             layout
//   kSkipped  not a regular file
// A foreign or corrupt file is reported as such even when in use; its
// holders are still listed, and removal still refuses it while held.
//
// Holders: every /proc/<pid> whose maps name the file (same inode, and the
// same device or the same path) or whose fd/ links resolve to it (same
// device and inode). A process whose maps or fd/ cannot be read is counted
// in Listing::unreadable_pids (not guessed). Zombies map nothing and hold
// nothing: a killed, unreaped holder is no holder.
//
// Liveness (creator, lock holders, queue side owners) reads
// <proc_root>/<pid>/stat: dead when it is gone, a zombie (Z) or dead (X), or
// started at another time than recorded (a recycled pid).

#ifndef MP_TOOLS_MPCTL_SEGMENTS_H_
#define MP_TOOLS_MPCTL_SEGMENTS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/segment_header.h"
#include "mp/queue/internal/ring_snapshot.h"
#include "mp/sync/internal/snapshot.h"

namespace mpctl {

struct Options {
  std::string dir = "/dev/shm";
  std::string proc_root = "/proc";
  // A process never counted as a holder (mpctl itself); 0: none.
  pid_t exclude_pid = 0;
};

enum class Verdict { kInUse, kStale, kForeign, kCorrupt, kSkipped };
// "in-use", "stale", "foreign", "corrupt", "skipped".
const char* VerdictName(Verdict v);

enum class Liveness { kAlive, kDead, kUnknown };
// "alive", "dead", "unknown".
const char* LivenessName(Liveness l);

// Whether the task `tid` runs, as <proc_root>/<tid>/stat says: kDead when
// missing, a zombie or dead, or when its start time (field 22), masked with
// `start_mask`, is not `start` (start 0: not compared); kUnknown for tid 0
// or a stat file that cannot be parsed.
Liveness TaskLiveness(const std::string& proc_root, uint32_t tid,
                      uint64_t start = 0, uint64_t start_mask = ~uint64_t{0});

struct Holder {
  uint32_t pid = 0;
  std::string comm;       // /proc/<pid>/comm
  bool maps = false;      // the file is in its maps
  bool open_fd = false;   // one of its fds is the file
};

// Who maps or holds what: one pass over <proc_root>.
struct ProcScan {
  struct Hit {
    uint64_t dev = 0;
    uint64_t ino = 0;
    std::string path;  // as the kernel printed it, " (deleted)" stripped
    size_t holder = 0;  // index into holders
  };
  std::vector<Holder> holders;
  std::multimap<uint64_t, Hit> by_inode;
  std::vector<uint32_t> unreadable_pids;
  size_t processes = 0;

  // The holders of the file (dev, ino) at `path`.
  std::vector<Holder> HoldersOf(uint64_t dev, uint64_t ino,
                                const std::string& path) const;
};
ProcScan ScanProcesses(const Options& options);

struct SegmentInfo {
  std::string name;       // the file name in the directory
  std::string path;       // dir + "/" + name
  std::string file_type;  // "regular", "symlink", "fifo", "socket",
                          // "char-device", "block-device", "directory"
  uint64_t file_size = 0;
  uint64_t dev = 0;
  uint64_t ino = 0;
  bool has_magic = false;
  std::optional<mp::SegmentHeader> header;  // set when ReadSegmentHeader
                                            // accepted it (kind/size
                                            // checks may still fail)
  std::string kind;       // "queue SPSC", "lock", "rlock", ... or "-"
  Liveness creator = Liveness::kUnknown;
  std::vector<Holder> holders;
  Verdict verdict = Verdict::kForeign;
  std::string problem;    // why foreign, corrupt or skipped
};

// The file `name` in options.dir, read and judged against `scan`.
// NotFound when there is no such file; other errors as the system says.
absl::StatusOr<SegmentInfo> DescribeSegment(const Options& options,
                                            const std::string& name,
                                            const ProcScan& scan);

struct Listing {
  std::vector<SegmentInfo> segments;  // sorted by name
  std::vector<uint32_t> unreadable_pids;
  size_t processes = 0;
};
// Every entry of options.dir. An error when the directory cannot be read.
absl::StatusOr<Listing> ListSegments(const Options& options);

// A live-state report of one segment (mpctl inspect).
struct Inspection {
  SegmentInfo info;
  std::optional<mp::queue_internal::RingSnapshot> ring;
  std::optional<mp::sync_internal::SyncSnapshot> sync;
  // Liveness of the tids and owners the state names.
  Liveness producer_lock_holder = Liveness::kUnknown;
  Liveness consumer_lock_holder = Liveness::kUnknown;
  Liveness spsc_producer = Liveness::kUnknown;
  Liveness spsc_consumer = Liveness::kUnknown;
  std::vector<Liveness> task_slot_owners;  // one per ring->task_slots entry
  Liveness lock_owner = Liveness::kUnknown;
  // Why the state could not be described (corrupt, unknown kind or
  // version); the state's own bad fields are in ring->problems /
  // sync->problems.
  std::string state_problem;
};
absl::StatusOr<Inspection> Inspect(const Options& options,
                                   const std::string& name);

// Whether `name` is one plain file name ("/name" accepted): not empty, not
// "." or "..", no '/' after the optional leading one, at most 255 bytes.
// The name without its leading '/' when valid.
std::optional<std::string> NormalizeName(const std::string& name);

// Removal. Refuses (FailedPrecondition) a file that is not regular, or one
// a live process maps or holds open unless `force`. Just before unlinking it
// scans /proc again and checks that the name still is the same file
// (device and inode); the window between that check and unlink(2) remains
// (a process that opens the name in it keeps a valid mapping: unlink only
// removes the name). NotFound when absent.
absl::Status RemoveSegment(const Options& options, const std::string& name,
                           bool force);

struct GcOptions {
  bool dry_run = false;
  bool force = false;          // also segments in use (of the kinds below)
  bool include_corrupt = false;
  bool include_foreign = false;
  // Also stale segments of a kind this mpctl does not know (SegmentKindName
  // says "unknown"): a newer mp's kind may be in use without being mapped
  // (a segment referred to by name from another one), which this tool
  // cannot judge, so they are kept unless asked for.
  bool include_unknown_kinds = false;
  // Also stale segments whose creator still runs. Kept by default: a live
  // program may create a segment, let go of it, and open it by name later
  // (a service's named queue between clients).
  bool include_live_creators = false;
  // Also message segments (kind "message": a big message a queue keeps in
  // its own segment, named from the queue's ring, mapped by nobody while it
  // waits for a consumer). Kept by default even when their producer is
  // dead: the queue that refers to them may still live, and this tool
  // cannot tell (an anonymous queue has no name in /dev/shm).
  bool include_messages = false;
};
struct GcResult {
  std::vector<std::string> removed;   // or, dry run, what would be
  std::vector<std::pair<std::string, std::string>> failed;  // name, why
};
// Removes the stale mp segments of options.dir whose kind it knows and whose
// creator is dead (and, when asked, those of unknown kinds or live creators,
// and the corrupt and foreign files nobody holds); never a file in use
// unless `force`.
absl::StatusOr<GcResult> CollectGarbage(const Options& options,
                                        const GcOptions& gc);

}  // namespace mpctl

#endif  // MP_TOOLS_MPCTL_SEGMENTS_H_
