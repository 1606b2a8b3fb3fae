// multiprocessing_semaphore.cc: the twin of PyMOTW's
// multiprocessing_semaphore.py: at most three workers hold the semaphore,
// and a shared list (from a Manager) shows which.
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/manager/manager.h"
#include "mp/sync/lock.h"
#include "mp/sync/semaphore.h"

class ActivePool {
 public:
  ActivePool() : active_(mgr_.list<std::string>()) {}

  void makeActive(const std::string& name) {
    std::lock_guard with(lock_);
    MP_CHECK_OK(active_.Append(name));
  }

  void makeInactive(const std::string& name) {
    std::lock_guard with(lock_);
    MP_CHECK_OK(active_.Remove(name));
  }

  std::string str() {
    std::lock_guard with(lock_);
    return active_.Repr();
  }

 private:
  mp::Manager mgr_;
  mp::List<std::string> active_;
  mp::Lock lock_;
};

void worker(mp::Semaphore s, ActivePool pool) {
  const std::string name = mp::current_process().name();
  std::mt19937 rng(static_cast<unsigned>(getpid()));
  std::lock_guard with(s);
  pool.makeActive(name);
  std::cout << "Activating " << name << " now running " << pool.str()
            << std::endl;
  std::this_thread::sleep_for(std::chrono::duration<double>(
      std::uniform_real_distribution<double>(0, 1)(rng)));
  pool.makeInactive(name);
}

int main() {
  ActivePool pool;
  mp::Semaphore s(3);
  std::vector<mp::Process> jobs;
  for (int i = 0; i < 10; ++i) {
    jobs.emplace_back(mp::ProcessOptions{.name = std::to_string(i)}, worker, s,
                      pool);
  }

  for (mp::Process& j : jobs) MP_CHECK_OK(j.Start());

  while (true) {
    int alive = 0;
    for (mp::Process& j : jobs) {
      if (j.IsAlive()) {
        alive += 1;
        MP_CHECK_OK(j.Join(0.1));
        std::cout << "Now running " << pool.str() << std::endl;
      }
    }
    if (alive == 0) {
      // all done
      break;
    }
  }
}
