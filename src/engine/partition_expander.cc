#include "engine/partition_expander.h"

#include <algorithm>

namespace batchd::engine {

PartitionExpander::PartitionExpander(executor::OrphanGuard* guard, int threads)
    : guard_(guard), max_threads_(static_cast<size_t>(std::max(1, threads))) {}

PartitionExpander::~PartitionExpander() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();
    for (Active* a : active_) a->running->Kill();
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (std::thread& t : threads) t.join();
}

Status PartitionExpander::CancelledError(const dag::Task& task) {
  return Status::FailedPrecondition("task '" + task.id + "': partitions command cancelled with its run");
}

PartitionCommandOutputs PartitionExpander::AllCancelled(const Job& job) {
  PartitionCommandOutputs outputs;
  for (const dag::Task& task : job.tasks)
    outputs.emplace(PartitionCommandKey{task.partitions.command, task.working_dir}, CancelledError(task));
  return outputs;
}

void PartitionExpander::Submit(Job job) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    queue_.push_back(std::move(job));
    // Threads start as jobs find none idle, up to the limit; they stay for later jobs.
    if (idle_ < queue_.size() && threads_.size() < max_threads_) threads_.emplace_back([this] { Loop(); });
  }
  cv_.notify_one();
}

void PartitionExpander::Cancel(const std::string& run_id) {
  std::vector<Job> dropped;
  {
    std::lock_guard lock(mu_);
    for (Active* a : active_) {
      if (*a->run_id != run_id) continue;
      a->cancelled = true;
      a->running->Kill();
    }
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (it->run_id != run_id) {
        ++it;
        continue;
      }
      dropped.push_back(std::move(*it));
      it = queue_.erase(it);
    }
  }
  for (Job& job : dropped) {
    PartitionCommandOutputs outputs = AllCancelled(job);
    job.done(std::move(job.run_id), std::move(outputs));
  }
}

void PartitionExpander::Loop() {
  for (;;) {
    Job job;
    {
      std::unique_lock lock(mu_);
      ++idle_;
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (stopping_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    RunningCommand running(guard_);  // one per job: a Kill() stays with its job
    Active active{&job.run_id, &running};
    if (!Run(job, active)) return;
  }
}

bool PartitionExpander::Run(Job& job, Active& active) {
  {
    std::lock_guard lock(mu_);
    active_.push_back(&active);
  }
  auto finished = [&] {  // REQUIRES: mu_ held
    std::erase(active_, &active);
    return !stopping_;
  };
  PartitionCommandOutputs outputs;
  for (const dag::Task& task : job.tasks) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return finished();  // the destructor killed or skipped the command
      if (active.cancelled) break;
    }
    outputs.emplace(PartitionCommandKey{task.partitions.command, task.working_dir},
                    ExpandPartitions(task, job.env, job.limits, active.running));
  }
  bool cancelled;
  {
    std::lock_guard lock(mu_);
    if (!finished()) return false;
    cancelled = active.cancelled;
  }
  if (cancelled) outputs = AllCancelled(job);  // what a killed command printed means nothing
  job.done(std::move(job.run_id), std::move(outputs));
  return true;
}

}  // namespace batchd::engine
