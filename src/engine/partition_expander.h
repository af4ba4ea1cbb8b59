#pragma once
// PartitionExpander: runs the `partitions: {command: ...}` of runs about to start on its
// own thread, so that a slow command (up to its timeout, 60 s by default) never stalls
// the engine loop, the scheduler or the API. The engine hands it the distinct commands of
// one run and gets every output back in one callback, then starts the run.
//
// Jobs run one at a time, in submission order. The destructor kills the running command,
// drops queued jobs without calling back, and joins the thread.
//
// Thread rules: Submit from any thread; `done` runs on the expander's thread and must only
// hand the result over (post it to the engine's loop).

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

  // `guard` (may be null) kills a running command if this process dies.
  explicit PartitionExpander(executor::OrphanGuard* guard = nullptr);
  ~PartitionExpander();
  PartitionExpander(const PartitionExpander&) = delete;
  PartitionExpander& operator=(const PartitionExpander&) = delete;

  void Submit(Job job);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;  // GUARDED_BY(mu_)
  bool stopping_ = false;  // GUARDED_BY(mu_)
  RunningCommand running_;
  std::thread thread_;
};

}  // namespace batchd::engine
