// multiprocessing_simpleargs.py: pass each worker an argument.
#include <iostream>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

void worker(int num) {
  // thread worker function
  std::cout << "Worker: " << num << "\n";
}

int main() {
  std::vector<mp::Process> jobs;
  for (int i = 0; i < 5; ++i) {
    mp::Process& p = jobs.emplace_back(worker, i);
    MP_CHECK_OK(p.Start());
  }
}
