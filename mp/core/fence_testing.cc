#include "mp/core/fence_testing.h"

#include <atomic>

#include "mp/core/fence.h"

namespace mp::fence_testing {

void UseFallbackFence() {
  // Registration only moves a state of kUnknown; kUnavailable stays.
  fence_internal::membarrier_state.store(fence_internal::kUnavailable,
                                         std::memory_order_release);
}

}  // namespace mp::fence_testing
