// multiprocessing_namespaces.cc: the twin of PyMOTW's
// multiprocessing_namespaces.py.
#include <iostream>
#include <string>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/manager/manager.h"
#include "mp/sync/event.h"

void producer(mp::Namespace ns, mp::Event event) {
  MP_CHECK_OK(ns.Set("value", std::string("This is the value")));
  event.Set();
}

void consumer(mp::Namespace ns, mp::Event event) {
  absl::StatusOr<std::string> value = ns.Get<std::string>("value");
  if (value.ok()) {
    std::cout << "Before event: " << *value << std::endl;
  } else {
    std::cout << "Before event, error: " << value.status().message()
              << std::endl;
  }
  event.Wait();
  std::cout << "After event: " << *ns.Get<std::string>("value") << std::endl;
}

int main() {
  mp::Manager mgr;
  mp::Namespace namespace_ = mgr.Namespace();
  mp::Event event;
  mp::Process p(producer, namespace_, event);
  mp::Process c(consumer, namespace_, event);

  MP_CHECK_OK(c.Start());
  MP_CHECK_OK(p.Start());

  MP_CHECK_OK(c.Join());
  MP_CHECK_OK(p.Join());
}
