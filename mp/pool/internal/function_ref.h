// mp/pool/internal/function_ref.h
// -----------------------------------------------------------------------------
// A reference to a function of the running program that means the same
// function in any process running the same binary, forked from the caller or
// not (a pool worker, or later an MPI rank started from the same executable).
//
//   FunctionRef ref = FunctionRef::Of(&do_calculation);   // in the parent
//   absl::StatusOr<const void*> f = ref.Resolve();         // in any process
//
// What it holds: the identity of the loaded ELF object that contains the
// function (the first 8 bytes of its NT_GNU_BUILD_ID note, the linker's
// hash of the object's contents) and the function's offset from the
// object's load bias (dl_iterate_phdr's dlpi_addr, which is 0 for a non-PIE
// executable, so the offset is then the absolute address). Address-space
// randomisation moves the bias, never the offset, so base + offset is the
// same function in every process that loaded the same object.
//
// Resolve checks the reference against what is loaded: NotFound when no
// loaded object has that build id, InvalidArgument when the offset does not
// fall in one of that object's executable segments. So a reference from
// another build, or bytes that are no reference at all, are refused rather
// than called. (An object without a build-id note gets an id hashed from its
// path and load bias: valid in forked children only; Of() says so through
// portable().)
//
// Cost: Of() and Resolve() scan a table of the loaded objects built once
// per process (rebuilt when an address or id is not found, e.g. after
// dlopen), under a mutex; callers cache their answers.

#ifndef MP_POOL_INTERNAL_FUNCTION_REF_H_
#define MP_POOL_INTERNAL_FUNCTION_REF_H_

#include <cstdint>
#include <type_traits>

#include "absl/status/statusor.h"

namespace mp::pool_internal {

struct FunctionRef {
  uint64_t object = 0;  // build id (first 8 bytes), or a path hash
  uint64_t offset = 0;  // from the object's load bias

  // The reference of the code at `fn`. InvalidArgument when `fn` is in no
  // loaded object's executable segment.
  static absl::StatusOr<FunctionRef> Of(const void* fn);
  // The address in this process. See the header comment for the errors.
  absl::StatusOr<const void*> Resolve() const;
  // Whether `object` is a build id (meaningful in a process not forked from
  // the caller).
  bool portable() const { return (object & 1u) == 0 || object == 0; }

  friend bool operator==(const FunctionRef&, const FunctionRef&) = default;
};
static_assert(std::is_trivially_copyable_v<FunctionRef>);
static_assert(sizeof(FunctionRef) == 16);

// The reference of a function pointer (any signature).
template <class R, class... A>
absl::StatusOr<FunctionRef> RefOf(R (*fn)(A...)) {
  return FunctionRef::Of(reinterpret_cast<const void*>(fn));
}

}  // namespace mp::pool_internal

#endif  // MP_POOL_INTERNAL_FUNCTION_REF_H_
