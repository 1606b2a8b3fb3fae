// multiprocessing_log_to_stderr.py: turn on the library's own logging.
#include <iostream>

#include "mp/core/logging.h"
#include "mp/core/process.h"
#include "mp/core/status_macros.h"

void worker() {
  std::cout << "Doing some work\n";
  std::cout.flush();
}

int main() {
  mp::log_to_stderr(mp::DEBUG);
  mp::Process p(worker);
  MP_CHECK_OK(p.Start());
  MP_CHECK_OK(p.Join());
}
