// multiprocessing_import_main.py: the target comes from another module.
#include <vector>

#include "examples/multiprocessing_import_worker.h"
#include "mp/core/process.h"
#include "mp/core/status_macros.h"

int main() {
  std::vector<mp::Process> jobs;
  for (int i = 0; i < 5; ++i) {
    mp::Process& p = jobs.emplace_back(multiprocessing_import_worker::worker);
    MP_CHECK_OK(p.Start());
  }
}
