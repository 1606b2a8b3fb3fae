// mp/pool/internal/function_ref.cc: see function_ref.h.
#include "mp/pool/internal/function_ref.h"

#include <elf.h>
#include <link.h>

#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace mp::pool_internal {
namespace {

struct Segment {
  uintptr_t begin;  // absolute addresses in this process
  uintptr_t end;
};
struct Object {
  uint64_t id;
  uintptr_t bias;
  std::vector<Segment> exec;  // PT_LOAD segments with PF_X
};

uint64_t Fnv1a(const void* data, size_t n, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

// The build id of the object described by `info`, or 0 when it has none.
uint64_t BuildId(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    const char* end = p + ph.p_memsz;
    while (p + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) nh;
      std::memcpy(&nh, p, sizeof(nh));
      const char* name = p + sizeof(nh);
      const char* desc = name + ((nh.n_namesz + 3) & ~size_t{3});
      const char* next = desc + ((nh.n_descsz + 3) & ~size_t{3});
      if (next > end) break;
      if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
          std::memcmp(name, "GNU", 4) == 0 && nh.n_descsz >= 8) {
        uint64_t id = 0;
        std::memcpy(&id, desc, sizeof(id));
        id &= ~uint64_t{1};  // even: a build id; odd: a path hash
        return id == 0 ? 2 : id;
      }
      p = next;
    }
  }
  return 0;
}

int AddObject(dl_phdr_info* info, size_t, void* data) {
  auto* objects = static_cast<std::vector<Object>*>(data);
  Object o;
  o.bias = info->dlpi_addr;
  o.id = BuildId(info);
  if (o.id == 0) {
    const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
    o.id = Fnv1a(name, std::strlen(name), Fnv1a(&o.bias, sizeof(o.bias))) | 1u;
  }
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type == PT_LOAD && (ph.p_flags & PF_X) != 0) {
      o.exec.push_back(
          {info->dlpi_addr + ph.p_vaddr, info->dlpi_addr + ph.p_vaddr + ph.p_memsz});
    }
  }
  if (!o.exec.empty()) objects->push_back(std::move(o));
  return 0;
}

struct Table {
  std::mutex mu;
  std::vector<Object> objects;
  bool built = false;
  void Rebuild() {
    objects.clear();
    dl_iterate_phdr(&AddObject, &objects);
    built = true;
  }
};

Table& GetTable() {
  static Table* t = new Table;
  return *t;
}

const Object* ByAddress(const std::vector<Object>& objects, uintptr_t a) {
  for (const Object& o : objects) {
    for (const Segment& s : o.exec) {
      if (a >= s.begin && a < s.end) return &o;
    }
  }
  return nullptr;
}

const Object* ById(const std::vector<Object>& objects, uint64_t id) {
  for (const Object& o : objects) {
    if (o.id == id) return &o;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<FunctionRef> FunctionRef::Of(const void* fn) {
  const auto a = reinterpret_cast<uintptr_t>(fn);
  Table& t = GetTable();
  std::lock_guard<std::mutex> l(t.mu);
  if (!t.built) t.Rebuild();
  const Object* o = ByAddress(t.objects, a);
  if (o == nullptr) {
    t.Rebuild();
    o = ByAddress(t.objects, a);
  }
  if (o == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool: address 0x", absl::Hex(a), " is in no loaded object's code"));
  }
  return FunctionRef{o->id, a - o->bias};
}

absl::StatusOr<const void*> FunctionRef::Resolve() const {
  Table& t = GetTable();
  std::lock_guard<std::mutex> l(t.mu);
  if (!t.built) t.Rebuild();
  const Object* o = ById(t.objects, object);
  if (o == nullptr) {
    t.Rebuild();
    o = ById(t.objects, object);
  }
  if (o == nullptr) {
    return absl::NotFoundError(absl::StrCat(
        "pool: no loaded object has id ", absl::Hex(object, absl::kZeroPad16),
        " (a task reference from another build of the program?)"));
  }
  const uintptr_t a = o->bias + offset;
  for (const Segment& s : o->exec) {
    if (offset < s.end - o->bias && a >= s.begin && a < s.end) {
      return reinterpret_cast<const void*>(a);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "pool: offset 0x", absl::Hex(offset),
      " is outside the code of object ", absl::Hex(object, absl::kZeroPad16)));
}

}  // namespace mp::pool_internal
