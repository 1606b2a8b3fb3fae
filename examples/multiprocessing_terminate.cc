// multiprocessing_terminate.py: terminate() a process, then join() it.
#include <chrono>
#include <iostream>
#include <thread>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

using namespace std::chrono_literals;

const char* Bool(bool b) { return b ? "True" : "False"; }

void slow_worker() {
  std::cout << "Starting worker\n";
  std::this_thread::sleep_for(100ms);
  std::cout << "Finished worker\n";
}

int main() {
  mp::Process p(slow_worker);
  std::cout << "BEFORE: " << p << " " << Bool(p.IsAlive()) << "\n";

  MP_CHECK_OK(p.Start());
  std::cout << "DURING: " << p << " " << Bool(p.IsAlive()) << "\n";

  MP_CHECK_OK(p.Terminate());
  std::cout << "TERMINATED: " << p << " " << Bool(p.IsAlive()) << "\n";

  MP_CHECK_OK(p.Join());
  std::cout << "JOINED: " << p << " " << Bool(p.IsAlive()) << "\n";
}
