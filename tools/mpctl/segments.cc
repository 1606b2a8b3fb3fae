#include "tools/mpctl/segments.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "absl/strings/str_cat.h"
#include "mp/queue/internal/ring.h"

namespace mpctl {
namespace {

using mp::SegmentHeader;
using mp::SegmentKind;

// The most bytes Inspect copies of a segment: the header and the object's
// own fields (a ring's data area is never read).
constexpr size_t kMaxSyncState = 4096;

absl::Status Errno(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ELOOP:
      return absl::FailedPreconditionError(msg);
    default:
      return absl::InternalError(msg);
  }
}

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

// Reads a small text file whole (at most `limit` bytes); nullopt on error.
std::optional<std::string> ReadText(const std::string& path,
                                    size_t limit = 1 << 20) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  Fd guard(fd);
  std::string out;
  char buf[8192];
  for (;;) {
    const ssize_t r = read(fd, buf, sizeof(buf));
    if (r < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    if (r == 0) break;
    out.append(buf, static_cast<size_t>(r));
    if (out.size() > limit) break;
  }
  return out;
}

// pread until `n` bytes or end of file; the bytes read.
std::string PreadUpTo(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = pread(fd, out.data() + got, n - got,
                            static_cast<off_t>(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

const char* FileType(mode_t m) {
  if (S_ISREG(m)) return "regular";
  if (S_ISLNK(m)) return "symlink";
  if (S_ISFIFO(m)) return "fifo";
  if (S_ISSOCK(m)) return "socket";
  if (S_ISCHR(m)) return "char-device";
  if (S_ISBLK(m)) return "block-device";
  if (S_ISDIR(m)) return "directory";
  return "other";
}

bool AllDigits(const char* s) {
  if (*s == '\0') return false;
  for (; *s != '\0'; ++s) {
    if (*s < '0' || *s > '9') return false;
  }
  return true;
}

std::string StripDeleted(std::string path) {
  static constexpr char kDeleted[] = " (deleted)";
  constexpr size_t k = sizeof(kDeleted) - 1;
  if (path.size() >= k && path.compare(path.size() - k, k, kDeleted) == 0) {
    path.resize(path.size() - k);
  }
  return path;
}

// One /proc/<pid>/maps line: "start-end perms offset MM:mm inode   path".
// The device is hex major:minor; the path starts after the spaces that
// follow the inode and runs to the end of the line.
bool ParseMapsLine(const std::string& line, uint64_t* dev, uint64_t* ino,
                   std::string* path) {
  size_t pos = 0;
  auto field = [&](std::string* out) {
    while (pos < line.size() && line[pos] == ' ') ++pos;
    const size_t start = pos;
    while (pos < line.size() && line[pos] != ' ') ++pos;
    if (start == pos) return false;
    *out = line.substr(start, pos - start);
    return true;
  };
  std::string range, perms, offset, devs, inode;
  if (!field(&range) || !field(&perms) || !field(&offset) || !field(&devs) ||
      !field(&inode)) {
    return false;
  }
  const size_t colon = devs.find(':');
  if (colon == std::string::npos) return false;
  char* end = nullptr;
  const unsigned long major = std::strtoul(devs.c_str(), &end, 16);
  if (end != devs.c_str() + colon) return false;
  const unsigned long minor = std::strtoul(devs.c_str() + colon + 1, &end, 16);
  if (*end != '\0') return false;
  const unsigned long long i = std::strtoull(inode.c_str(), &end, 10);
  if (*end != '\0' || i == 0) return false;
  while (pos < line.size() && line[pos] == ' ') ++pos;
  *dev = makedev(major, minor);
  *ino = i;
  *path = StripDeleted(line.substr(pos));
  return true;
}

std::string KindLabel(const SegmentHeader& h) {
  switch (static_cast<SegmentKind>(h.kind)) {
    case SegmentKind::kQueue:
      return absl::StrCat("queue ",
                          mp::queue_internal::RingModeName(h.flags));
    case SegmentKind::kLock:
      return h.type_size == 48 ? "rlock" : "lock";
    default:
      return mp::SegmentKindName(h.kind);
  }
}

// Checks a header ReadSegmentHeader accepted against the file's size and,
// for the kinds this tool knows, against the kind's layout. "" when sane.
std::string CheckHeader(const SegmentHeader& h, uint64_t file_size) {
  const uint64_t expected = SegmentHeader::kSize + h.data_bytes;
  switch (static_cast<SegmentKind>(h.kind)) {
    case SegmentKind::kQueue: {
      using mp::queue_internal::Ring;
      if (h.flags != 1 && h.flags != 2) {
        return absl::StrCat("queue with a bad mode flag ", h.flags);
      }
      if (h.data_bytes < sizeof(Ring)) {
        return absl::StrCat("queue with ", h.data_bytes,
                            " data bytes, fewer than its ring's ",
                            sizeof(Ring));
      }
      if (file_size != expected) {
        return absl::StrCat("file of ", file_size, " bytes, header says ",
                            expected);
      }
      return "";
    }
    case SegmentKind::kLock:
    case SegmentKind::kEvent:
    case SegmentKind::kSemaphore:
    case SegmentKind::kCondition:
      if (h.type_size == 0 || h.type_size > kMaxSyncState ||
          h.data_bytes != h.type_size) {
        return absl::StrCat(mp::SegmentKindName(h.kind), " with ",
                            h.type_size, " state bytes and ", h.data_bytes,
                            " data bytes");
      }
      if (file_size != expected) {
        return absl::StrCat("file of ", file_size, " bytes, header says ",
                            expected);
      }
      return "";
    default:
      return "";  // a kind this tool does not know: the header's own checks
  }
}

// Opens `name` in `dir_fd` for reading without following a symlink and
// without blocking on a FIFO, and only if it is a regular file.
absl::StatusOr<int> OpenRegular(int dir_fd, const std::string& name,
                                const std::string& path) {
  const int fd = openat(dir_fd, name.c_str(),
                        O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
                            O_CLOEXEC);
  if (fd < 0) return Errno(errno, absl::StrCat("open ", path));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": not a regular file"));
  }
  return fd;
}

// Judges the file `name` (already lstat'ed into `st`) from its first bytes.
SegmentInfo Judge(const Options& options, int dir_fd, const std::string& name,
                  const struct stat& st, const ProcScan& scan,
                  std::string* header_bytes, size_t want) {
  SegmentInfo info;
  info.name = name;
  info.path = absl::StrCat(options.dir, "/", name);
  info.file_type = FileType(st.st_mode);
  info.file_size = static_cast<uint64_t>(st.st_size);
  info.dev = st.st_dev;
  info.ino = st.st_ino;
  info.kind = "-";
  info.holders = scan.HoldersOf(info.dev, info.ino, info.path);
  if (!S_ISREG(st.st_mode)) {
    info.verdict = Verdict::kSkipped;
    info.problem = absl::StrCat("not a regular file (", info.file_type, ")");
    return info;
  }
  absl::StatusOr<int> fd = OpenRegular(dir_fd, name, info.path);
  if (!fd.ok()) {
    info.verdict = Verdict::kSkipped;
    info.problem = std::string(fd.status().message());
    return info;
  }
  Fd guard(*fd);
  struct stat now;
  if (fstat(*fd, &now) == 0) {
    // The name may have been replaced since the lstat: judge what was read.
    info.file_size = static_cast<uint64_t>(now.st_size);
    if (now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
      info.dev = now.st_dev;
      info.ino = now.st_ino;
      info.holders = scan.HoldersOf(info.dev, info.ino, info.path);
    }
  }
  const size_t n = static_cast<size_t>(
      std::min<uint64_t>(info.file_size, std::max(want, size_t{64})));
  std::string bytes = PreadUpTo(*fd, n);
  uint64_t magic = 0;
  if (bytes.size() >= sizeof(magic)) std::memcpy(&magic, bytes.data(), 8);
  info.has_magic = magic == SegmentHeader::kMagic;
  if (!info.has_magic) {
    info.verdict = Verdict::kForeign;
    info.problem = bytes.size() < sizeof(magic)
                       ? absl::StrCat("file of ", bytes.size(), " bytes")
                       : "no mp magic";
    return info;
  }
  // ReadSegmentHeader copies only the first 64 bytes and checks data_bytes
  // against the size it is given: the file's (or, for a file that shrank
  // under us to less than a header, what was read).
  std::string h64 = bytes.substr(0, SegmentHeader::kSize);
  const size_t read_size = h64.size();
  h64.resize(SegmentHeader::kSize, '\0');
  absl::StatusOr<SegmentHeader> h = mp::ReadSegmentHeader(
      h64.data(), read_size < SegmentHeader::kSize
                      ? read_size
                      : static_cast<size_t>(info.file_size));
  if (!h.ok()) {
    info.verdict = Verdict::kCorrupt;
    info.problem = std::string(h.status().message());
    return info;
  }
  info.header = *h;
  info.kind = KindLabel(*h);
  info.creator = TaskLiveness(options.proc_root, h->creator_pid,
                              h->creator_start);
  if (std::string why = CheckHeader(*h, info.file_size); !why.empty()) {
    info.verdict = Verdict::kCorrupt;
    info.problem = why;
    return info;
  }
  info.verdict = info.holders.empty() ? Verdict::kStale : Verdict::kInUse;
  if (header_bytes != nullptr) *header_bytes = std::move(bytes);
  return info;
}

absl::StatusOr<SegmentInfo> DescribeSegmentBytes(const Options& options,
                                                 const std::string& name,
                                                 const ProcScan& scan,
                                                 std::string* bytes,
                                                 size_t want) {
  const std::optional<std::string> norm = NormalizeName(name);
  if (!norm) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not a segment name"));
  }
  const int dir_fd =
      open(options.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno(errno, absl::StrCat("open ", options.dir));
  Fd guard(dir_fd);
  struct stat st;
  if (fstatat(dir_fd, norm->c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(errno, absl::StrCat(options.dir, "/", *norm));
  }
  return Judge(options, dir_fd, *norm, st, scan, bytes, want);
}

}  // namespace

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kInUse:
      return "in-use";
    case Verdict::kStale:
      return "stale";
    case Verdict::kForeign:
      return "foreign";
    case Verdict::kCorrupt:
      return "corrupt";
    case Verdict::kSkipped:
      return "skipped";
  }
  return "?";
}

const char* LivenessName(Liveness l) {
  switch (l) {
    case Liveness::kAlive:
      return "alive";
    case Liveness::kDead:
      return "dead";
    case Liveness::kUnknown:
      return "unknown";
  }
  return "?";
}

Liveness TaskLiveness(const std::string& proc_root, uint32_t tid,
                      uint64_t start, uint64_t start_mask) {
  if (tid == 0 || tid > 0x3fffffffu) return Liveness::kUnknown;
  const std::string dir = absl::StrCat(proc_root, "/", tid);
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return errno == ENOENT ? Liveness::kDead : Liveness::kUnknown;
  }
  const std::optional<std::string> stat_text =
      ReadText(absl::StrCat(dir, "/stat"), 4096);
  if (!stat_text) return Liveness::kUnknown;
  // "pid (comm) S ppid ...": the comm may hold spaces and parentheses, so
  // fields are counted after the last ')'. Field 3 is the state, 22 the
  // start time.
  const size_t paren = stat_text->rfind(')');
  if (paren == std::string::npos) return Liveness::kUnknown;
  std::vector<std::string> fields;
  size_t pos = paren + 1;
  while (pos < stat_text->size() && fields.size() < 20) {
    while (pos < stat_text->size() && (*stat_text)[pos] == ' ') ++pos;
    const size_t s = pos;
    while (pos < stat_text->size() && (*stat_text)[pos] != ' ' &&
           (*stat_text)[pos] != '\n') {
      ++pos;
    }
    if (s == pos) break;
    fields.push_back(stat_text->substr(s, pos - s));
  }
  if (fields.size() < 20) return Liveness::kUnknown;
  const std::string& state = fields[0];  // field 3
  if (state == "Z" || state == "X" || state == "x") return Liveness::kDead;
  if (start != 0) {
    char* end = nullptr;
    const unsigned long long t = std::strtoull(fields[19].c_str(), &end, 10);
    if (*end != '\0') return Liveness::kUnknown;
    if ((t & start_mask) != (start & start_mask)) return Liveness::kDead;
  }
  return Liveness::kAlive;
}

std::vector<Holder> ProcScan::HoldersOf(uint64_t dev, uint64_t ino,
                                        const std::string& path) const {
  std::vector<Holder> out;
  std::vector<size_t> seen;
  auto [lo, hi] = by_inode.equal_range(ino);
  for (auto it = lo; it != hi; ++it) {
    const Hit& hit = it->second;
    // A mapping of a file on an overlay can show the lower device: the
    // same inode at the same path is the same file too.
    if (hit.dev != dev && hit.path != path) continue;
    if (std::find(seen.begin(), seen.end(), hit.holder) != seen.end()) continue;
    seen.push_back(hit.holder);
    out.push_back(holders[hit.holder]);
  }
  std::sort(out.begin(), out.end(),
            [](const Holder& a, const Holder& b) { return a.pid < b.pid; });
  return out;
}

ProcScan ScanProcesses(const Options& options) {
  ProcScan scan;
  DIR* d = opendir(options.proc_root.c_str());
  if (d == nullptr) return scan;
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, closedir);
  while (struct dirent* e = readdir(d)) {
    if (!AllDigits(e->d_name)) continue;
    const uint32_t pid = static_cast<uint32_t>(std::strtoul(e->d_name, nullptr, 10));
    if (options.exclude_pid != 0 && pid == static_cast<uint32_t>(options.exclude_pid)) {
      continue;
    }
    ++scan.processes;
    const std::string dir = absl::StrCat(options.proc_root, "/", e->d_name);
    std::optional<std::string> comm = ReadText(dir + "/comm", 4096);
    Holder who;
    who.pid = pid;
    if (comm) {
      if (!comm->empty() && comm->back() == '\n') comm->pop_back();
      who.comm = *comm;
    }
    bool unreadable = false;
    // (dev, ino, path, via maps?) of everything this process holds.
    struct Found {
      uint64_t dev, ino;
      std::string path;
      bool maps;
    };
    std::vector<Found> found;

    const std::optional<std::string> maps = ReadText(dir + "/maps", 64 << 20);
    if (!maps) {
      // A process that exited since readdir is simply gone.
      struct stat st;
      if (stat(dir.c_str(), &st) == 0) unreadable = true;
    } else {
      size_t pos = 0;
      while (pos < maps->size()) {
        size_t nl = maps->find('\n', pos);
        if (nl == std::string::npos) nl = maps->size();
        uint64_t dev = 0, ino = 0;
        std::string path;
        if (ParseMapsLine(maps->substr(pos, nl - pos), &dev, &ino, &path)) {
          found.push_back({dev, ino, std::move(path), true});
        }
        pos = nl + 1;
      }
    }
    const std::string fd_dir = dir + "/fd";
    if (DIR* fds = opendir(fd_dir.c_str())) {
      std::unique_ptr<DIR, int (*)(DIR*)> fds_guard(fds, closedir);
      while (struct dirent* f = readdir(fds)) {
        if (!AllDigits(f->d_name)) continue;
        const std::string link = absl::StrCat(fd_dir, "/", f->d_name);
        struct stat st;
        // stat follows the fd's magic link to the open file itself.
        if (stat(link.c_str(), &st) != 0) continue;
        char target[4096];
        const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
        std::string path = n > 0 ? std::string(target, static_cast<size_t>(n)) : "";
        found.push_back({st.st_dev, st.st_ino, StripDeleted(path), false});
      }
    } else {
      struct stat st;
      if (errno != ENOENT && stat(dir.c_str(), &st) == 0) unreadable = true;
    }
    if (unreadable) scan.unreadable_pids.push_back(pid);
    if (found.empty()) continue;
    // One holder per process; mark how it holds each file.
    for (const Found& f : found) {
      // A separate Holder record per (process, file) keeps the maps/fd
      // flags per file.
      bool merged = false;
      auto [lo, hi] = scan.by_inode.equal_range(f.ino);
      for (auto it = lo; it != hi; ++it) {
        Holder& h = scan.holders[it->second.holder];
        if (h.pid == pid && it->second.dev == f.dev) {
          (f.maps ? h.maps : h.open_fd) = true;
          merged = true;
          break;
        }
      }
      if (merged) continue;
      Holder h = who;
      (f.maps ? h.maps : h.open_fd) = true;
      scan.holders.push_back(h);
      scan.by_inode.emplace(
          f.ino, ProcScan::Hit{f.dev, f.ino, f.path, scan.holders.size() - 1});
    }
  }
  return scan;
}

std::optional<std::string> NormalizeName(const std::string& name) {
  std::string n = !name.empty() && name[0] == '/' ? name.substr(1) : name;
  if (n.empty() || n == "." || n == ".." || n.size() > 255 ||
      n.find('/') != std::string::npos || n.find('\0') != std::string::npos) {
    return std::nullopt;
  }
  return n;
}

absl::StatusOr<SegmentInfo> DescribeSegment(const Options& options,
                                            const std::string& name,
                                            const ProcScan& scan) {
  return DescribeSegmentBytes(options, name, scan, nullptr, 64);
}

absl::StatusOr<Listing> ListSegments(const Options& options) {
  const int dir_fd =
      open(options.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno(errno, absl::StrCat("open ", options.dir));
  Fd guard(dir_fd);
  const int dup_fd = dup(dir_fd);
  if (dup_fd < 0) return Errno(errno, "dup");
  DIR* d = fdopendir(dup_fd);
  if (d == nullptr) {
    close(dup_fd);
    return Errno(errno, absl::StrCat("opendir ", options.dir));
  }
  std::unique_ptr<DIR, int (*)(DIR*)> dguard(d, closedir);
  std::vector<std::string> names;
  while (struct dirent* e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) {
      continue;
    }
    names.push_back(e->d_name);
  }
  std::sort(names.begin(), names.end());
  Listing out;
  const ProcScan scan = ScanProcesses(options);
  out.unreadable_pids = scan.unreadable_pids;
  out.processes = scan.processes;
  for (const std::string& name : names) {
    struct stat st;
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;  // removed since readdir
    }
    out.segments.push_back(Judge(options, dir_fd, name, st, scan, nullptr, 64));
  }
  return out;
}

absl::StatusOr<Inspection> Inspect(const Options& options,
                                   const std::string& name) {
  const ProcScan scan = ScanProcesses(options);
  const size_t want =
      SegmentHeader::kSize +
      std::max(mp::queue_internal::RingFieldBytes(), kMaxSyncState);
  std::string bytes;
  absl::StatusOr<SegmentInfo> info =
      DescribeSegmentBytes(options, name, scan, &bytes, want);
  if (!info.ok()) return info.status();
  Inspection out;
  out.info = *std::move(info);
  if (!out.info.header || out.info.verdict == Verdict::kCorrupt ||
      out.info.verdict == Verdict::kSkipped) {
    out.state_problem = out.info.problem.empty()
                            ? std::string("not an mp segment")
                            : out.info.problem;
    return out;
  }
  const SegmentHeader& h = *out.info.header;
  const std::string& proc = options.proc_root;
  const char* state = bytes.data() + SegmentHeader::kSize;
  const size_t state_n =
      bytes.size() > SegmentHeader::kSize ? bytes.size() - SegmentHeader::kSize
                                          : 0;
  switch (static_cast<SegmentKind>(h.kind)) {
    case SegmentKind::kQueue: {
      if (h.version != mp::queue_internal::Ring::kVersion) {
        out.state_problem =
            absl::StrCat("ring layout version ", h.version, ", this mpctl knows ",
                         mp::queue_internal::Ring::kVersion);
        break;
      }
      auto ring = mp::queue_internal::DescribeRing(
          state, std::min(state_n, mp::queue_internal::RingFieldBytes()),
          out.info.file_size - SegmentHeader::kSize);
      if (!ring.ok()) {
        out.state_problem = std::string(ring.status().message());
        break;
      }
      if (ring->mode_valid && ring->mode != h.flags) {
        ring->problems.push_back(absl::StrCat(
            "mode: ring says ", mp::queue_internal::RingModeName(ring->mode),
            ", header says ", mp::queue_internal::RingModeName(h.flags)));
      }
      out.ring = *std::move(ring);
      const auto& r = *out.ring;
      if (r.producer_lock.holder_tid != 0) {
        out.producer_lock_holder = TaskLiveness(proc, r.producer_lock.holder_tid);
      }
      if (r.consumer_lock.holder_tid != 0) {
        out.consumer_lock_holder = TaskLiveness(proc, r.consumer_lock.holder_tid);
      }
      if (r.spsc_producer.pid != 0) {
        out.spsc_producer = TaskLiveness(proc, r.spsc_producer.pid,
                                         r.spsc_producer.start_low32,
                                         0xffffffffu);
      }
      if (r.spsc_consumer.pid != 0) {
        out.spsc_consumer = TaskLiveness(proc, r.spsc_consumer.pid,
                                         r.spsc_consumer.start_low32,
                                         0xffffffffu);
      }
      for (const auto& slot : r.task_slots) {
        out.task_slot_owners.push_back(TaskLiveness(
            proc, slot.owner.pid, slot.owner.start_low32, 0xffffffffu));
      }
      break;
    }
    case SegmentKind::kLock:
    case SegmentKind::kEvent:
    case SegmentKind::kSemaphore:
    case SegmentKind::kCondition: {
      if (h.version != mp::sync_internal::KnownSyncVersion()) {
        out.state_problem =
            absl::StrCat("sync layout version ", h.version, ", this mpctl knows ",
                         mp::sync_internal::KnownSyncVersion());
        break;
      }
      auto sync = mp::sync_internal::DescribeSyncState(h.kind, h.type_size,
                                                       state, state_n);
      if (!sync.ok()) {
        out.state_problem = std::string(sync.status().message());
        break;
      }
      out.sync = *std::move(sync);
      if (out.sync->lock.owner_tid != 0) {
        out.lock_owner = TaskLiveness(proc, out.sync->lock.owner_tid);
      }
      break;
    }
    default:
      out.state_problem = absl::StrCat("mpctl cannot show the state of a ",
                                       mp::SegmentKindName(h.kind), " yet");
      break;
  }
  return out;
}

absl::Status RemoveSegment(const Options& options, const std::string& name,
                           bool force) {
  const std::optional<std::string> norm = NormalizeName(name);
  if (!norm) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not a segment name"));
  }
  const int dir_fd =
      open(options.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Errno(errno, absl::StrCat("open ", options.dir));
  Fd guard(dir_fd);
  const std::string path = absl::StrCat(options.dir, "/", *norm);
  struct stat st;
  if (fstatat(dir_fd, norm->c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(errno, path);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": not a regular file (", FileType(st.st_mode), "): not removed"));
  }
  // Just before unlink: who holds it now, and is the name still that file.
  const ProcScan scan = ScanProcesses(options);
  const std::vector<Holder> holders = scan.HoldersOf(st.st_dev, st.st_ino, path);
  if (!holders.empty() && !force) {
    std::string who;
    for (const Holder& h : holders) {
      absl::StrAppend(&who, who.empty() ? "" : ", ", h.pid, " (", h.comm, ")");
    }
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": in use by ", who, "; not removed (--force)"));
  }
  struct stat again;
  if (fstatat(dir_fd, norm->c_str(), &again, AT_SYMLINK_NOFOLLOW) != 0) {
    return Errno(errno, path);
  }
  if (again.st_dev != st.st_dev || again.st_ino != st.st_ino) {
    return absl::AbortedError(
        absl::StrCat(path, ": replaced by another file meanwhile; not removed"));
  }
  if (unlinkat(dir_fd, norm->c_str(), 0) != 0) {
    return Errno(errno, absl::StrCat("unlink ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<GcResult> CollectGarbage(const Options& options,
                                        const GcOptions& gc) {
  absl::StatusOr<Listing> listing = ListSegments(options);
  if (!listing.ok()) return listing.status();
  GcResult out;
  for (const SegmentInfo& s : listing->segments) {
    bool pick = false;
    switch (s.verdict) {
      case Verdict::kStale:
      case Verdict::kInUse: {
        const bool known =
            s.header && std::string(mp::SegmentKindName(s.header->kind)) !=
                            "unknown";
        const bool message =
            s.header && s.header->kind ==
                            static_cast<uint32_t>(mp::SegmentKind::kMessage);
        pick = (known || gc.include_unknown_kinds) &&
               (!message || gc.include_messages) &&
               (s.creator != Liveness::kAlive || gc.include_live_creators) &&
               (s.verdict == Verdict::kStale || gc.force);
        break;
      }
      case Verdict::kCorrupt:
        pick = gc.include_corrupt && (s.holders.empty() || gc.force);
        break;
      case Verdict::kForeign:
        pick = gc.include_foreign && (s.holders.empty() || gc.force);
        break;
      case Verdict::kSkipped:
        break;
    }
    if (!pick) continue;
    if (gc.dry_run) {
      out.removed.push_back(s.name);
      continue;
    }
    absl::Status st = RemoveSegment(options, s.name, gc.force);
    if (st.ok()) {
      out.removed.push_back(s.name);
    } else {
      out.failed.emplace_back(s.name, std::string(st.message()));
    }
  }
  return out;
}

}  // namespace mpctl
