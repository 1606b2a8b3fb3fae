// multiprocessing_simple.py: spawn five processes that each print "Worker".
#include <iostream>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

void worker() {
  // worker function
  std::cout << "Worker\n";
}

int main() {
  std::vector<mp::Process> jobs;
  for (int i = 0; i < 5; ++i) {
    mp::Process& p = jobs.emplace_back(worker);
    MP_CHECK_OK(p.Start());
  }
}
