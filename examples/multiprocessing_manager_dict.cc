// multiprocessing_manager_dict.cc: the twin of PyMOTW's
// multiprocessing_manager_dict.py.
#include <iostream>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/manager/manager.h"

void worker(mp::Dict<int, int> d, int key, int value) {
  MP_CHECK_OK(d.Set(key, value));
}

int main() {
  mp::Manager mgr;
  mp::Dict<int, int> d = mgr.dict<int, int>();
  std::vector<mp::Process> jobs;
  for (int i = 0; i < 10; ++i) jobs.emplace_back(worker, d, i, i * 2);
  for (mp::Process& j : jobs) MP_CHECK_OK(j.Start());
  for (mp::Process& j : jobs) MP_CHECK_OK(j.Join());
  std::cout << "Results: " << d << std::endl;
}
