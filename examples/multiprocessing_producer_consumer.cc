// multiprocessing_producer_consumer.py: Consumer processes take Tasks from a
// JoinableQueue and put results on a Queue; poison pills (an empty optional,
// Python's None) stop them.
#include <chrono>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "mp/core/process.h"
#include "mp/core/status_macros.h"
#include "mp/queue/queue.h"

class Task {
 public:
  Task(int a = 0, int b = 0) : a(a), b(b) {}

  std::string operator()() const {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // pretend
    return absl::StrCat(a, " * ", b, " = ", a * b);
  }

  std::string ToString() const { return absl::StrCat(a, " * ", b); }

  int a;
  int b;
};

class Consumer : public mp::Process {
 public:
  Consumer(mp::JoinableQueue<std::optional<Task>> task_queue,
           mp::Queue<std::string> result_queue)
      : task_queue(task_queue), result_queue(result_queue) {}

  void Run() override {
    std::string proc_name = name();
    while (true) {
      std::optional<Task> next_task = task_queue.Get().value();
      if (!next_task) {
        // Poison pill means shutdown
        std::cout << proc_name << ": Exiting\n" << std::flush;
        MP_CHECK_OK(task_queue.TaskDone());
        break;
      }
      std::cout << proc_name << ": " << next_task->ToString() << "\n"
                << std::flush;
      std::string answer = (*next_task)();
      MP_CHECK_OK(task_queue.TaskDone());
      MP_CHECK_OK(result_queue.Put(answer));
    }
  }

  mp::JoinableQueue<std::optional<Task>> task_queue;
  mp::Queue<std::string> result_queue;
};

int main() {
  // Establish communication queues
  mp::JoinableQueue<std::optional<Task>> tasks;
  mp::Queue<std::string> results;

  // Start consumers
  int num_consumers = mp::cpu_count() * 2;
  std::cout << "Creating " << num_consumers << " consumers\n";
  std::vector<std::unique_ptr<Consumer>> consumers;
  for (int i = 0; i < num_consumers; ++i) {
    consumers.push_back(std::make_unique<Consumer>(tasks, results));
  }
  for (auto& w : consumers) MP_CHECK_OK(w->Start());

  // Enqueue jobs
  int num_jobs = 10;
  for (int i = 0; i < num_jobs; ++i) MP_CHECK_OK(tasks.Put(Task(i, i)));

  // Add a poison pill for each consumer
  for (int i = 0; i < num_consumers; ++i) MP_CHECK_OK(tasks.Put(std::nullopt));

  // Wait for all of the tasks to finish
  MP_CHECK_OK(tasks.Join());

  // Start printing results
  while (num_jobs) {
    std::string result = results.Get().value();
    std::cout << "Result: " << result << "\n";
    num_jobs -= 1;
  }
}
