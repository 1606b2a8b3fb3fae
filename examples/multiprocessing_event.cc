// multiprocessing_event.cc: the twin of PyMOTW's multiprocessing_event.py.
#include <chrono>
#include <iostream>
#include <thread>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/sync/event.h"

// Wait for the event to be set before doing anything
void wait_for_event(mp::Event e) {
  std::cout << "wait_for_event: starting" << std::endl;
  e.Wait();
  std::cout << "wait_for_event: e.is_set()-> " << (e.IsSet() ? "True" : "False")
            << std::endl;
}

// Wait t seconds and then timeout
void wait_for_event_timeout(mp::Event e, double t) {
  std::cout << "wait_for_event_timeout: starting" << std::endl;
  e.Wait(mp::Deadline::AfterSeconds(t));
  std::cout << "wait_for_event_timeout: e.is_set()-> "
            << (e.IsSet() ? "True" : "False") << std::endl;
}

int main() {
  mp::Event e;
  mp::Process w1({.name = "block"}, wait_for_event, e);
  MP_CHECK_OK(w1.Start());

  mp::Process w2({.name = "nonblock"}, wait_for_event_timeout, e, 2.0);
  MP_CHECK_OK(w2.Start());

  std::cout << "main: waiting before calling Event.set()" << std::endl;
  std::this_thread::sleep_for(std::chrono::seconds(3));
  e.Set();
  std::cout << "main: event is set" << std::endl;
}
