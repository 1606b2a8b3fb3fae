// mp/manager/manager.h
// -----------------------------------------------------------------------------
// Manager: multiprocessing.Manager()'s shared dict, list, Namespace, Value and
// Array, kept in shared memory instead of a server process, crash safe.
//
//   mp::Manager mgr;                            // anonymous: children inherit
//   mp::Dict<int, int> d = mgr.dict<int, int>();
//   mp::Process p([&] { MP_CHECK_OK(d.Set(1, 2)); });
//   ... p.Start(); p.Join();
//   std::cout << "Results: " << d << "\n";      // Results: {1: 2}
//
//   // Unrelated processes on one host (Python's Manager(address=...)):
//   auto m = mp::Manager::Create("/jobs");       // 0600, O_EXCL
//   auto m2 = mp::Manager::Open("/jobs");        // elsewhere
//   auto results = m2->dict<std::string, int64_t>("results");
//
// Containers are found by name inside their manager: dict<K, V>("results")
// returns the dict of that name, creating it the first time. Asking for a
// name that holds another kind or element types is InvalidArgument (the
// type tag recorded at creation is checked). Unnamed containers get a
// fresh name of their own. Handles are cheap to copy; a copy made before
// Process::Start() works in the child. Every handle keeps the segment mapped.
//
// Values: keys and values go through mp::Codec (mp/codec/codec.h): ints,
// strings, vectors, pairs, optionals, your own types with a Codec. They are
// stored as bytes in the segment; what a call returns is a copy.
//
// Errors: calls return absl::Status / StatusOr. NotFound for a missing key
// (Python's KeyError), a missing list value (ValueError) or an attribute
// never set (AttributeError); OutOfRange for a bad list index (IndexError);
// ResourceExhausted when the segment is full (the container is unchanged);
// DataLoss when the segment's bytes are corrupt (nothing is followed out of
// its bounds); InvalidArgument for a name of another type. Making the
// Manager itself throws mp::Error from its constructor, or use Make().
//
// Capacity: one segment (default 64 MiB of address space; pages are only
// committed as they are used) holds every container; erased entries'
// memory is reused.
//
// Crash safety: every update of a container runs under that container's
// crash-safe lock (mp::ResidentLock) as a logged transaction
// (internal/store.h): its undo record is written before any shared word
// changes, and the commit is one store. If the updating process dies at any
// point, the next caller finds the lock's owner dead and rolls the update
// back (before the commit) or finishes it (after); rolled_back() and
// completed() count those. A killed process may leak at most one block.
//
// Concurrency: every call is atomic with respect to the others on the same
// container. Readers take the lock too (a reader copying an entry must not
// see it freed under it), so readers of one container do not run in
// parallel. Value<T>::Get of T of at most 8 bytes and Value<integer>::Add
// are single atomic instructions without the lock.
// Update() and Extend() apply their items one by one, each atomically.
//
// Printing: operator<< writes a dict as {0: 0, 1: 2} (insertion order), a
// list as ['0', '1'] (strings quoted), as Python's repr does.

#ifndef MP_MANAGER_MANAGER_H_
#define MP_MANAGER_MANAGER_H_

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "mp/core/error.h"
#include "mp/core/segment_header.h"
#include "mp/core/shared_memory.h"
#include "mp/manager/internal/store.h"
#include "mp/codec/codec.h"

namespace mp {

namespace manager_internal {

struct Segment;

// Finds or creates the container `name` (empty: a fresh unnamed one) of
// `kind` with `type_tag`. Value/Array: `elem_size` * `count` bytes of cells,
// filled from `initial` (elem_size * count bytes) when created.
absl::StatusOr<ContainerHeader*> FindOrCreate(Segment* seg,
                                              std::string_view name,
                                              Kind kind, uint64_t type_tag,
                                              uint64_t elem_size,
                                              uint64_t count,
                                              const void* initial);
Space SpaceOf(const Segment* seg);

template <class T>
std::string Encode(const T& v) {
  std::string out;
  EncodeMessage(v, &out);
  return out;
}
// The encoding of `v` for a call that reads it before it returns: a view of
// v's own bytes when its codec is the plain byte copy (an int, a struct of
// them: Codec's encoding is exactly those bytes), no string made; otherwise
// the encoded string, held here.
template <class T>
class Encoded {
 public:
  explicit Encoded(const T& v) {
    if constexpr (CodecCopiesBytes<T>) {
      view_ = std::string_view(reinterpret_cast<const char*>(&v), sizeof(T));
    } else {
      EncodeMessage(v, &bytes_);
      view_ = bytes_;
    }
  }
  Encoded(const Encoded&) = delete;
  Encoded& operator=(const Encoded&) = delete;
  operator std::string_view() const { return view_; }

 private:
  std::string bytes_;
  std::string_view view_;
};

template <class T>
absl::StatusOr<T> Decode(const std::string& bytes) {
  T v{};
  absl::Status st = DecodeMessage(bytes.data(), bytes.size(), &v);
  if (!st.ok()) return st;
  return v;
}

template <class T>
std::string TypeName() {
  return typeid(T).name();
}

// Python's repr of a value, for printing.
template <class T>
void AppendRepr(std::string* out, const T& v);
inline void AppendQuoted(std::string* out, std::string_view s) {
  const char quote = (s.find('\'') != std::string_view::npos &&
                      s.find('"') == std::string_view::npos)
                         ? '"'
                         : '\'';
  out->push_back(quote);
  for (char c : s) {
    if (c == quote || c == '\\') out->push_back('\\');
    if (c == '\n') {
      out->append("\\n");
      continue;
    }
    out->push_back(c);
  }
  out->push_back(quote);
}
template <class T>
void AppendRepr(std::string* out, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    out->append(v ? "True" : "False");
  } else if constexpr (std::is_same_v<T, char>) {
    AppendQuoted(out, std::string_view(&v, 1));
  } else if constexpr (std::is_arithmetic_v<T>) {
    absl::StrAppend(out, v);
  } else if constexpr (std::is_convertible_v<const T&, std::string_view>) {
    AppendQuoted(out, std::string_view(v));
  } else if constexpr (requires { v.begin(); v.end(); }) {
    out->push_back('[');
    bool first = true;
    for (const auto& x : v) {
      if (!first) out->append(", ");
      first = false;
      AppendRepr(out, x);
    }
    out->push_back(']');
  } else if constexpr (requires { v.first; v.second; }) {
    out->push_back('(');
    AppendRepr(out, v.first);
    out->append(", ");
    AppendRepr(out, v.second);
    out->push_back(')');
  } else {
    out->append("<object>");
  }
}

// Common to every container handle.
class Handle {
 public:
  // Interrupted updates of this container that a later caller rolled back
  // (died before the commit) or completed (died after it).
  uint64_t rolled_back() const {
    return RolledBack(header_->state.load(std::memory_order_acquire));
  }
  uint64_t completed() const {
    return Completed(header_->state.load(std::memory_order_acquire));
  }
  // Checks the container's structure (first recovering an interrupted
  // update): DataLoss on any inconsistency. For tests and tools.
  absl::Status CheckConsistent() const {
    Guard g(space(), header_);
    if (!g.status().ok()) return g.status();
    return manager_internal::CheckConsistent(space(), header_);
  }
  bool valid() const { return header_ != nullptr; }

 protected:
  Handle() = default;
  Handle(std::shared_ptr<Segment> seg, ContainerHeader* h)
      : seg_(std::move(seg)), header_(h) {}
  Space space() const { return SpaceOf(seg_.get()); }

  std::shared_ptr<Segment> seg_;
  ContainerHeader* header_ = nullptr;
};

}  // namespace manager_internal

class Manager;

// Python's repr of a codec-able value: 3, 'text', ['a', 'b'], (1, 'x').
template <class T>
std::string Repr(const T& v) {
  std::string out;
  manager_internal::AppendRepr(&out, v);
  return out;
}

// A shared dict: multiprocessing.Manager().dict().
template <class K, class V>
class Dict : public manager_internal::Handle {
 public:
  Dict() = default;

  // d[key] = value. ResourceExhausted when the segment is full.
  absl::Status Set(const K& key, const V& value) {
    return manager_internal::DictSet(space(), header_,
                                     manager_internal::Encoded<K>(key),
                                     manager_internal::Encoded<V>(value));
  }
  // d[key]; NotFound (KeyError) when absent.
  absl::StatusOr<V> Get(const K& key) const {
    absl::StatusOr<std::string> b = manager_internal::DictGet(
        space(), header_, manager_internal::Encoded<K>(key));
    if (!b.ok()) return b.status();
    return manager_internal::Decode<V>(*b);
  }
  // d.get(key, default).
  absl::StatusOr<V> GetOr(const K& key, V default_value) const {
    absl::StatusOr<V> v = Get(key);
    if (absl::IsNotFound(v.status())) return default_value;
    return v;
  }
  // del d[key]; NotFound when absent.
  absl::Status Erase(const K& key) {
    return manager_internal::DictErase(space(), header_,
                                       manager_internal::Encoded<K>(key));
  }
  // d.pop(key); NotFound when absent.
  absl::StatusOr<V> Pop(const K& key) {
    std::string old;
    absl::Status st = manager_internal::DictErase(
        space(), header_, manager_internal::Encoded<K>(key), &old);
    if (!st.ok()) return st;
    return manager_internal::Decode<V>(old);
  }
  // key in d.
  absl::StatusOr<bool> Contains(const K& key) const {
    return manager_internal::DictContains(space(), header_,
                                          manager_internal::Encoded<K>(key));
  }
  // len(d).
  absl::StatusOr<size_t> Size() const {
    absl::StatusOr<uint64_t> n = manager_internal::DictSize(space(), header_);
    if (!n.ok()) return n.status();
    return static_cast<size_t>(*n);
  }
  // d.update(pairs): each pair set atomically, in order; stops at the
  // first error (the pairs before it are set).
  template <class Range>
  absl::Status Update(const Range& pairs) {
    for (const auto& [k, v] : pairs) {
      absl::Status st = Set(k, v);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  absl::Status Update(std::initializer_list<std::pair<K, V>> pairs) {
    return Update<std::initializer_list<std::pair<K, V>>>(pairs);
  }
  // d.items(), d.keys(), d.values(): snapshots in insertion order.
  absl::StatusOr<std::vector<std::pair<K, V>>> Items() const {
    auto raw = manager_internal::DictItems(space(), header_);
    if (!raw.ok()) return raw.status();
    std::vector<std::pair<K, V>> out;
    out.reserve(raw->size());
    for (auto& [kb, vb] : *raw) {
      absl::StatusOr<K> k = manager_internal::Decode<K>(kb);
      if (!k.ok()) return k.status();
      absl::StatusOr<V> v = manager_internal::Decode<V>(vb);
      if (!v.ok()) return v.status();
      out.emplace_back(*std::move(k), *std::move(v));
    }
    return out;
  }
  absl::StatusOr<std::vector<K>> Keys() const {
    auto items = Items();
    if (!items.ok()) return items.status();
    std::vector<K> out;
    for (auto& kv : *items) out.push_back(std::move(kv.first));
    return out;
  }
  absl::StatusOr<std::vector<V>> Values() const {
    auto items = Items();
    if (!items.ok()) return items.status();
    std::vector<V> out;
    for (auto& kv : *items) out.push_back(std::move(kv.second));
    return out;
  }
  // d.clear(): atomic.
  absl::Status Clear() {
    return manager_internal::DictClear(space(), header_);
  }

  // Python's repr: {0: 0, 1: 2}.
  std::string Repr() const {
    auto items = Items();
    if (!items.ok()) return "<dict: " + items.status().ToString() + ">";
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : *items) {
      if (!first) out.append(", ");
      first = false;
      manager_internal::AppendRepr(&out, k);
      out.append(": ");
      manager_internal::AppendRepr(&out, v);
    }
    out.push_back('}');
    return out;
  }
  friend std::ostream& operator<<(std::ostream& os, const Dict& d) {
    return os << d.Repr();
  }

 private:
  friend class Manager;
  using Handle::Handle;
};

// A shared list: multiprocessing.Manager().list().
template <class T>
class List : public manager_internal::Handle {
 public:
  List() = default;

  absl::Status Append(const T& v) {
    return manager_internal::ListAppend(space(), header_,
                                        manager_internal::Encoded<T>(v));
  }
  // Each item appended atomically, in order; stops at the first error.
  template <class Range>
  absl::Status Extend(const Range& items) {
    for (const auto& v : items) {
      absl::Status st = Append(v);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
  absl::Status Extend(std::initializer_list<T> items) {
    return Extend<std::initializer_list<T>>(items);
  }
  // l[i] (negative i counts from the end); OutOfRange (IndexError).
  absl::StatusOr<T> At(int64_t i) const {
    absl::StatusOr<std::string> b =
        manager_internal::ListAt(space(), header_, i);
    if (!b.ok()) return b.status();
    return manager_internal::Decode<T>(*b);
  }
  // l[i] = v; OutOfRange (IndexError).
  absl::Status Set(int64_t i, const T& v) {
    return manager_internal::ListSet(space(), header_, i,
                                     manager_internal::Encoded<T>(v));
  }
  // l.insert(i, v), Python's clamping.
  absl::Status Insert(int64_t i, const T& v) {
    return manager_internal::ListInsert(space(), header_, i,
                                        manager_internal::Encoded<T>(v));
  }
  // l.pop(i); OutOfRange for an empty list or a bad index.
  absl::StatusOr<T> Pop(int64_t i = -1) {
    absl::StatusOr<std::string> b =
        manager_internal::ListPop(space(), header_, i);
    if (!b.ok()) return b.status();
    return manager_internal::Decode<T>(*b);
  }
  // l.remove(v): the first equal element; NotFound (ValueError).
  absl::Status Remove(const T& v) {
    return manager_internal::ListRemove(space(), header_,
                                        manager_internal::Encoded<T>(v));
  }
  absl::Status Clear() {
    return manager_internal::ListClear(space(), header_);
  }
  absl::StatusOr<size_t> Size() const {
    absl::StatusOr<uint64_t> n = manager_internal::ListSize(space(), header_);
    if (!n.ok()) return n.status();
    return static_cast<size_t>(*n);
  }
  // list(l): a copy of every element.
  absl::StatusOr<std::vector<T>> Snapshot() const {
    auto raw = manager_internal::ListSnapshot(space(), header_);
    if (!raw.ok()) return raw.status();
    std::vector<T> out;
    out.reserve(raw->size());
    for (const std::string& b : *raw) {
      absl::StatusOr<T> v = manager_internal::Decode<T>(b);
      if (!v.ok()) return v.status();
      out.push_back(*std::move(v));
    }
    return out;
  }
  // Python's repr: ['0', '1'].
  std::string Repr() const {
    auto items = Snapshot();
    if (!items.ok()) return "<list: " + items.status().ToString() + ">";
    std::string out;
    manager_internal::AppendRepr(&out, *items);
    return out;
  }
  friend std::ostream& operator<<(std::ostream& os, const List& l) {
    return os << l.Repr();
  }

 private:
  friend class Manager;
  using Handle::Handle;
};

// A shared namespace: multiprocessing.Manager().Namespace(). Attributes of
// any codec-able type. Get returns a copy: changing it changes nothing in
// the namespace until it is Set again (the seed's lesson).
class Namespace : public manager_internal::Handle {
 public:
  Namespace() = default;

  // ns.name = value (any earlier value of any type is replaced).
  template <class T>
  absl::Status Set(std::string_view name, const T& value) {
    std::string bytes(8, '\0');
    const uint64_t tag = TypeTag(manager_internal::TypeName<T>());
    std::memcpy(bytes.data(), &tag, 8);
    bytes += manager_internal::Encode(value);
    return manager_internal::DictSet(space(), header_, name, bytes);
  }
  // ns.name: NotFound ("'Namespace' object has no attribute 'name'") when
  // never set; InvalidArgument when it holds another type.
  template <class T>
  absl::StatusOr<T> Get(std::string_view name) const {
    absl::StatusOr<std::string> b =
        manager_internal::DictGet(space(), header_, name);
    if (absl::IsNotFound(b.status())) {
      return absl::NotFoundError(absl::StrCat(
          "'Namespace' object has no attribute '", std::string(name), "'"));
    }
    if (!b.ok()) return b.status();
    uint64_t tag = 0;
    if (b->size() < 8) return absl::DataLossError("namespace: short value");
    std::memcpy(&tag, b->data(), 8);
    if (tag != TypeTag(manager_internal::TypeName<T>())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "namespace: attribute '", std::string(name),
          "' holds another type than the one asked for"));
    }
    return manager_internal::Decode<T>(b->substr(8));
  }
  absl::StatusOr<bool> Has(std::string_view name) const {
    return manager_internal::DictContains(space(), header_, name);
  }
  // del ns.name; NotFound when never set.
  absl::Status Erase(std::string_view name) {
    return manager_internal::DictErase(space(), header_, name);
  }

 private:
  friend class Manager;
  using Handle::Handle;
};

// The lock of a Value or Array (get_lock()): crash safe; a thread holding it
// may call the container's Get/Set (they do not lock again). Acquiring it
// after its holder died repairs the container before returning.
class ManagedLock {
 public:
  void lock() { (void)Acquire(); }
  bool try_lock() { return Acquire(Deadline::Past()); }
  void unlock() { (void)header_->lock.Release(); }
  // Python's acquire(block=True, timeout=None).
  bool Acquire(bool block = true,
               std::optional<double> timeout_seconds = std::nullopt) {
    return Acquire(block ? Deadline::FromPython(timeout_seconds)
                         : Deadline::Past());
  }
  bool Acquire(Deadline deadline) {
    const LockResult r = header_->lock.Acquire(deadline);
    if (r == LockResult::kOwnerDied) {
      (void)manager_internal::Recover(space_, header_);
    }
    return Acquired(r);
  }
  template <class Rep, class Period>
  bool Acquire(std::chrono::duration<Rep, Period> timeout) {
    return Acquire(Deadline::After(timeout));
  }
  absl::Status Release() { return header_->lock.Release(); }

 private:
  template <class>
  friend class Value;
  template <class>
  friend class Array;
  ManagedLock(manager_internal::Space s, manager_internal::ContainerHeader* h)
      : space_(s), header_(h) {}
  manager_internal::Space space_;
  manager_internal::ContainerHeader* header_;
};

// A shared value with its own lock: multiprocessing.Value.
template <class T>
class Value : public manager_internal::Handle {
  static_assert(std::is_trivially_copyable_v<T>,
                "Value<T> holds a trivially copyable T");
  static_assert(sizeof(T) <= 8 * (manager_internal::kMaxWrites - 1),
                "Value<T> holds at most 120 bytes");
  static constexpr bool kAtomic =
      (sizeof(T) == 1 || sizeof(T) == 2 || sizeof(T) == 4 ||
       sizeof(T) == 8) &&
      alignof(T) == sizeof(T);

 public:
  Value() = default;

  // v.value. T of at most 8 bytes: one atomic load, no lock (it cannot see
  // a torn value); larger T under the lock unless this thread holds it.
  T Get() const {
    T out;
    if constexpr (kAtomic) {
      out = std::atomic_ref<T>(*Data()).load(std::memory_order_acquire);
    } else {
      LockUnlessHeld g(*this);
      std::memcpy(&out, Data(), sizeof(T));
    }
    return out;
  }
  // v.value = x, under the value's lock (taken here unless the calling
  // thread holds it), as Python's Value: a holder's read-modify-write is
  // never interleaved with another Set. T of at most 8 bytes is one atomic
  // store (Get and Add never see it torn); larger T is logged, so a death
  // midway rolls it back.
  void Set(const T& v) {
    LockUnlessHeld g(*this);
    if constexpr (kAtomic) {
      std::atomic_ref<T>(*Data()).store(v, std::memory_order_release);
    } else {
      manager_internal::CellsWrite(space(), header_,
                                   reinterpret_cast<char*>(Data()), &v,
                                   sizeof(T));
    }
  }
  // v.value += delta as one atomic instruction, without the lock (integral
  // T of at most 8 bytes); returns the new value. It does not wait for a
  // holder of get_lock(): mixing Add with a locked read-modify-write of the
  // same value loses updates, as mixing locked and unlocked code does.
  T Add(T delta)
    requires std::is_integral_v<T> && kAtomic
  {
    return std::atomic_ref<T>(*Data()).fetch_add(delta,
                                                 std::memory_order_acq_rel) +
           delta;
  }
  // The value's lock, as v.get_lock(): `std::lock_guard g(v.get_lock());`.
  // Release it before this process drops its last handle to the manager (a
  // held lock sits on the thread's robust list, which must not point into
  // unmapped memory).
  ManagedLock& get_lock() { return lock_; }

 private:
  friend class Manager;
  struct LockUnlessHeld {
    explicit LockUnlessHeld(const Value& v) : h(v.header_) {
      if (!h->lock.HeldByCurrentThread()) {
        const_cast<Value&>(v).lock_.lock();
        took = true;
      }
    }
    ~LockUnlessHeld() {
      if (took) (void)h->lock.Release();
    }
    manager_internal::ContainerHeader* h;
    bool took = false;
  };
  Value(std::shared_ptr<manager_internal::Segment> seg,
        manager_internal::ContainerHeader* h)
      : Handle(std::move(seg), h), lock_(space(), h),
        data_(reinterpret_cast<T*>(manager_internal::CellsData(space(), h))) {}
  T* Data() const { return data_; }

  ManagedLock lock_{manager_internal::Space(nullptr), nullptr};
  T* data_ = nullptr;
};

// A shared fixed-size array with its own lock: multiprocessing.Array.
template <class T>
class Array : public manager_internal::Handle {
  static_assert(std::is_trivially_copyable_v<T>,
                "Array<T> holds a trivially copyable T");
  static_assert(sizeof(T) <= 8 * (manager_internal::kMaxWrites - 1),
                "Array<T> elements are at most 120 bytes");

 public:
  Array() = default;

  size_t Size() const { return size_; }
  // a[i]; OutOfRange (IndexError).
  absl::StatusOr<T> Get(size_t i) const {
    if (i >= size_) return absl::OutOfRangeError("array index out of range");
    LockUnlessHeld g(*this);
    T out;
    std::memcpy(&out, data_ + i * sizeof(T), sizeof(T));
    return out;
  }
  // a[i] = v, under the lock (or by the thread holding it), logged.
  absl::Status Set(size_t i, const T& v) {
    if (i >= size_) return absl::OutOfRangeError("array index out of range");
    LockUnlessHeld g(*this);
    manager_internal::CellsWrite(space(), header_, data_ + i * sizeof(T), &v,
                                 sizeof(T));
    return absl::OkStatus();
  }
  // a[:]
  std::vector<T> Snapshot() const {
    LockUnlessHeld g(*this);
    std::vector<T> out(size_);
    if (size_ != 0) std::memcpy(out.data(), data_, size_ * sizeof(T));
    return out;
  }
  ManagedLock& get_lock() { return lock_; }

 private:
  friend class Manager;
  struct LockUnlessHeld {
    explicit LockUnlessHeld(const Array& a) : h(a.header_) {
      if (!h->lock.HeldByCurrentThread()) {
        const_cast<Array&>(a).lock_.lock();
        took = true;
      }
    }
    ~LockUnlessHeld() {
      if (took) (void)h->lock.Release();
    }
    manager_internal::ContainerHeader* h;
    bool took = false;
  };
  Array(std::shared_ptr<manager_internal::Segment> seg,
        manager_internal::ContainerHeader* h)
      : Handle(std::move(seg), h), lock_(space(), h),
        data_(manager_internal::CellsData(space(), h)),
        size_(static_cast<size_t>(h->f[1])) {}

  ManagedLock lock_{manager_internal::Space(nullptr), nullptr};
  char* data_ = nullptr;
  size_t size_ = 0;
};

class Manager {
 public:
  static constexpr size_t kDefaultCapacity = size_t{64} << 20;

  // An anonymous manager (shared mapping inherited by children started
  // after it). Throws mp::Error (ResourceExhausted) when it cannot be
  // mapped; Make() returns the status instead.
  explicit Manager(size_t capacity = kDefaultCapacity);
  static absl::StatusOr<Manager> Make(size_t capacity = kDefaultCapacity);
  // A named manager segment (O_EXCL, `mode`): AlreadyExists when taken.
  static absl::StatusOr<Manager> Create(std::string_view name,
                                        size_t capacity = kDefaultCapacity,
                                        mode_t mode = 0600);
  // Opens a named manager another process created. NotFound; PermissionDenied
  // per `access`; InvalidArgument for a segment of another kind; DataLoss for
  // a damaged one.
  static absl::StatusOr<Manager> Open(std::string_view name,
                                      const SegmentAccess& access = {});
  static absl::Status Unlink(std::string_view name);

  // The container `name` (created on first use; empty: a new unnamed one).
  // The Make* forms return InvalidArgument when `name` holds another kind
  // or type, ResourceExhausted when the segment is full; the lowercase
  // forms (as Python's mgr.dict()) throw mp::Error with that status.
  template <class K, class V>
  absl::StatusOr<Dict<K, V>> MakeDict(std::string_view name = {}) {
    auto h = Find(name, manager_internal::Kind::kDict,
                  "dict<" + manager_internal::TypeName<K>() + "," +
                      manager_internal::TypeName<V>() + ">");
    if (!h.ok()) return h.status();
    return Dict<K, V>(seg_, *h);
  }
  template <class T>
  absl::StatusOr<List<T>> MakeList(std::string_view name = {}) {
    auto h = Find(name, manager_internal::Kind::kList,
                  "list<" + manager_internal::TypeName<T>() + ">");
    if (!h.ok()) return h.status();
    return List<T>(seg_, *h);
  }
  absl::StatusOr<mp::Namespace> MakeNamespace(std::string_view name = {}) {
    auto h = Find(name, manager_internal::Kind::kNamespace, "namespace");
    if (!h.ok()) return h.status();
    return mp::Namespace(seg_, *h);
  }
  // `initial` is stored only when the value is created.
  template <class T>
  absl::StatusOr<mp::Value<T>> MakeValue(T initial = T{},
                                         std::string_view name = {}) {
    auto h = manager_internal::FindOrCreate(
        seg_.get(), name, manager_internal::Kind::kValue,
        TypeTag("value<" + manager_internal::TypeName<T>() + ">"), sizeof(T),
        1, &initial);
    if (!h.ok()) return h.status();
    return mp::Value<T>(seg_, *h);
  }
  template <class T>
  absl::StatusOr<mp::Array<T>> MakeArray(const std::vector<T>& initial,
                                         std::string_view name = {}) {
    auto h = manager_internal::FindOrCreate(
        seg_.get(), name, manager_internal::Kind::kArray,
        TypeTag("array<" + manager_internal::TypeName<T>() + ">"), sizeof(T),
        initial.size(), initial.data());
    if (!h.ok()) return h.status();
    return mp::Array<T>(seg_, *h);
  }

  template <class K, class V>
  Dict<K, V> dict(std::string_view name = {}) {
    return ValueOrThrow(MakeDict<K, V>(name));
  }
  template <class T>
  List<T> list(std::string_view name = {}) {
    return ValueOrThrow(MakeList<T>(name));
  }
  mp::Namespace Namespace(std::string_view name = {}) {
    return ValueOrThrow(MakeNamespace(name));
  }
  template <class T>
  mp::Value<T> Value(T initial = T{}, std::string_view name = {}) {
    return ValueOrThrow(MakeValue<T>(initial, name));
  }
  template <class T>
  mp::Array<T> Array(const std::vector<T>& initial,
                     std::string_view name = {}) {
    return ValueOrThrow(MakeArray<T>(initial, name));
  }

  // Whether a container named `name` exists (of any kind).
  absl::StatusOr<bool> Has(std::string_view name) const;

  // The segment's name ("" when anonymous) and size.
  const std::string& name() const;
  size_t capacity() const;
  // Bytes of the segment handed out so far (blocks in use or reusable).
  size_t BytesCarved() const;

 private:
  explicit Manager(std::shared_ptr<manager_internal::Segment> seg)
      : seg_(std::move(seg)) {}
  absl::StatusOr<manager_internal::ContainerHeader*> Find(
      std::string_view name, manager_internal::Kind kind,
      const std::string& type_name) {
    return manager_internal::FindOrCreate(seg_.get(), name, kind,
                                          TypeTag(type_name), 0, 0, nullptr);
  }
  std::shared_ptr<manager_internal::Segment> seg_;
};

}  // namespace mp

#endif  // MP_MANAGER_MANAGER_H_
