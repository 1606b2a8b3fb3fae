// pool_mpi: the seed's multiprocessing_pool on the MPI backend: the same
// program with the pool's type changed (mp::Pool -> mp::mpi::Pool) and
// mp::mpi::Init first in main. Run it with
//   mpirun -n 3 bazel-bin/examples/pool_mpi
// rank 0 prints Input / Built-in / Pool; the 2 serving ranks each start
// their own local workers ("Starting PoolWorker-N", N counting per rank).
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/pool/mpi/pool.h"

int do_calculation(int data) { return data * 2; }

void start_process() {
  std::cout << "Starting " << mp::current_process().name() << std::endl;
}

std::string list(const std::vector<int>& v) {
  return "[" + absl::StrJoin(v, ", ") + "]";
}

int main(int argc, char** argv) {
  // Rank 0 returns; the other ranks serve the pool until main ends.
  if (absl::Status s = mp::mpi::Init(argc, argv); !s.ok()) {
    std::cerr << s.message() << std::endl;
    return 2;
  }
  std::vector<int> inputs;
  for (int i = 0; i < 10; ++i) inputs.push_back(i);
  std::cout << "Input   : " << list(inputs) << std::endl;

  std::vector<int> builtin_outputs;
  for (int x : inputs) builtin_outputs.push_back(do_calculation(x));
  std::cout << "Built-in: " << list(builtin_outputs) << std::endl;

  const int pool_size = mp::cpu_count() * 2;  // per serving rank
  mp::mpi::Pool pool({
      .processes = pool_size,
      .initializer = start_process,
  });
  std::vector<int> pool_outputs = *pool.Map(do_calculation, inputs);
  pool.Close();  // no more tasks
  MP_CHECK_OK(pool.Join());  // wrap up current tasks

  std::cout << "Pool    : " << list(pool_outputs) << std::endl;
}
