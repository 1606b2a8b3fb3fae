// multiprocessing_subclass.py: a Process subclass overrides Run().
#include <iostream>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

class Worker : public mp::Process {
 public:
  void Run() override { std::cout << "In " << name() << "\n"; }
};

int main() {
  std::vector<Worker> jobs(5);
  for (Worker& p : jobs) MP_CHECK_OK(p.Start());
  for (Worker& j : jobs) MP_CHECK_OK(j.Join());
}
