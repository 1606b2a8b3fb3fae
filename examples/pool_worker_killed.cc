// pool_worker_killed: what CPython's Pool cannot survive (it hangs for ever
// when a worker is killed). A worker is SIGKILLed in the middle of a Map:
// the Map still returns, the item that worker held is reported failed
// (Aborted, naming the worker, its pid and the signal), every other item
// is computed, and the pool, with a replacement worker, runs a second Map.
#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "mp/core/status_macros.h"
#include "mp/pool/pool.h"

// Item 5 kills the worker that runs it, as the OOM killer or a stray
// `kill -9` would.
int do_calculation(int data) {
  if (data == 5) kill(getpid(), SIGKILL);
  return data * 2;
}

int main() {
  std::vector<int> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back(i);
  mp::Pool pool(2);

  // Map reports the first failed item, as Python's map raises. chunksize 1:
  // a death fails the whole task (chunk) the worker held.
  absl::StatusOr<std::vector<int>> first =
      pool.Map(do_calculation, inputs, /*chunksize=*/1);
  std::cout << "Map     : " << first.status().ToString() << std::endl;

  // Imap shows every item: only the one the killed worker held failed.
  auto it = pool.Imap(do_calculation, inputs);
  int i = 0;
  for (absl::StatusOr<int>& r : it) {
    if (r.ok()) {
      std::cout << "item " << i << ": " << *r << std::endl;
    } else {
      std::cout << "item " << i << ": failed: " << r.status().ToString()
                << std::endl;
    }
    ++i;
  }

  std::vector<int> again = *pool.Map(
      +[](int x) { return x * 2; }, inputs);
  std::cout << "Again   : [" << absl::StrJoin(again, ", ") << "]" << std::endl;
  std::cout << "Workers started: " << pool.workers_started() << std::endl;
  pool.Close();
  MP_CHECK_OK(pool.Join());
}
