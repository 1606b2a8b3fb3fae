// Not a seed: the producer/consumer pattern ended by Close() instead of
// poison pills. Each consumer drains the queue until Get() reports the end
// of the stream (OutOfRange), then exits.
#include <iostream>
#include <memory>
#include <vector>

#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/queue/queue.h"

class Consumer : public mp::Process {
 public:
  Consumer(mp::Queue<int> tasks, mp::Queue<int> results)
      : tasks(tasks), results(results) {}

  void Run() override {
    while (true) {
      absl::StatusOr<int> n = tasks.Get();
      if (mp::IsClosed(n.status())) break;  // end of stream: no pill needed
      MP_CHECK_OK(n.status());
      std::cout << name() << ": " << *n << " * " << *n << "\n" << std::flush;
      MP_CHECK_OK(results.Put(*n * *n));
    }
    std::cout << name() << ": queue closed, exiting\n" << std::flush;
  }

  mp::Queue<int> tasks;
  mp::Queue<int> results;
};

int main() {
  mp::Queue<int> tasks;
  mp::Queue<int> results;

  int num_consumers = 3;
  std::cout << "Creating " << num_consumers << " consumers\n";
  std::vector<std::unique_ptr<Consumer>> consumers;
  for (int i = 0; i < num_consumers; ++i) {
    consumers.push_back(std::make_unique<Consumer>(tasks, results));
  }
  for (auto& c : consumers) MP_CHECK_OK(c->Start());

  int num_jobs = 10;
  for (int i = 0; i < num_jobs; ++i) MP_CHECK_OK(tasks.Put(i));
  tasks.Close();  // no more tasks: consumers drain and stop
  std::cout << "Put after close: " << tasks.Put(99).code() << "\n";

  for (auto& c : consumers) MP_CHECK_OK(c->Join());

  long sum = 0;
  for (int i = 0; i < num_jobs; ++i) sum += results.Get().value();
  std::cout << "Sum of squares: " << sum << "\n";
}
