// multiprocessing_exitcode.py: how each way of ending sets exitcode.
#include <chrono>
#include <iostream>
#include <stdexcept>
#include <thread>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

using namespace std::chrono_literals;

void exit_error() { mp::Exit(1); }  // sys.exit(1)

void exit_ok() {}

int return_value() { return 1; }  // a return value is not an exit code

void raises() { throw std::runtime_error("There was an error!"); }

void terminated() { std::this_thread::sleep_for(3s); }

int main() {
  struct Func {
    const char* name;
    void (*target)();
  };
  const Func funcs[] = {
      {"exit_error", exit_error},
      {"exit_ok", exit_ok},
      {"return_value", [] { return_value(); }},
      {"raises", raises},
      {"terminated", terminated},
  };
  std::vector<mp::Process> jobs;
  for (const Func& f : funcs) {
    std::cout << "Starting process for " << f.name << "\n";
    mp::Process& j = jobs.emplace_back(mp::ProcessOptions{.name = f.name},
                                       f.target);
    MP_CHECK_OK(j.Start());
  }

  MP_CHECK_OK(jobs.back().Terminate());

  for (mp::Process& j : jobs) {
    MP_CHECK_OK(j.Join());
    std::cout << j.name() << ".exitcode = " << *j.exitcode() << "\n";
  }
}
