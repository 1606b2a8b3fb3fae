// The sync suite between forked processes.
#include "tests/sync/sync_suite.h"

namespace mp_test {
INSTANTIATE_TYPED_TEST_SUITE_P(Processes, SyncSuite, ProcessRunner);
}  // namespace mp_test
