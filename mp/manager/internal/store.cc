// mp/manager/internal/store.cc: the intent log, recovery, and the byte-level
// dict and list (store.h describes the protocol and the layouts).

#include "mp/manager/internal/store.h"

#include <algorithm>
#include <cstring>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "mp/core/status_macros.h"
#include "mp/manager/internal/fault_points.h"

namespace mp::manager_internal {

namespace {

constexpr uint64_t kEmpty = 0;
constexpr uint64_t kErased = 1;

absl::Status Corrupt(std::string_view what) {
  return absl::DataLossError(
      absl::StrCat("manager: corrupt container (", std::string(what), ")"));
}

absl::Status Full() {
  return absl::ResourceExhaustedError(
      "manager: the shared segment is full (the container is unchanged)");
}

uint64_t Phase(uint64_t state) { return state & kPhaseMask; }

void SetPhase(ContainerHeader* h, uint64_t phase) {
  const uint64_t s = h->state.load(std::memory_order_relaxed);
  h->state.store((s & ~kPhaseMask) | phase, std::memory_order_release);
}

std::atomic_ref<uint64_t> Word(uint64_t* p) { return std::atomic_ref<uint64_t>(*p); }

// Phase 2: releases the recorded frees from the cursor on.
absl::Status FinishFrees(Space s, ContainerHeader* h) {
  Intent& in = h->intent;
  const uint32_t n = in.n_frees.load(std::memory_order_acquire);
  if (n > kMaxFrees) return Corrupt("intent free count");
  for (uint32_t i = in.cursor.load(std::memory_order_relaxed); i < n; ++i) {
    const uint64_t off = in.frees[i].offset.load(std::memory_order_relaxed);
    const uint64_t kc = in.frees[i].kind_count.load(std::memory_order_relaxed);
    // The cursor moves past a free only when it is wholly done; a table
    // free resumes at its sub-cursor. A plain block: cursor first.
    const auto kind = static_cast<FreeKind>(kc >> 56);
    if (kind == FreeKind::kBlock) {
      in.cursor.store(i + 1, std::memory_order_release);
      char* p = s.At(off, 8, 64);
      if (p == nullptr) return Corrupt("freed block out of range");
      MP_RETURN_IF_ERROR(s.arena()->TryDeallocate(p));
      MP_FAULT_POINT("manager.txn.after_free");
      continue;
    }
    const uint64_t count = kc & ((uint64_t{1} << 56) - 1);
    // Elements first (resumable), then the table itself: mark the table as
    // taken by moving sub_cursor past `count` before releasing it.
    const uint64_t stride = kind == FreeKind::kDictTable ? 2 : 1;
    if (kind != FreeKind::kDictTable && kind != FreeKind::kListArray) {
      return Corrupt("intent free kind");
    }
    auto* words = reinterpret_cast<uint64_t*>(s.At(off, count * stride * 8, 64));
    if (words == nullptr) return Corrupt("freed table out of range");
    for (uint64_t j = in.sub_cursor.load(std::memory_order_relaxed); j < count;
         ++j) {
      const uint64_t e = words[j * stride + stride - 1];
      in.sub_cursor.store(j + 1, std::memory_order_release);
      if (e != kEmpty && e != kErased) {
        char* p = s.At(e, 8, 64);
        if (p == nullptr) return Corrupt("freed entry out of range");
        MP_RETURN_IF_ERROR(s.arena()->TryDeallocate(p));
        MP_FAULT_POINT("manager.txn.after_free");
      }
    }
    in.cursor.store(i + 1, std::memory_order_release);
    in.sub_cursor.store(0, std::memory_order_relaxed);
    MP_RETURN_IF_ERROR(s.arena()->TryDeallocate(words));
    MP_FAULT_POINT("manager.txn.after_free");
  }
  return absl::OkStatus();
}

// Phase 1: restores the logged words, newest first, and releases the allocs.
absl::Status Undo(Space s, ContainerHeader* h) {
  Intent& in = h->intent;
  const uint32_t nw = in.n_writes.load(std::memory_order_acquire);
  const uint32_t na = in.n_allocs.load(std::memory_order_acquire);
  if (nw > kMaxWrites || na > kMaxAllocs) return Corrupt("intent counts");
  for (uint32_t i = nw; i-- > 0;) {
    const uint64_t off = in.writes[i].offset.load(std::memory_order_relaxed);
    char* p;
    if (off >= (uint64_t{1} << 63)) {
      // A word of the header itself (outside the arena: the directory).
      const uint64_t rel = off - (uint64_t{1} << 63);
      if (rel % 8 != 0 || rel + 8 > sizeof(ContainerHeader)) {
        return Corrupt("intent write offset");
      }
      p = reinterpret_cast<char*>(h) + rel;
    } else {
      p = s.At(off, 8, 8);
      if (p == nullptr) return Corrupt("intent write offset");
    }
    Word(reinterpret_cast<uint64_t*>(p))
        .store(in.writes[i].old.load(std::memory_order_relaxed),
               std::memory_order_relaxed);
  }
  MP_FAULT_POINT("manager.recover.after_undo");
  for (uint32_t i = in.cursor.load(std::memory_order_relaxed); i < na; ++i) {
    const uint64_t off = in.allocs[i].load(std::memory_order_relaxed);
    in.cursor.store(i + 1, std::memory_order_release);
    char* p = s.At(off, 8, 64);
    if (p == nullptr) return Corrupt("intent alloc offset");
    MP_RETURN_IF_ERROR(s.arena()->TryDeallocate(p));
  }
  return absl::OkStatus();
}

}  // namespace

const char* KindName(uint32_t kind) {
  switch (static_cast<Kind>(kind)) {
    case Kind::kDirectory: return "directory";
    case Kind::kDict: return "dict";
    case Kind::kList: return "list";
    case Kind::kNamespace: return "namespace";
    case Kind::kValue: return "value";
    case Kind::kArray: return "array";
  }
  return "unknown";
}

absl::Status Recover(Space s, ContainerHeader* h) {
  const uint64_t st = h->state.load(std::memory_order_acquire);
  const uint64_t phase = Phase(st);
  if (phase == 0) return absl::OkStatus();
  absl::Status result;
  uint64_t next;
  if (phase == 1) {
    result = Undo(s, h);
    next = (st & ~kPhaseMask) + (uint64_t{1} << kRolledShift);
  } else if (phase == 2) {
    result = FinishFrees(s, h);
    next = (st & ~kPhaseMask) + (uint64_t{1} << kCompletedShift);
  } else {
    return Corrupt("phase");
  }
  if (!result.ok()) return result;
  h->state.store(next, std::memory_order_release);
  return absl::OkStatus();
}

Guard::Guard(Space s, ContainerHeader* h) : h_(h) {
  const LockResult r = h->lock.Acquire();
  held_ = Acquired(r);
  // A holder that died leaves phase != 0; so can one killed after its
  // commit store while a stale phase is seen here: recover in both cases.
  if (r == LockResult::kOwnerDied ||
      Phase(h->state.load(std::memory_order_acquire)) != 0) {
    status_ = Recover(s, h);
  }
}

Guard::~Guard() {
  if (held_) (void)h_->lock.Release();
}

Txn::Txn(Space s, ContainerHeader* h) : space_(s), h_(h) {
  Intent& in = h->intent;
  in.n_writes.store(0, std::memory_order_relaxed);
  in.n_allocs.store(0, std::memory_order_relaxed);
  in.n_frees.store(0, std::memory_order_relaxed);
  in.cursor.store(0, std::memory_order_relaxed);
  in.sub_cursor.store(0, std::memory_order_relaxed);
  SetPhase(h, 1);
  MP_FAULT_POINT("manager.txn.after_begin");
}

Txn::~Txn() {
  if (done_) return;
  // Rolled back in this process (an error midway): not a recovery, so not
  // counted; the phase returns to 0 with the counters as they were.
  (void)Undo(space_, h_);
  SetPhase(h_, 0);
}

char* Txn::Alloc(uint64_t size) {
  Intent& in = h_->intent;
  const uint32_t n = in.n_allocs.load(std::memory_order_relaxed);
  if (n >= kMaxAllocs) {
    std::abort();  // a bug in this file: every update allocates <= 4 blocks
  }
  void* p = space_.arena()->Allocate(size);
  if (p == nullptr) return nullptr;
  in.allocs[n].store(space_.OffsetOf(p), std::memory_order_relaxed);
  in.n_allocs.store(n + 1, std::memory_order_release);
  MP_FAULT_POINT("manager.txn.after_alloc");
  std::memset(p, 0, size);
  return static_cast<char*>(p);
}

void Txn::Write(uint64_t* word, uint64_t value) {
  Intent& in = h_->intent;
  const uint32_t n = in.n_writes.load(std::memory_order_relaxed);
  if (n >= kMaxWrites) std::abort();  // a bug: updates log <= 16 words
  const char* p = reinterpret_cast<const char*>(word);
  const char* hp = reinterpret_cast<const char*>(h_);
  uint64_t off;
  if (p >= hp && p < hp + sizeof(ContainerHeader)) {
    off = (uint64_t{1} << 63) + static_cast<uint64_t>(p - hp);
  } else {
    off = space_.OffsetOf(word);
  }
  in.writes[n].offset.store(off, std::memory_order_relaxed);
  in.writes[n].old.store(Word(word).load(std::memory_order_relaxed),
                         std::memory_order_relaxed);
  in.n_writes.store(n + 1, std::memory_order_release);
  MP_FAULT_POINT("manager.txn.after_log");
  Word(word).store(value, std::memory_order_release);
  MP_FAULT_POINT("manager.txn.after_write");
}

void Txn::FreeOnCommit(uint64_t offset, FreeKind kind, uint64_t count) {
  Intent& in = h_->intent;
  const uint32_t n = in.n_frees.load(std::memory_order_relaxed);
  if (n >= kMaxFrees) std::abort();  // a bug: updates free <= 4 blocks
  in.frees[n].offset.store(offset, std::memory_order_relaxed);
  in.frees[n].kind_count.store(
      (static_cast<uint64_t>(kind) << 56) | count, std::memory_order_relaxed);
  in.n_frees.store(n + 1, std::memory_order_release);
}

void Txn::Commit() {
  h_->intent.cursor.store(0, std::memory_order_relaxed);
  h_->intent.sub_cursor.store(0, std::memory_order_relaxed);
  SetPhase(h_, 2);
  MP_FAULT_POINT("manager.txn.after_commit");
  (void)FinishFrees(space_, h_);
  SetPhase(h_, 0);
  done_ = true;
}

uint64_t HashBytes(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull ^ bytes.size();
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < bytes.size(); ++i) {
    h = (h ^ static_cast<unsigned char>(bytes[i])) * 0x100000001b3ull;
  }
  // Final mix (murmur3's fmix64): spreads the low bits used as the index.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

// ---- Dict ------------------------------------------------------------------

namespace {

// Writes `len` bytes at `dst` through the log: the 8-byte words covering
// them are logged and rewritten (at most `max_words`; false, and nothing
// written, when more would be needed). `dst` lies in 8-aligned memory.
bool WriteBytes(Txn& t, char* dst, const void* src, uint64_t len,
                uint64_t max_words) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(dst);
  const uintptr_t begin = a / 8 * 8;
  const uintptr_t end = (a + len + 7) / 8 * 8;
  const uint64_t n = (end - begin) / 8;
  if (n > max_words || n > static_cast<uint64_t>(kMaxWrites)) return false;
  uint64_t words[kMaxWrites];
  std::memcpy(words, reinterpret_cast<const void*>(begin), end - begin);
  std::memcpy(reinterpret_cast<char*>(words) + (a - begin), src, len);
  auto* target = reinterpret_cast<uint64_t*>(begin);
  for (uint64_t i = 0; i < n; ++i) {
    if (target[i] != words[i]) t.Write(&target[i], words[i]);
  }
  return true;
}

struct DictEntry {
  uint64_t seq;
  uint32_t key_len;
  uint32_t value_len;
  // key bytes, then value bytes
};
constexpr uint64_t kEntryHead = sizeof(DictEntry);
constexpr uint64_t kMaxCapacity = uint64_t{1} << 40;

struct DictView {
  uint64_t* table = nullptr;  // 2 * capacity words
  uint64_t capacity = 0;
};

// The lookups (ViewDict, EntryAt, Find) are inlined into their callers: a
// set or get of a small key is a few dozen instructions beside the lock,
// and the calls and status objects between them cost a third of it.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline absl::StatusOr<DictView> ViewDict(
    Space s, ContainerHeader* h) {
  DictView v;
  v.capacity = h->f[1];
  if (h->f[0] == 0) {
    if (v.capacity != 0 || h->f[2] != 0) return Corrupt("dict without table");
    return v;
  }
  if (v.capacity == 0 || v.capacity > kMaxCapacity ||
      (v.capacity & (v.capacity - 1)) != 0) {
    return Corrupt("dict capacity");
  }
  v.table = reinterpret_cast<uint64_t*>(s.At(h->f[0], v.capacity * 16, 64));
  if (v.table == nullptr) return Corrupt("dict table out of range");
  if (h->f[2] > h->f[3] || h->f[3] > v.capacity) return Corrupt("dict counts");
  return v;
}

// The entry at `off`, checked; nullptr when out of range.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline const DictEntry* EntryAt(Space s,
                                                             uint64_t off) {
  const char* p = s.At(off, kEntryHead, 64);
  if (p == nullptr) return nullptr;
  const auto* e = reinterpret_cast<const DictEntry*>(p);
  if (s.At(off, kEntryHead + uint64_t{e->key_len} + e->value_len, 64) ==
      nullptr) {
    return nullptr;
  }
  return e;
}

std::string_view KeyOf(const DictEntry* e) {
  return {reinterpret_cast<const char*>(e + 1), e->key_len};
}
std::string_view ValueOf(const DictEntry* e) {
  return {reinterpret_cast<const char*>(e + 1) + e->key_len, e->value_len};
}

struct Probe {
  int64_t found = -1;     // slot holding the key
  int64_t free_slot = -1; // first empty or erased slot on the path
  const DictEntry* entry = nullptr;  // found's entry, checked
};

ABSL_ATTRIBUTE_ALWAYS_INLINE inline absl::StatusOr<Probe> Find(
    Space s, const DictView& v, uint64_t hash, std::string_view key) {
  Probe p;
  if (v.table == nullptr) return p;
  const uint64_t mask = v.capacity - 1;
  uint64_t i = hash & mask;
  for (uint64_t step = 0; step < v.capacity; ++step, i = (i + 1) & mask) {
    const uint64_t e = v.table[2 * i + 1];
    if (e == kEmpty) {
      if (p.free_slot < 0) p.free_slot = static_cast<int64_t>(i);
      return p;
    }
    if (e == kErased) {
      if (p.free_slot < 0) p.free_slot = static_cast<int64_t>(i);
      continue;
    }
    if (v.table[2 * i] != hash) continue;
    const DictEntry* entry = EntryAt(s, e);
    if (entry == nullptr) return Corrupt("dict entry out of range");
    if (KeyOf(entry) == key) {
      p.found = static_cast<int64_t>(i);
      p.entry = entry;
      return p;
    }
  }
  return p;
}

// Grows (or makes) the table so that one more key fits under 3/4 load.
absl::Status EnsureRoom(Txn& t, Space s, ContainerHeader* h, DictView* v) {
  if (v->table != nullptr && (h->f[3] + 1) * 4 <= v->capacity * 3) {
    return absl::OkStatus();
  }
  uint64_t cap = 8;
  while ((h->f[2] + 1) * 2 > cap) cap *= 2;
  char* mem = t.Alloc(cap * 16);
  if (mem == nullptr) return Full();
  auto* table = reinterpret_cast<uint64_t*>(mem);
  for (uint64_t i = 0; v->table != nullptr && i < v->capacity; ++i) {
    const uint64_t e = v->table[2 * i + 1];
    if (e == kEmpty || e == kErased) continue;
    uint64_t j = v->table[2 * i] & (cap - 1);
    while (table[2 * j + 1] != kEmpty) j = (j + 1) & (cap - 1);
    table[2 * j] = v->table[2 * i];
    table[2 * j + 1] = e;
  }
  const uint64_t old = h->f[0];
  t.Write(&h->f[0], s.OffsetOf(table));
  t.Write(&h->f[1], cap);
  t.Write(&h->f[3], h->f[2]);
  if (old != 0) t.FreeOnCommit(old);
  v->table = table;
  v->capacity = cap;
  return absl::OkStatus();
}

}  // namespace

void InitDict(ContainerHeader* h, Kind kind, uint64_t type_tag) {
  h->kind = static_cast<uint32_t>(kind);
  h->type_tag = type_tag;
}

absl::Status DictSetIn(Txn& t, Space s, ContainerHeader* h,
                       std::string_view key, std::string_view value) {
  if (key.size() > UINT32_MAX || value.size() > UINT32_MAX) {
    return absl::InvalidArgumentError("manager: key or value over 4 GiB");
  }
  absl::StatusOr<DictView> v = ViewDict(s, h);
  if (!v.ok()) return v.status();
  const uint64_t hash = HashBytes(key);
  absl::StatusOr<Probe> p = Find(s, *v, hash, key);
  if (!p.ok()) return p.status();
  uint64_t seq;
  if (p->found < 0) {
    MP_RETURN_IF_ERROR(EnsureRoom(t, s, h, &*v));
    p = Find(s, *v, hash, key);
    if (!p.ok()) return p.status();
    seq = h->f[4];
  } else {
    const uint64_t eoff = v->table[2 * p->found + 1];
    const DictEntry* old = EntryAt(s, eoff);
    seq = old->seq;
    // Same size: overwrite the value in place through the log (no block
    // allocated or freed), when it spans at most 8 words.
    if (old->value_len == value.size()) {
      char* dst = s.base() + eoff + kEntryHead + old->key_len;
      if (WriteBytes(t, dst, value.data(), value.size(), 8)) {
        return absl::OkStatus();
      }
    }
  }
  char* mem = t.Alloc(kEntryHead + key.size() + value.size());
  if (mem == nullptr) return Full();
  auto* e = reinterpret_cast<DictEntry*>(mem);
  e->seq = seq;
  e->key_len = static_cast<uint32_t>(key.size());
  e->value_len = static_cast<uint32_t>(value.size());
  std::memcpy(mem + kEntryHead, key.data(), key.size());
  std::memcpy(mem + kEntryHead + key.size(), value.data(), value.size());
  const uint64_t eoff = s.OffsetOf(mem);
  if (p->found >= 0) {
    uint64_t* slot = &v->table[2 * p->found + 1];
    t.FreeOnCommit(*slot);
    t.Write(slot, eoff);
    return absl::OkStatus();
  }
  if (p->free_slot < 0) return Corrupt("dict table without a free slot");
  uint64_t* slot = &v->table[2 * p->free_slot];
  const bool was_empty = slot[1] == kEmpty;
  t.Write(&slot[0], hash);
  t.Write(&slot[1], eoff);
  t.Write(&h->f[2], h->f[2] + 1);
  if (was_empty) t.Write(&h->f[3], h->f[3] + 1);
  t.Write(&h->f[4], seq + 1);
  return absl::OkStatus();
}

namespace {

// The commonest update, d[k] = v for a key already there with a value of
// the same encoded size that lies within one aligned 8-byte word (an int
// next to its key, say): one atomic store, which a kill leaves either done
// or not done, so it needs no transaction (no intent, no phase). True when
// it applied; false (nothing written) when the update needs the general
// path.
bool SetOneWordInPlace(Space s, ContainerHeader* h, std::string_view key,
                       std::string_view value) {
  absl::StatusOr<DictView> v = ViewDict(s, h);
  if (!v.ok() || v->table == nullptr) return false;
  absl::StatusOr<Probe> p = Find(s, *v, HashBytes(key), key);
  if (!p.ok() || p->found < 0) return false;
  const DictEntry* e = p->entry;
  if (e->value_len != value.size() || value.empty()) return false;
  char* dst = const_cast<char*>(ValueOf(e).data());
  const uintptr_t a = reinterpret_cast<uintptr_t>(dst);
  const uintptr_t word = a / 8 * 8;
  if (a + value.size() > word + 8) return false;
  uint64_t w = std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(word))
                   .load(std::memory_order_relaxed);
  std::memcpy(reinterpret_cast<char*>(&w) + (a - word), value.data(),
              value.size());
  std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(word))
      .store(w, std::memory_order_release);
  return true;
}

}  // namespace

absl::Status DictSet(Space s, ContainerHeader* h, std::string_view key,
                     std::string_view value) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  if (SetOneWordInPlace(s, h, key, value)) return absl::OkStatus();
  Txn t(s, h);
  MP_RETURN_IF_ERROR(DictSetIn(t, s, h, key, value));
  t.Commit();
  return absl::OkStatus();
}

absl::StatusOr<std::string> DictGetLocked(Space s, ContainerHeader* h,
                                          std::string_view key) {
  absl::StatusOr<DictView> v = ViewDict(s, h);
  if (!v.ok()) return v.status();
  absl::StatusOr<Probe> p = Find(s, *v, HashBytes(key), key);
  if (!p.ok()) return p.status();
  if (p->found < 0) return absl::NotFoundError("manager: key not found");
  return std::string(ValueOf(p->entry));
}

absl::StatusOr<std::string> DictGet(Space s, ContainerHeader* h,
                                    std::string_view key) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  return DictGetLocked(s, h, key);
}

absl::StatusOr<bool> DictContains(Space s, ContainerHeader* h,
                                  std::string_view key) {
  absl::StatusOr<std::string> v = DictGet(s, h, key);
  if (v.ok()) return true;
  if (absl::IsNotFound(v.status())) return false;
  return v.status();
}

absl::Status DictErase(Space s, ContainerHeader* h, std::string_view key,
                       std::string* old) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<DictView> v = ViewDict(s, h);
  if (!v.ok()) return v.status();
  absl::StatusOr<Probe> p = Find(s, *v, HashBytes(key), key);
  if (!p.ok()) return p.status();
  if (p->found < 0) return absl::NotFoundError("manager: key not found");
  uint64_t* slot = &v->table[2 * p->found + 1];
  if (old != nullptr) *old = std::string(ValueOf(EntryAt(s, *slot)));
  Txn t(s, h);
  t.FreeOnCommit(*slot);
  t.Write(slot, kErased);
  t.Write(&h->f[2], h->f[2] - 1);
  t.Commit();
  return absl::OkStatus();
}

absl::Status DictClear(Space s, ContainerHeader* h) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<DictView> v = ViewDict(s, h);
  if (!v.ok()) return v.status();
  if (v->table == nullptr) return absl::OkStatus();
  Txn t(s, h);
  t.FreeOnCommit(h->f[0], FreeKind::kDictTable, v->capacity);
  t.Write(&h->f[0], 0);
  t.Write(&h->f[1], 0);
  t.Write(&h->f[2], 0);
  t.Write(&h->f[3], 0);
  t.Commit();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> DictSize(Space s, ContainerHeader* h) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  return h->f[2];
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> DictItems(
    Space s, ContainerHeader* h) {
  std::vector<std::pair<uint64_t, std::pair<std::string, std::string>>> all;
  {
    Guard g(s, h);
    MP_RETURN_IF_ERROR(g.status());
    absl::StatusOr<DictView> v = ViewDict(s, h);
    if (!v.ok()) return v.status();
    all.reserve(h->f[2]);
    for (uint64_t i = 0; v->table != nullptr && i < v->capacity; ++i) {
      const uint64_t e = v->table[2 * i + 1];
      if (e == kEmpty || e == kErased) continue;
      const DictEntry* entry = EntryAt(s, e);
      if (entry == nullptr) return Corrupt("dict entry out of range");
      all.push_back({entry->seq,
                     {std::string(KeyOf(entry)), std::string(ValueOf(entry))}});
    }
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(all.size());
  for (auto& [seq, kv] : all) out.push_back(std::move(kv));
  return out;
}

// ---- List ------------------------------------------------------------------

namespace {

struct ListView {
  uint64_t* array = nullptr;
  uint64_t capacity = 0;
  uint64_t size = 0;
};

absl::StatusOr<ListView> ViewList(Space s, ContainerHeader* h) {
  ListView v{nullptr, h->f[1], h->f[2]};
  if (v.size > v.capacity || v.capacity > kMaxCapacity) {
    return Corrupt("list size");
  }
  if (h->f[0] == 0) {
    if (v.capacity != 0) return Corrupt("list without array");
    return v;
  }
  v.array = reinterpret_cast<uint64_t*>(s.At(h->f[0], v.capacity * 8, 64));
  if (v.array == nullptr) return Corrupt("list array out of range");
  return v;
}

absl::StatusOr<std::string_view> ListEntry(Space s, uint64_t off) {
  const char* p = s.At(off, 8, 64);
  if (p == nullptr) return Corrupt("list entry out of range");
  uint64_t len;
  std::memcpy(&len, p, 8);
  if (len > (uint64_t{1} << 40) || s.At(off, 8 + len, 64) == nullptr) {
    return Corrupt("list entry length");
  }
  return std::string_view(p + 8, len);
}

// A new entry holding `value` (nullptr when full).
char* NewListEntry(Txn& t, std::string_view value) {
  char* mem = t.Alloc(8 + value.size());
  if (mem == nullptr) return nullptr;
  const uint64_t len = value.size();
  std::memcpy(mem, &len, 8);
  std::memcpy(mem + 8, value.data(), value.size());
  return mem;
}

// Replaces the array by a copy with `skip` removed (-1: none) and `insert`
// (an entry offset, 0: none) placed at `at`.
absl::Status ReplaceArray(Txn& t, Space s, ContainerHeader* h,
                          const ListView& v, int64_t skip, uint64_t insert,
                          uint64_t at) {
  const uint64_t new_size = v.size - (skip >= 0 ? 1 : 0) + (insert ? 1 : 0);
  uint64_t cap = std::max<uint64_t>(8, v.capacity);
  while (cap < new_size) cap *= 2;
  char* mem = t.Alloc(cap * 8);
  if (mem == nullptr) return Full();
  auto* out = reinterpret_cast<uint64_t*>(mem);
  uint64_t n = 0;
  for (uint64_t i = 0; i <= v.size; ++i) {
    if (insert != 0 && i == at) out[n++] = insert;
    if (i < v.size && static_cast<int64_t>(i) != skip) out[n++] = v.array[i];
  }
  const uint64_t old = h->f[0];
  t.Write(&h->f[0], s.OffsetOf(mem));
  t.Write(&h->f[1], cap);
  t.Write(&h->f[2], new_size);
  if (old != 0) t.FreeOnCommit(old);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Index(const ListView& v, int64_t i) {
  const int64_t n = static_cast<int64_t>(v.size);
  if (i < 0) i += n;
  if (i < 0 || i >= n) {
    return absl::OutOfRangeError(
        absl::StrCat("manager: list index out of range (", i, " of ", n, ")"));
  }
  return static_cast<uint64_t>(i);
}

}  // namespace

void InitList(ContainerHeader* h, uint64_t type_tag) {
  h->kind = static_cast<uint32_t>(Kind::kList);
  h->type_tag = type_tag;
}

absl::Status ListAppend(Space s, ContainerHeader* h, std::string_view value) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  Txn t(s, h);
  char* e = NewListEntry(t, value);
  if (e == nullptr) return Full();
  if (v->size == v->capacity) {
    MP_RETURN_IF_ERROR(ReplaceArray(t, s, h, *v, -1, s.OffsetOf(e), v->size));
  } else {
    // The slot past the end is nobody's: written without logging.
    v->array[v->size] = s.OffsetOf(e);
    t.Write(&h->f[2], v->size + 1);
  }
  t.Commit();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ListAt(Space s, ContainerHeader* h, int64_t i) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  absl::StatusOr<uint64_t> k = Index(*v, i);
  if (!k.ok()) return k.status();
  absl::StatusOr<std::string_view> e = ListEntry(s, v->array[*k]);
  if (!e.ok()) return e.status();
  return std::string(*e);
}

absl::Status ListSet(Space s, ContainerHeader* h, int64_t i,
                     std::string_view value) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  absl::StatusOr<uint64_t> k = Index(*v, i);
  if (!k.ok()) return k.status();
  Txn t(s, h);
  char* e = NewListEntry(t, value);
  if (e == nullptr) return Full();
  t.FreeOnCommit(v->array[*k]);
  t.Write(&v->array[*k], s.OffsetOf(e));
  t.Commit();
  return absl::OkStatus();
}

absl::Status ListInsert(Space s, ContainerHeader* h, int64_t i,
                        std::string_view value) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  const int64_t n = static_cast<int64_t>(v->size);
  if (i < 0) i = std::max<int64_t>(0, i + n);
  if (i > n) i = n;
  Txn t(s, h);
  char* e = NewListEntry(t, value);
  if (e == nullptr) return Full();
  MP_RETURN_IF_ERROR(ReplaceArray(t, s, h, *v, -1, s.OffsetOf(e),
                                  static_cast<uint64_t>(i)));
  t.Commit();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ListPop(Space s, ContainerHeader* h, int64_t i) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  if (v->size == 0) return absl::OutOfRangeError("manager: pop from empty list");
  absl::StatusOr<uint64_t> k = Index(*v, i);
  if (!k.ok()) return k.status();
  absl::StatusOr<std::string_view> e = ListEntry(s, v->array[*k]);
  if (!e.ok()) return e.status();
  std::string out(*e);
  Txn t(s, h);
  t.FreeOnCommit(v->array[*k]);
  if (*k + 1 == v->size) {
    t.Write(&h->f[2], v->size - 1);
  } else {
    MP_RETURN_IF_ERROR(
        ReplaceArray(t, s, h, *v, static_cast<int64_t>(*k), 0, 0));
  }
  t.Commit();
  return out;
}

absl::Status ListRemove(Space s, ContainerHeader* h, std::string_view value) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  for (uint64_t k = 0; k < v->size; ++k) {
    absl::StatusOr<std::string_view> e = ListEntry(s, v->array[k]);
    if (!e.ok()) return e.status();
    if (*e != value) continue;
    Txn t(s, h);
    t.FreeOnCommit(v->array[k]);
    if (k + 1 == v->size) {
      t.Write(&h->f[2], v->size - 1);
    } else {
      MP_RETURN_IF_ERROR(
          ReplaceArray(t, s, h, *v, static_cast<int64_t>(k), 0, 0));
    }
    t.Commit();
    return absl::OkStatus();
  }
  return absl::NotFoundError("manager: list.remove(x): x not in list");
}

absl::Status ListClear(Space s, ContainerHeader* h) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  if (v->array == nullptr) return absl::OkStatus();
  Txn t(s, h);
  t.FreeOnCommit(h->f[0], FreeKind::kListArray, v->size);
  t.Write(&h->f[0], 0);
  t.Write(&h->f[1], 0);
  t.Write(&h->f[2], 0);
  t.Commit();
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ListSize(Space s, ContainerHeader* h) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  return v->size;
}

absl::StatusOr<std::vector<std::string>> ListSnapshot(Space s,
                                                      ContainerHeader* h) {
  Guard g(s, h);
  MP_RETURN_IF_ERROR(g.status());
  absl::StatusOr<ListView> v = ViewList(s, h);
  if (!v.ok()) return v.status();
  std::vector<std::string> out;
  out.reserve(v->size);
  for (uint64_t k = 0; k < v->size; ++k) {
    absl::StatusOr<std::string_view> e = ListEntry(s, v->array[k]);
    if (!e.ok()) return e.status();
    out.emplace_back(*e);
  }
  return out;
}

// ---- Value / Array ---------------------------------------------------------

bool InitCells(Txn& t, Space s, ContainerHeader* h, Kind kind,
               uint64_t type_tag, uint64_t elem_size, uint64_t count) {
  const uint64_t bytes = std::max<uint64_t>(8, (elem_size * count + 7) / 8 * 8);
  char* mem = t.Alloc(bytes);
  if (mem == nullptr) return false;
  h->kind = static_cast<uint32_t>(kind);
  h->type_tag = type_tag;
  h->f[0] = elem_size;
  h->f[1] = count;
  h->f[2] = s.OffsetOf(mem);
  return true;
}

char* CellsData(Space s, ContainerHeader* h) {
  const uint64_t elem = h->f[0], count = h->f[1];
  if (elem == 0 || elem > (1u << 20) || count > (uint64_t{1} << 36)) {
    return nullptr;
  }
  return s.At(h->f[2], std::max<uint64_t>(8, (elem * count + 7) / 8 * 8), 64);
}

void CellsWrite(Space s, ContainerHeader* h, char* dst, const void* src,
                uint64_t len) {
  Txn t(s, h);
  // Value/Array limit an element to 120 bytes: at most 16 words.
  if (!WriteBytes(t, dst, src, len, kMaxWrites)) std::abort();
  t.Commit();
}

absl::Status CheckConsistent(Space s, ContainerHeader* h) {
  if (Phase(h->state.load(std::memory_order_acquire)) != 0) {
    return Corrupt("an update is still open");
  }
  switch (static_cast<Kind>(h->kind)) {
    case Kind::kDirectory:
    case Kind::kDict:
    case Kind::kNamespace: {
      absl::StatusOr<DictView> v = ViewDict(s, h);
      if (!v.ok()) return v.status();
      uint64_t live = 0, used = 0, max_seq = 0;
      for (uint64_t i = 0; v->table != nullptr && i < v->capacity; ++i) {
        const uint64_t e = v->table[2 * i + 1];
        if (e == kEmpty) continue;
        ++used;
        if (e == kErased) continue;
        ++live;
        const DictEntry* entry = EntryAt(s, e);
        if (entry == nullptr) return Corrupt("dict entry out of range");
        if (HashBytes(KeyOf(entry)) != v->table[2 * i]) {
          return Corrupt("dict slot hash");
        }
        absl::StatusOr<Probe> p = Find(s, *v, v->table[2 * i], KeyOf(entry));
        if (!p.ok()) return p.status();
        if (p->found != static_cast<int64_t>(i)) {
          return Corrupt("dict key unreachable or duplicated");
        }
        max_seq = std::max(max_seq, entry->seq + 1);
      }
      if (live != h->f[2] || used != h->f[3]) return Corrupt("dict count");
      if (max_seq > h->f[4]) return Corrupt("dict sequence");
      return absl::OkStatus();
    }
    case Kind::kList: {
      absl::StatusOr<ListView> v = ViewList(s, h);
      if (!v.ok()) return v.status();
      for (uint64_t k = 0; k < v->size; ++k) {
        absl::StatusOr<std::string_view> e = ListEntry(s, v->array[k]);
        if (!e.ok()) return e.status();
      }
      return absl::OkStatus();
    }
    case Kind::kValue:
    case Kind::kArray:
      return CellsData(s, h) == nullptr ? Corrupt("cells") : absl::OkStatus();
  }
  return Corrupt("kind");
}

}  // namespace mp::manager_internal
