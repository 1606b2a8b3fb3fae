// mp/core/error.h
// -----------------------------------------------------------------------------
// mp::Error: the one exception type mp throws, carrying an absl::Status.
//
// Calls that can fail return absl::Status / absl::StatusOr<T>. Constructors
// cannot return a status, so every handle that can fail to construct (a
// queue whose mapping cannot be made, a lock with no shared memory left)
// has a factory returning absl::StatusOr<Handle> beside its constructor,
// and the constructor throws mp::Error with the status the factory would
// have returned (never std::bad_alloc, never an abort):
//
//   absl::StatusOr<mp::Lock> lock = mp::Lock::Create();
//   mp::Lock lock2;  // throws mp::Error on failure
//
//   try { mp::Semaphore s(-1); } catch (const mp::Error& e) {
//     if (e.status().code() == absl::StatusCode::kInvalidArgument) ...
//   }
//
// The factories:
//   Shared<T>::Create(args...)            Shared<T>::Make throws
//   Lock::Create(), RLock::Create(), Event::Create(), Condition::Create(),
//   Semaphore::Create(value), BoundedSemaphore::Create(value),
//   Barrier::Create(parties, ...)          their constructors throw
//     (the same classes' Create(name, ...) / Open(name) make and open named
//     ones; those have no constructor twin)
//   MakePipe(duplex)                       Pipe(duplex) throws
//   PipeQueue<T>::Create()                 PipeQueue<T>() throws
//   Queue<T>, JoinableQueue<T>, SimpleQueue<T>: see mp/queue/queue.h
// Process has nothing to fail at construction (Start returns the status).
// README.md "Errors" lists every call's codes.

#ifndef MP_CORE_ERROR_H_
#define MP_CORE_ERROR_H_

#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"

namespace mp {

class Error : public std::runtime_error {
 public:
  explicit Error(absl::Status status)
      : std::runtime_error(status.ToString()), status_(std::move(status)) {}

  const absl::Status& status() const noexcept { return status_; }
  absl::StatusCode code() const noexcept { return status_.code(); }

 private:
  absl::Status status_;
};

// Throws mp::Error unless `status` is OK. For constructors built on a
// factory: `value_ = ValueOrThrow(Factory(...));`.
inline void ThrowIfError(absl::Status status) {
  if (!status.ok()) throw Error(std::move(status));
}
template <class S>
auto ValueOrThrow(S&& status_or)
    -> std::remove_cvref_t<decltype(*std::forward<S>(status_or))> {
  if (!status_or.ok()) throw Error(std::forward<S>(status_or).status());
  return *std::forward<S>(status_or);
}

}  // namespace mp

#endif  // MP_CORE_ERROR_H_
