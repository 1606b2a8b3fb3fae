// mp/manager/internal/store.h
// -----------------------------------------------------------------------------
// The byte-level containers behind mp::Manager, resident in a SharedArena,
// and the intent log that makes each update crash safe.
//
// Every container starts with a ContainerHeader (below): a crash-safe lock
// (mp::ResidentLock), what the container is (kind, type tag), a state word
// and an intent record. An update runs as a transaction (Txn) under the lock:
//
//   1. Begin: the intent is emptied, then phase := 1 (active).
//   2. Every block the update allocates is recorded in the intent (allocs)
//      right after Allocate returns; every existing word it changes first
//      has (offset, old value) appended to the intent (writes), and only
//      then is written. Fresh blocks are filled without logging: nobody
//      reaches them until a logged word points at them.
//   3. Commit: phase := 2 (committed). This one store is the commit point.
//   4. The blocks the update replaced (recorded as frees) are released, a
//      cursor advanced before each Deallocate; then phase := 0.
//
// Recovery (the next locker that gets LockResult::kOwnerDied): phase 1 =>
// restore the logged words in reverse order, release the recorded allocs,
// phase := 0 and rolled_back += 1; phase 2 => finish the frees from the
// cursor, phase := 0 and completed += 1. The phase and both counters share
// one 64-bit state word, so "done and counted" is a single store: a
// recoverer killed itself is recovered by the next one, counted once.
// Restoring words is idempotent; frees resume at a cursor that is advanced
// before each Deallocate, so a kill between the two leaks that one block
// (as SharedArena itself may leak one block per killed process) and never
// frees a block twice.
//
// Bytes another process wrote are not trusted: every offset read from the
// segment (a table, an entry, an intent record) is checked against the
// arena's bounds before it is followed, and a bad one is DataLoss; a free
// that names no allocated block is DataLoss from SharedArena::TryDeallocate
// instead of an abort (its cursor has moved past it: the next recovery goes
// on, leaking whatever it named).
//
// Layouts (all offsets are from the arena's base; 0 means none):
//   Dict: f[0] table, f[1] capacity (power of 2), f[2] count, f[3] used
//         slots (live + tombstones), f[4] next insertion sequence number.
//         Table: capacity slots of {hash, entry}; entry 0 empty, 1 erased.
//         Entry block: {seq u64, key_len u32, value_len u32, key, value}.
//         Setting a key to a value of the same encoded size rewrites the
//         value in place: within one aligned word, as one atomic store with
//         no transaction (a kill leaves the old value or the new, nothing
//         between); up to 8 words, through the log; otherwise a new entry
//         replaces the old one, which is freed on commit.
//   List: f[0] array of entry offsets, f[1] capacity, f[2] size.
//         Entry block: {len u64, bytes}.
//   Value/Array: f[0] element size, f[1] element count, f[2] data block.

#ifndef MP_MANAGER_INTERNAL_STORE_H_
#define MP_MANAGER_INTERNAL_STORE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "mp/core/shared_arena.h"
#include "mp/sync/lock.h"

namespace mp::manager_internal {

enum class Kind : uint32_t {
  kDirectory = 1,
  kDict = 2,
  kList = 3,
  kNamespace = 4,
  kValue = 5,
  kArray = 6,
};
const char* KindName(uint32_t kind);

inline constexpr int kMaxWrites = 16;
inline constexpr int kMaxAllocs = 4;
inline constexpr int kMaxFrees = 4;

// What a recorded free releases.
enum class FreeKind : uint32_t {
  kBlock = 1,      // one block
  kDictTable = 2,  // a dict table: every live entry, then the table
  kListArray = 3,  // a list array: its first `count` entries, then the array
};

struct Intent {
  std::atomic<uint32_t> n_writes;
  std::atomic<uint32_t> n_allocs;
  std::atomic<uint32_t> n_frees;
  std::atomic<uint32_t> cursor;      // next free (or alloc) to release
  std::atomic<uint64_t> sub_cursor;  // next element of a table/array free
  struct Write {
    std::atomic<uint64_t> offset;
    std::atomic<uint64_t> old;
  } writes[kMaxWrites];
  std::atomic<uint64_t> allocs[kMaxAllocs];
  struct Free {
    std::atomic<uint64_t> offset;
    std::atomic<uint64_t> kind_count;  // FreeKind << 56 | count
  } frees[kMaxFrees];
};

// The state word: bits 0-1 phase (0 idle, 1 active, 2 committed), bits 2-32
// updates rolled back, bits 33-63 interrupted updates completed.
inline constexpr uint64_t kPhaseMask = 3;
inline constexpr int kRolledShift = 2;
inline constexpr int kCompletedShift = 33;
inline constexpr uint64_t kCountMask = (uint64_t{1} << 31) - 1;

struct ContainerHeader {
  ResidentLock lock;  // 40 bytes
  uint32_t kind;
  uint32_t reserved;
  uint64_t type_tag;
  std::atomic<uint64_t> state;
  uint64_t f[6];
  Intent intent;
};
static_assert(std::is_standard_layout_v<ContainerHeader>);
static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);

inline uint64_t RolledBack(uint64_t state) {
  return (state >> kRolledShift) & kCountMask;
}
inline uint64_t Completed(uint64_t state) {
  return (state >> kCompletedShift) & kCountMask;
}

// Bounds-checked access to a SharedArena.
class Space {
 public:
  explicit Space(SharedArena* arena) : arena_(arena) {}
  SharedArena* arena() const { return arena_; }
  char* base() const { return reinterpret_cast<char*>(arena_); }
  // The address of [offset, offset + len) or nullptr when that range is not
  // inside the arena or offset is not `align`-aligned.
  char* At(uint64_t offset, uint64_t len, uint64_t align = 8) const {
    const uint64_t cap = arena_->capacity();
    if (offset == 0 || offset % align != 0 || offset > cap ||
        len > cap - offset) {
      return nullptr;
    }
    return base() + offset;
  }
  uint64_t OffsetOf(const void* p) const { return arena_->OffsetOf(p); }

 private:
  SharedArena* arena_;
};

// Holds a container's lock; recovers an interrupted update on owner death.
// Status: DataLoss when the header or its intent is corrupt.
class Guard {
 public:
  Guard(Space space, ContainerHeader* h);
  ~Guard();
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  const absl::Status& status() const { return status_; }

 private:
  ContainerHeader* h_;
  bool held_ = false;
  absl::Status status_;
};

// Recovers `h`'s interrupted update, if any (the caller holds its lock).
absl::Status Recover(Space space, ContainerHeader* h);

// One update of one container (module comment). Destroyed without Commit,
// it rolls back (an error in the middle: nothing changed, nothing counted).
class Txn {
 public:
  Txn(Space space, ContainerHeader* h);
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  // A fresh block of `size` bytes (zeroed), recorded for rollback; nullptr
  // when the arena is full (ResourceExhausted for the caller to return).
  char* Alloc(uint64_t size);
  // Logs *word's old value, then writes `value`.
  void Write(uint64_t* word, uint64_t value);
  // Releases the block at `offset` once committed.
  void FreeOnCommit(uint64_t offset, FreeKind kind = FreeKind::kBlock,
                    uint64_t count = 0);
  void Commit();

 private:
  Space space_;
  ContainerHeader* h_;
  bool done_ = false;
};

// Stable 64-bit hash of a byte string (the same in every process).
uint64_t HashBytes(std::string_view bytes);

// ---- Dict ------------------------------------------------------------------
void InitDict(ContainerHeader* h, Kind kind, uint64_t type_tag);
// Sets key -> value. ResourceExhausted when the arena is full (unchanged).
absl::Status DictSet(Space s, ContainerHeader* h, std::string_view key,
                     std::string_view value);
// The value of `key`, NotFound when absent.
absl::StatusOr<std::string> DictGet(Space s, ContainerHeader* h,
                                    std::string_view key);
absl::StatusOr<bool> DictContains(Space s, ContainerHeader* h,
                                  std::string_view key);
// Removes `key` (its value in *old if non-null), NotFound when absent.
absl::Status DictErase(Space s, ContainerHeader* h, std::string_view key,
                       std::string* old = nullptr);
absl::Status DictClear(Space s, ContainerHeader* h);
absl::StatusOr<uint64_t> DictSize(Space s, ContainerHeader* h);
// Every (key, value) in insertion order.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DictItems(
    Space s, ContainerHeader* h);
// Under the held lock (Guard), no recovery: lookup of `key`'s value.
absl::StatusOr<std::string> DictGetLocked(Space s, ContainerHeader* h,
                                          std::string_view key);
// Inside a transaction the caller runs (the directory creating a container).
absl::Status DictSetIn(Txn& t, Space s, ContainerHeader* h,
                       std::string_view key, std::string_view value);

// ---- List ------------------------------------------------------------------
void InitList(ContainerHeader* h, uint64_t type_tag);
absl::Status ListAppend(Space s, ContainerHeader* h, std::string_view value);
// Python indexing: negative counts from the end; OutOfRange outside.
absl::StatusOr<std::string> ListAt(Space s, ContainerHeader* h, int64_t i);
absl::Status ListSet(Space s, ContainerHeader* h, int64_t i,
                     std::string_view value);
// Python's insert: i clamped to [0, size] after negative adjustment.
absl::Status ListInsert(Space s, ContainerHeader* h, int64_t i,
                        std::string_view value);
absl::StatusOr<std::string> ListPop(Space s, ContainerHeader* h, int64_t i);
// Removes the first element equal to `value`; NotFound when none is.
absl::Status ListRemove(Space s, ContainerHeader* h, std::string_view value);
absl::Status ListClear(Space s, ContainerHeader* h);
absl::StatusOr<uint64_t> ListSize(Space s, ContainerHeader* h);
absl::StatusOr<std::vector<std::string>> ListSnapshot(Space s,
                                                      ContainerHeader* h);

// ---- Value / Array ---------------------------------------------------------
// Makes the data block (elem_size * count bytes, zeroed) inside the caller's
// transaction; false when the arena is full.
bool InitCells(Txn& t, Space s, ContainerHeader* h, Kind kind,
               uint64_t type_tag, uint64_t elem_size, uint64_t count);
// The data block's address (nullptr when corrupt).
char* CellsData(Space s, ContainerHeader* h);
// Writes `len` bytes at `dst` (inside the data block) under the held lock,
// logging the covering words so that a death midway rolls back.
void CellsWrite(Space s, ContainerHeader* h, char* dst, const void* src,
                uint64_t len);

// Checks a container's structure (tests, Open): DataLoss on any
// inconsistency; the caller holds the lock or knows nobody writes.
absl::Status CheckConsistent(Space s, ContainerHeader* h);

}  // namespace mp::manager_internal

#endif  // MP_MANAGER_INTERNAL_STORE_H_
