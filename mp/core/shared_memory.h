// mp/core/shared_memory.h
// -----------------------------------------------------------------------------
// Shared memory, three ways:
//
//  * `SharedMemory::Anonymous(size)`: a MAP_SHARED | MAP_ANONYMOUS mapping.
//    Children started after it was made inherit it at the same address.
//  * `SharedMemory::Create(name, size)` / `Open(name)` / `Unlink(name)`:
//    a POSIX shared-memory segment in /dev/shm that unrelated processes reach
//    by name. Create uses O_EXCL and mode 0600 unless told otherwise.
//  * `Shared<T>`: a handle to one T constructed in its own anonymous shared
//    mapping. Copies refer to the same T (like a Python object handed to a
//    child); the mapping is unmapped when the last copy in this process goes,
//    and the kernel frees the memory when every process has unmapped it, so
//    a process that dies never leaks it or frees it under another's feet.
//    Just before that unmap, T::OnLastHandleInProcess() runs if T has one
//    (mp::ResidentLock uses it to leave its owner's robust list intact).
//    Each Shared<T> costs one mapping (at least a page): meant for handles to
//    synchronisation objects and queues, not for millions of small values.
//
// `SharedArena` (shared_arena.h) places many resident objects inside one
// segment for users who need that.
//
// Lifetime: a SharedMemory object unmaps its mapping on destruction; it never
// unlinks a name (call Unlink). Pointers into the mapping die with it.
//
// Truncation: a named segment's file can be truncated by anyone allowed to
// write it; the vanished pages would raise SIGBUS in every process mapping
// them. Named mappings are watched (truncation_guard.h): the access reads
// zeros instead and truncated() turns true, which the queues report as
// DataLoss.

#ifndef MP_CORE_SHARED_MEMORY_H_
#define MP_CORE_SHARED_MEMORY_H_

#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/truncation_guard.h"

namespace mp {

// What SharedMemory::Open accepts of a named segment it did not create. A
// name in /dev/shm can be taken by anyone first (a squatter who hands a
// service its own segment) and rewritten by anyone its mode lets in; Open
// refuses a segment not owned by `owner` or open to more than
// `permissions` allow, and anything but a regular file (a symlink included).
struct SegmentAccess {
  // The uid that must own the segment. kCallerUid: the caller's
  // effective uid.
  static constexpr uid_t kCallerUid = static_cast<uid_t>(-1);
  uid_t owner = kCallerUid;
  // Accept any owner (the mode check still applies).
  bool any_owner = false;
  // The permission bits the segment may have at most (0600: only its owner
  // reads and writes it; 0660 lets its group in too).
  mode_t permissions = 0600;
};

class SharedMemory {
 public:
  SharedMemory() = default;
  SharedMemory(SharedMemory&& other) noexcept { *this = std::move(other); }
  SharedMemory& operator=(SharedMemory&& other) noexcept;
  SharedMemory(const SharedMemory&) = delete;
  SharedMemory& operator=(const SharedMemory&) = delete;
  ~SharedMemory() { Reset(); }

  // An anonymous shared mapping of `size` bytes, zero-filled. InvalidArgument
  // for size 0; ResourceExhausted when the kernel refuses the mapping.
  static absl::StatusOr<SharedMemory> Anonymous(size_t size);

  // Creates the named segment `name` ("/name" or "name": one component of at
  // most 255 bytes, no '/' inside) with `size` zero-filled bytes.
  // AlreadyExists when the name is taken; InvalidArgument for a bad name or
  // size 0; PermissionDenied / ResourceExhausted as the system says.
  static absl::StatusOr<SharedMemory> Create(std::string_view name,
                                             size_t size, mode_t mode = 0600);
  // Opens an existing named segment, mapping its whole current size.
  // NotFound when there is no such name; PermissionDenied, naming the owner
  // or the mode found and the one wanted, when the segment's owner or mode
  // is not what `access` accepts; FailedPrecondition when the name is a
  // symbolic link or not a regular file, or the segment is empty.
  static absl::StatusOr<SharedMemory> Open(std::string_view name,
                                           const SegmentAccess& access = {});
  // Removes the name; mappings that exist stay valid. NotFound if absent.
  static absl::Status Unlink(std::string_view name);

  void* data() const { return data_; }
  size_t size() const { return size_; }
  // The normalised name ("/name"), empty for anonymous memory.
  const std::string& name() const { return name_; }
  bool valid() const { return data_ != nullptr; }
  // Named segments: true once another process truncated the segment's file
  // under this mapping and this process touched a vanished page (see
  // truncation_guard.h: the pages read as zeros from then on, private to
  // this process). Always false for anonymous memory.
  bool truncated() const {
    return truncation_flag()->load(std::memory_order_acquire) != 0;
  }
  // The mark behind truncated(), for code that keeps a pointer to it.
  const std::atomic<uint32_t>* truncation_flag() const {
    return truncation_guard::Flag(guard_);
  }

  // Unmaps now. The object becomes empty.
  void Reset();

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
  int guard_ = truncation_guard::kNotWatched;
  std::string name_;
};

// Checks a segment name and returns it with its leading '/'.
absl::StatusOr<std::string> NormalizeSegmentName(std::string_view name);

// A handle to a T that lives in its own anonymous shared mapping. T must be
// usable at any address in any process (standard layout, no pointers), which
// is what the `mp` resident types promise.
template <class T>
class Shared {
 public:
  // Constructs T(args...) in a fresh shared mapping. Throws std::bad_alloc
  // if the kernel refuses the mapping, as `new` would.
  template <class... Args>
  static Shared Make(Args&&... args) {
    auto mem = SharedMemory::Anonymous(sizeof(T));
    if (!mem.ok()) throw std::bad_alloc();
    auto memory = std::make_shared<SharedMemory>(*std::move(mem));
    T* object = new (memory->data()) T(std::forward<Args>(args)...);
    return Shared(std::make_shared<Block>(std::move(memory), object));
  }

  // A handle to the T already constructed at `offset` of `memory` (a named
  // segment, which may hold several resident objects: every handle to any
  // of them keeps the whole mapping). `offset` must be suitably aligned and
  // leave sizeof(T) bytes.
  static Shared At(std::shared_ptr<SharedMemory> memory, size_t offset) {
    T* object = reinterpret_cast<T*>(static_cast<char*>(memory->data()) +
                                     offset);
    return Shared(std::make_shared<Block>(std::move(memory), object));
  }

  Shared() = default;

  T* get() const { return block_ ? block_->object : nullptr; }
  T* operator->() const { return get(); }
  T& operator*() const { return *get(); }
  explicit operator bool() const { return block_ != nullptr; }
  // Copies in this process that refer to the same mapping.
  long use_count() const { return block_.use_count(); }

 private:
  struct Block {
    Block(std::shared_ptr<SharedMemory> m, T* o)
        : memory(std::move(m)), object(o) {}
    // The object is not destroyed here: other processes may still use it.
    // Resident types are trivially destructible by contract. A type that
    // keeps per-process links into its bytes (a held lock sits on its
    // owner's robust list) gets one call before this process unmaps it.
    ~Block() {
      if constexpr (requires(T& t) { t.OnLastHandleInProcess(); }) {
        if (object != nullptr) object->OnLastHandleInProcess();
      }
    }
    Block(const Block&) = delete;
    Block& operator=(const Block&) = delete;
    std::shared_ptr<SharedMemory> memory;
    T* object = nullptr;
  };
  static_assert(std::is_standard_layout_v<T>,
                "resident types must be standard layout");
  static_assert(std::is_trivially_destructible_v<T>,
                "resident types must be trivially destructible: another "
                "process may still use the object when this one lets go");

  explicit Shared(std::shared_ptr<Block> b) : block_(std::move(b)) {}
  std::shared_ptr<Block> block_;
};

}  // namespace mp

#endif  // MP_CORE_SHARED_MEMORY_H_
