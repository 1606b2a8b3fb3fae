// multiprocessing_namespaces_mutable.cc: the twin of PyMOTW's
// multiprocessing_namespaces_mutable.py. A value read from a Namespace is a
// copy: changing it does not change the namespace.
#include <iostream>
#include <string>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/manager/manager.h"
#include "mp/sync/event.h"

using StringList = std::vector<std::string>;

void producer(mp::Namespace ns, mp::Event event) {
  // DOES NOT UPDATE GLOBAL VALUE!
  ns.Get<StringList>("my_list")->push_back("This is the value");
  event.Set();
}

void consumer(mp::Namespace ns, mp::Event event) {
  std::cout << "Before event: " << mp::Repr(*ns.Get<StringList>("my_list"))
            << std::endl;
  event.Wait();
  std::cout << "After event : " << mp::Repr(*ns.Get<StringList>("my_list"))
            << std::endl;
}

int main() {
  mp::Manager mgr;
  mp::Namespace namespace_ = mgr.Namespace();
  MP_CHECK_OK(namespace_.Set("my_list", StringList{}));

  mp::Event event;
  mp::Process p(producer, namespace_, event);
  mp::Process c(consumer, namespace_, event);

  MP_CHECK_OK(c.Start());
  MP_CHECK_OK(p.Start());

  MP_CHECK_OK(c.Join());
  MP_CHECK_OK(p.Join());
}
