// A program of a separate Bazel workspace, built against @mp//mp/...:
// a producer and a consumer process share a Queue, a Lock and an Event.
// The producer waits for the parent's Event, sends 1..kCount and an empty
// string as the end; the consumer checks the order and the sum, and both
// print under the Lock. Exits 0 only if every check held.
#include <cstdio>
#include <mutex>
#include <string>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/queue/queue.h"
#include "mp/sync/event.h"
#include "mp/sync/lock.h"

constexpr int kCount = 1000;

void Produce(mp::Queue<std::string> q, mp::Event go, mp::Lock lock) {
  if (!go.Wait(mp::Deadline::AfterSeconds(30))) std::_Exit(3);
  for (int i = 1; i <= kCount; ++i) MP_CHECK_OK(q.Put(std::to_string(i)));
  MP_CHECK_OK(q.Put(""));
  std::lock_guard hold(lock);
  std::printf("producer: sent %d messages\n", kCount);
  std::fflush(stdout);
}

void Consume(mp::Queue<std::string> q, mp::Lock lock) {
  long sum = 0;
  int n = 0;
  for (;;) {
    absl::StatusOr<std::string> m = q.Get(mp::Deadline::AfterSeconds(30));
    MP_CHECK_OK(m.status());
    if (m->empty()) break;
    if (std::stoi(*m) != ++n) std::_Exit(4);  // out of order or lost
    sum += std::stoi(*m);
  }
  std::lock_guard hold(lock);
  std::printf("consumer: received %d messages, sum %ld\n", n, sum);
  std::fflush(stdout);
  if (sum != static_cast<long>(kCount) * (kCount + 1) / 2) std::_Exit(5);
}

int main() {
  mp::Queue<std::string> q;
  mp::Event go;
  mp::Lock lock;
  mp::Process producer({.name = "producer"}, Produce, q, go, lock);
  mp::Process consumer({.name = "consumer"}, Consume, q, lock);
  MP_CHECK_OK(producer.Start());
  MP_CHECK_OK(consumer.Start());
  go.Set();
  MP_CHECK_OK(producer.Join());
  MP_CHECK_OK(consumer.Join());
  std::printf("main: exit codes %d %d\n", producer.exitcode().value_or(-99),
              consumer.exitcode().value_or(-99));
  return producer.exitcode() == 0 && consumer.exitcode() == 0 ? 0 : 1;
}
