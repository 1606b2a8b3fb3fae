// multiprocessing_condition.cc: the twin of PyMOTW's
// multiprocessing_condition.py.
#include <chrono>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/sync/condition.h"

// perform first stage of work, then notify stage_2 to continue
void stage_1(mp::Condition cond) {
  std::string name = mp::current_process().name();
  std::cout << "Starting " << name << std::endl;
  std::unique_lock with(cond);
  std::cout << name << " done and ready for stage 2" << std::endl;
  cond.NotifyAll();
}

// wait for the condition telling us stage_1 is done
void stage_2(mp::Condition cond) {
  std::string name = mp::current_process().name();
  std::cout << "Starting " << name << std::endl;
  std::unique_lock with(cond);
  cond.Wait();
  std::cout << name << " running" << std::endl;
}

int main() {
  mp::Condition condition;
  mp::Process s1({.name = "s1"}, stage_1, condition);
  std::vector<mp::Process> s2_clients;
  for (int i = 1; i < 3; ++i) {
    s2_clients.emplace_back(
        mp::ProcessOptions{.name = "stage_2[" + std::to_string(i) + "]"},
        stage_2, condition);
  }

  for (auto& c : s2_clients) {
    MP_CHECK_OK(c.Start());
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  MP_CHECK_OK(s1.Start());

  MP_CHECK_OK(s1.Join());
  for (auto& c : s2_clients) MP_CHECK_OK(c.Join());
}
