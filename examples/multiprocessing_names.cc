// multiprocessing_names.py: processes find their own names.
#include <chrono>
#include <iostream>
#include <thread>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

using namespace std::chrono_literals;

void worker() {
  std::string name = mp::current_process().name();
  std::cout << name << " Starting\n";
  std::this_thread::sleep_for(2s);
  std::cout << name << " Exiting\n";
}

void my_service() {
  std::string name = mp::current_process().name();
  std::cout << name << " Starting\n";
  std::this_thread::sleep_for(3s);
  std::cout << name << " Exiting\n";
}

int main() {
  mp::Process service({.name = "my_service"}, my_service);
  mp::Process worker_1({.name = "worker 1"}, worker);
  mp::Process worker_2(worker);  // default name

  MP_CHECK_OK(worker_1.Start());
  MP_CHECK_OK(worker_2.Start());
  MP_CHECK_OK(service.Start());
}
