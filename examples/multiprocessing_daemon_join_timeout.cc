// multiprocessing_daemon_join_timeout.py: join(timeout) returns while the
// daemon is still alive.
#include <chrono>
#include <iostream>
#include <thread>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"

using namespace std::chrono_literals;

// In a namespace: a global `daemon` would clash with daemon(3) from libc.
namespace example {

void daemon() {
  std::string name = mp::current_process().name();
  std::cout << "Starting: " << name << "\n";
  std::this_thread::sleep_for(2s);
  std::cout << "Exiting : " << name << "\n";
}

void non_daemon() {
  std::string name = mp::current_process().name();
  std::cout << "Starting: " << name << "\n";
  std::cout << "Exiting : " << name << "\n";
}

}  // namespace example

int main() {
  using example::daemon, example::non_daemon;
  mp::Process d({.name = "daemon"}, daemon);
  MP_CHECK_OK(d.set_daemon(true));

  mp::Process n({.name = "non-daemon"}, non_daemon);
  MP_CHECK_OK(n.set_daemon(false));

  MP_CHECK_OK(d.Start());
  MP_CHECK_OK(n.Start());

  // Still running after one second: Join returns OK, as Python's join
  // returns None; is_alive() tells.
  MP_CHECK_OK(d.Join(1s));
  std::cout << "d.is_alive() " << (d.IsAlive() ? "True" : "False") << "\n";
  MP_CHECK_OK(n.Join());
}
