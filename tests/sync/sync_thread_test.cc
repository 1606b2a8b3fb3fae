// The sync suite between threads of one process (runs under tsan).
#include "tests/sync/sync_suite.h"

namespace mp_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Threads, SyncSuite, ThreadRunner);
}  // namespace mp_test
