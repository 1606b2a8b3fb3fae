// multiprocessing_daemon.py: a daemon child does not keep the program alive.
#include <chrono>
#include <iostream>
#include <thread>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

using namespace std::chrono_literals;

// In a namespace: a global `daemon` would clash with daemon(3) from libc.
namespace example {

void daemon() {
  mp::ProcessInfo p = mp::current_process();
  std::cout << "Starting: " << p.name() << " " << p.pid() << std::endl;
  std::this_thread::sleep_for(2s);
  std::cout << "Exiting : " << p.name() << " " << p.pid() << std::endl;
}

void non_daemon() {
  mp::ProcessInfo p = mp::current_process();
  std::cout << "Starting: " << p.name() << " " << p.pid() << std::endl;
  std::cout << "Exiting : " << p.name() << " " << p.pid() << std::endl;
}

}  // namespace example

int main() {
  using example::daemon, example::non_daemon;
  mp::Process d({.name = "daemon"}, daemon);
  MP_CHECK_OK(d.set_daemon(true));

  mp::Process n({.name = "non-daemon"}, non_daemon);
  MP_CHECK_OK(n.set_daemon(false));

  MP_CHECK_OK(d.Start());
  std::this_thread::sleep_for(1s);
  MP_CHECK_OK(n.Start());
}
