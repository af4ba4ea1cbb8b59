#pragma once
// PartitionExpander: runs the `partitions: {command: ...}` of runs about to start on
// threads of its own, so that a slow command (up to its timeout, 60 s by default) never
// stalls the engine loop, the scheduler or the API. The engine hands it the distinct
// commands of one run (a job) and gets every output back in one callback, then starts
// the run.
//
// Jobs start in submission order on up to `threads` threads, each started when a job
// finds none idle: a slow command of one DAG delays another DAG's runs only once that
// many commands are running. A job's commands run one after the other. Cancel(run_id)
// kills the run's running command and reports its job cancelled. The destructor kills
// every running command, drops queued jobs without calling back, and joins the threads.
//
// Thread rules: Submit and Cancel from any thread; `done` runs on an expander thread (or
// inside Cancel, for a job that had not started) and must only hand the result over
// (post it to the engine's loop).

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"
#include "dag/dag.h"
#include "engine/partitions.h"

namespace batchd::engine {

// A partitions command as a run executes it: (rendered command, working directory).
using PartitionCommandKey = std::pair<std::string, std::string>;
// What each distinct command of a run printed, or why it failed.
using PartitionCommandOutputs = std::map<PartitionCommandKey, Result<std::vector<std::string>>>;

class PartitionExpander {
 public:
  struct Job {
    std::string run_id;
    // One task per distinct command (its error messages name this task), already
    // rendered with the run's variables.
    std::vector<dag::Task> tasks;
    std::vector<std::string> env;
    PartitionCommandLimits limits;
    std::function<void(std::string run_id, PartitionCommandOutputs outputs)> done;
  };

  // `guard` (may be null) kills a running command if this process dies; `threads` >= 1.
  explicit PartitionExpander(executor::OrphanGuard* guard = nullptr, int threads = kDefaultThreads);
  static constexpr int kDefaultThreads = 4;
  ~PartitionExpander();
  PartitionExpander(const PartitionExpander&) = delete;
  PartitionExpander& operator=(const PartitionExpander&) = delete;

  void Submit(Job job);
  // Kills the running command of `run_id`'s job (SIGKILL to its process group) and drops
  // it if queued; either way its `done` reports every command of the job with
  // CancelledError. Unknown runs are ignored.
  void Cancel(const std::string& run_id);
  // "task 'T': partitions command cancelled with its run"
  static Status CancelledError(const dag::Task& task);

 private:
  // A job being run by a thread; lives on that thread's stack.
  struct Active {
    const std::string* run_id;
    RunningCommand* running;
    bool cancelled = false;  // GUARDED_BY(mu_)
  };
  void Loop();
  // Runs the job's commands; false if the expander is stopping (no callback then).
  bool Run(Job& job, Active& active);
  static PartitionCommandOutputs AllCancelled(const Job& job);

  executor::OrphanGuard* const guard_;
  const size_t max_threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;          // GUARDED_BY(mu_)
  std::vector<Active*> active_;    // GUARDED_BY(mu_)
  size_t idle_ = 0;                // GUARDED_BY(mu_): threads waiting for a job
  bool stopping_ = false;          // GUARDED_BY(mu_)
  std::vector<std::thread> threads_;  // GUARDED_BY(mu_) until the destructor joins them
};

}  // namespace batchd::engine
