#include "engine/partition_expander.h"

namespace batchd::engine {

PartitionExpander::PartitionExpander(executor::OrphanGuard* guard) : running_(guard), thread_([this] { Loop(); }) {}

PartitionExpander::~PartitionExpander() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
  }
  cv_.notify_one();
  running_.Kill();
  thread_.join();
}

void PartitionExpander::Submit(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
}

void PartitionExpander::Loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    PartitionCommandOutputs outputs;
    for (const dag::Task& task : job.tasks) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;  // the destructor killed or skipped the command: no callback
      }
      outputs.emplace(PartitionCommandKey{task.partitions.command, task.working_dir},
                      ExpandPartitions(task, job.env, job.limits, &running_));
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    job.done(std::move(job.run_id), std::move(outputs));
  }
}

}  // namespace batchd::engine
