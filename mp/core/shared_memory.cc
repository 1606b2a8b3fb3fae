#include "mp/core/shared_memory.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mp {
namespace {

absl::Status ErrnoStatus(int err, std::string_view what) {
  std::string msg =
      absl::StrCat(absl::string_view(what.data(), what.size()), ": ",
                   std::strerror(err));
  switch (err) {
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case ENOENT:
      return absl::NotFoundError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ELOOP:
      return absl::FailedPreconditionError(
          absl::StrCat(msg, " (the name is a symbolic link, not a segment)"));
    case EINVAL:
    case ENAMETOOLONG:
    case EFBIG:
      return absl::InvalidArgumentError(msg);
    case ENOMEM:
    case ENOSPC:
    case EMFILE:
    case ENFILE:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

}  // namespace

SharedMemory& SharedMemory::operator=(SharedMemory&& other) noexcept {
  if (this != &other) {
    Reset();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    guard_ = std::exchange(other.guard_, truncation_guard::kNotWatched);
    name_ = std::move(other.name_);
    other.name_.clear();
  }
  return *this;
}

void SharedMemory::Reset() {
  truncation_guard::Unwatch(std::exchange(guard_, truncation_guard::kNotWatched));
  if (data_ != nullptr) munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
  name_.clear();
}

absl::StatusOr<std::string> NormalizeSegmentName(std::string_view std_name) {
  // Debian's Abseil has its own string_view type: work in that one.
  absl::string_view name(std_name.data(), std_name.size());
  if (!name.empty() && name.front() == '/') name.remove_prefix(1);
  if (name.empty()) {
    return absl::InvalidArgumentError("shared memory name is empty");
  }
  if (name.size() > 255) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared memory name is longer than 255 bytes: ",
                     name.substr(0, 32), "..."));
  }
  if (name.find('/') != absl::string_view::npos || name == "." ||
      name == ".." || name.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shared memory name must be one path component: '", name, "'"));
  }
  return absl::StrCat("/", name);
}

absl::StatusOr<SharedMemory> SharedMemory::Anonymous(size_t size) {
  if (size == 0) {
    return absl::InvalidArgumentError("shared memory size must be positive");
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    return ErrnoStatus(errno == EINVAL ? ENOMEM : errno,
                       absl::StrCat("mmap of ", size, " shared bytes"));
  }
  SharedMemory m;
  m.data_ = p;
  m.size_ = size;
  return m;
}

absl::StatusOr<SharedMemory> SharedMemory::Create(std::string_view name,
                                                  size_t size, mode_t mode) {
  auto norm = NormalizeSegmentName(name);
  if (!norm.ok()) return norm.status();
  if (size == 0) {
    return absl::InvalidArgumentError("shared memory size must be positive");
  }
  if (size > static_cast<size_t>(std::numeric_limits<off_t>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared memory size too large: ", size));
  }
  int fd = shm_open(norm->c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("shm_open ", *norm));
  // shm_open applies the umask; the caller asked for `mode` exactly.
  if (fchmod(fd, mode) != 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    shm_unlink(norm->c_str());
    return ErrnoStatus(err, absl::StrCat("sizing segment ", *norm));
  }
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) {
    shm_unlink(norm->c_str());
    return ErrnoStatus(err == EINVAL ? ENOMEM : err,
                       absl::StrCat("mmap of segment ", *norm));
  }
  SharedMemory m;
  m.data_ = p;
  m.size_ = size;
  m.name_ = *std::move(norm);
  m.guard_ = truncation_guard::Watch(p, size);
  return m;
}

namespace {

absl::Status CheckSegmentAccess(const std::string& name, const struct stat& st,
                                const SegmentAccess& access) {
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("segment ", name, " is not a regular file"));
  }
  const uid_t want = access.owner == SegmentAccess::kCallerUid ? geteuid()
                                                               : access.owner;
  if (!access.any_owner && st.st_uid != want) {
    return absl::PermissionDeniedError(absl::StrCat(
        "segment ", name, " is owned by uid ", st.st_uid, ", not uid ", want,
        " (set SegmentAccess::owner or any_owner to accept another owner)"));
  }
  const mode_t mode = st.st_mode & 07777;
  if ((mode & ~access.permissions) != 0) {
    return absl::PermissionDeniedError(absl::StrFormat(
        "segment %s has mode %04o, more open than the %04o asked for "
        "(set SegmentAccess::permissions to accept it)",
        name, mode, access.permissions & 07777));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SharedMemory> SharedMemory::Open(std::string_view name,
                                                const SegmentAccess& access) {
  auto norm = NormalizeSegmentName(name);
  if (!norm.ok()) return norm.status();
  // glibc's shm_open adds O_NOFOLLOW: a symlink in place of the name is
  // ELOOP, reported as such.
  int fd = shm_open(norm->c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW, 0);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("shm_open ", *norm));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return ErrnoStatus(err, absl::StrCat("fstat ", *norm));
  }
  if (absl::Status s = CheckSegmentAccess(*norm, st, access); !s.ok()) {
    close(fd);
    return s;
  }
  if (st.st_size <= 0) {
    close(fd);
    return absl::FailedPreconditionError(
        absl::StrCat("segment ", *norm, " is empty (not yet sized?)"));
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  int err = errno;
  close(fd);
  if (p == MAP_FAILED) {
    return ErrnoStatus(err, absl::StrCat("mmap of segment ", *norm));
  }
  SharedMemory m;
  m.data_ = p;
  m.size_ = size;
  m.name_ = *std::move(norm);
  m.guard_ = truncation_guard::Watch(p, size);
  return m;
}

absl::Status SharedMemory::Unlink(std::string_view name) {
  auto norm = NormalizeSegmentName(name);
  if (!norm.ok()) return norm.status();
  if (shm_unlink(norm->c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("shm_unlink ", *norm));
  }
  return absl::OkStatus();
}

}  // namespace mp
