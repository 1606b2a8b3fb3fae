// mp/core/status_macros.h
// -----------------------------------------------------------------------------
// Small helpers for absl::Status code: return on error, and check-or-die for
// programs (the examples) that treat any error as fatal.

#ifndef MP_CORE_STATUS_MACROS_H_
#define MP_CORE_STATUS_MACROS_H_

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace mp::core_internal {

[[noreturn]] inline void DieOnStatus(const absl::Status& s, const char* expr,
                                     const char* file, int line) {
  std::fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, expr,
               s.ToString().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace mp::core_internal

// Evaluates `expr` (an absl::Status); returns it from the enclosing function
// if it is not OK.
#define MP_RETURN_IF_ERROR(expr)                    \
  do {                                              \
    ::absl::Status mp_status_ = (expr);             \
    if (!mp_status_.ok()) return mp_status_;        \
  } while (0)

// Evaluates `expr` (an absl::Status); prints it and aborts if it is not OK.
#define MP_CHECK_OK(expr)                                                 \
  do {                                                                    \
    ::absl::Status mp_status_ = (expr);                                   \
    if (!mp_status_.ok()) {                                               \
      ::mp::core_internal::DieOnStatus(mp_status_, #expr, __FILE__,       \
                                       __LINE__);                         \
    }                                                                     \
  } while (0)

#endif  // MP_CORE_STATUS_MACROS_H_
