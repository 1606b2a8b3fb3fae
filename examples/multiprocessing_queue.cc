// multiprocessing_queue.py: pass one user object to a worker through a Queue.
#include <iostream>
#include <string>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/queue/queue.h"

class MyFancyClass {
 public:
  explicit MyFancyClass(std::string name = "") : name(std::move(name)) {}

  void DoSomething() const {
    std::string proc_name = mp::current_process().name();
    std::cout << "Doing something fancy in " << proc_name << " for " << name
              << "!\n";
  }

  std::string name;
};

// What pickle does for Python: how MyFancyClass travels as bytes.
template <>
struct mp::Codec<MyFancyClass> {
  static void Encode(const MyFancyClass& v, mp::ByteWriter& out) {
    out.Put(v.name);
  }
  static absl::Status Decode(mp::ByteReader& in, MyFancyClass* v) {
    return in.Get(&v->name);
  }
};

void worker(mp::Queue<MyFancyClass> q) {
  absl::StatusOr<MyFancyClass> obj = q.Get();
  MP_CHECK_OK(obj.status());
  obj->DoSomething();
}

int main() {
  mp::Queue<MyFancyClass> queue;

  mp::Process p(worker, queue);
  MP_CHECK_OK(p.Start());

  MP_CHECK_OK(queue.Put(MyFancyClass("Fancy Dan")));

  // Wait for the worker to finish
  queue.Close();
  queue.JoinThread();
  MP_CHECK_OK(p.Join());
}
