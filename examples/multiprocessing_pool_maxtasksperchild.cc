// multiprocessing_pool_maxtasksperchild.py: as multiprocessing_pool, with
// maxtasksperchild=2: workers are replaced after two tasks, even when no
// more work waits, so more workers start than the pool holds at a time.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/pool/pool.h"

int do_calculation(int data) { return data * 2; }

void start_process() {
  std::cout << "Starting " << mp::current_process().name() << std::endl;
}

std::string list(const std::vector<int>& v) {
  return "[" + absl::StrJoin(v, ", ") + "]";
}

int main() {
  std::vector<int> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back(i);
  std::cout << "Input   : " << list(inputs) << std::endl;

  std::vector<int> builtin_outputs;
  for (int x : inputs) builtin_outputs.push_back(do_calculation(x));
  std::cout << "Built-in: " << list(builtin_outputs) << std::endl;

  const int pool_size = mp::cpu_count() * 2;
  mp::Pool pool({
      .processes = pool_size,
      .initializer = start_process,
      .maxtasksperchild = 2,
  });
  std::vector<int> pool_outputs = *pool.Map(do_calculation, inputs);
  pool.Close();  // no more tasks
  MP_CHECK_OK(pool.Join());  // wrap up current tasks

  std::cout << "Pool    : " << list(pool_outputs) << std::endl;
}
