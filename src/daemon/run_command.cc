#include <algorithm>
#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "daemon/run_command.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <future>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <date/tz.h>
#include <spdlog/spdlog.h>

#include "common/logging.h"
#include "daemon/task_environment.h"
#include "dag/loader.h"
#include "engine/dag_versions.h"
#include "engine/engine.h"
#include "executor/subprocess_runner.h"
#include "store/store.h"


namespace batchd::daemon {
namespace {

namespace asio = boost::asio;

// Ends the process once the run is durable (Store::Flush) and its output written, without
// destructors: they would only free memory, wait for threads (a WAL checkpoint in
// progress) and close the database. SQLite needs no close: the WAL is
// synced, and a checkpoint cut short here is redone by the next open. The orphan guard's
// helper kills any task group still registered (a partitions command cut short by SIGINT).
[[noreturn]] void ExitWithoutTeardown(int code) {
  std::cout.flush();
  std::cerr.flush();
  if (auto logger = spdlog::default_logger()) logger->flush();
  std::fflush(nullptr);
  ::_exit(code);
}

double Seconds(const std::optional<SysMillis>& a, const std::optional<SysMillis>& b) {
  if (!a || !b) return 0;
  return std::chrono::duration<double>(*b - *a).count();
}

// Shows a run's progress: a redrawn bar on a terminal, one line per finished instance
// otherwise; prints the summary when the run ends.
class ProgressPrinter final : public engine::EngineObserver {
 public:
  ProgressPrinter(std::string run_id, bool tty) : run_id_(std::move(run_id)), tty_(tty) {}

  void OnInstanceStateChanged(const engine::RunPlan& plan, const store::InstanceRecord& inst) override {
    if (plan.run().run_id != run_id_) return;
    if (tty_) {
      Redraw(plan, false);
    } else if (IsTerminal(inst.state)) {
      std::string line = Stamp();
      line += ' ';
      line += inst.task;
      line += '[';
      line += inst.partition;
      line += "] ";
      line += ToString(inst.state);
      if (!inst.reason.empty()) line += " (" + inst.reason + ")";
      if (inst.attempts > 0) line += " attempts=" + std::to_string(inst.attempts);
      if (inst.exit_code) line += " exit=" + std::to_string(*inst.exit_code);
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
      FlushNowAndThen();
    }
  }

  void OnAttemptFinished(const engine::RunPlan& plan, const store::InstanceRecord& inst,
                         const store::AttemptRecord& attempt) override {
    if (plan.run().run_id != run_id_ || attempt.outcome == AttemptOutcome::kSuccess) return;
    if (inst.state == InstanceState::kRetryWait) {
      Line(plan, inst.task + "[" + inst.partition + "] attempt " + std::to_string(attempt.number) + " " +
                     std::string(ToString(attempt.outcome)) + (attempt.exit_code ? " exit=" + std::to_string(*attempt.exit_code) : "") +
                     ", retrying; log: " + attempt.log_path);
    } else if (inst.state == InstanceState::kFailed) {
      Line(plan, inst.task + "[" + inst.partition + "] failed" +
                     (attempt.error.empty() ? "" : ": " + attempt.error) + "; log: " + attempt.log_path);
    }
  }

  void OnRunFinished(const engine::RunPlan& plan) override {
    if (plan.run().run_id != run_id_) return;
    if (tty_) Redraw(plan, true);
    final_state_ = plan.run().state;
    PrintSummary(plan);
    done_ = true;
  }

  bool done() const { return done_; }
  RunState final_state() const { return final_state_; }

 private:
  // "HH:MM:SS" (UTC), formatted once per second: a fan-out prints thousands of lines.
  const std::string& Stamp() {
    const auto now = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
    if (now != stamp_second_) {
      stamp_second_ = now;
      stamp_ = date::format("%H:%M:%S", now);
    }
    return stamp_;
  }

  // Piped or redirected, stdout is block-buffered: flush at most every 100 ms, so that
  // the lines stay live in a log without a write per line.
  void FlushNowAndThen() {
    const auto now = std::chrono::steady_clock::now();
    if (now - last_flush_ < std::chrono::milliseconds(100)) return;
    last_flush_ = now;
    std::fflush(stdout);
  }

  void Line(const engine::RunPlan& plan, const std::string& text) {
    if (tty_) std::cout << "\r\033[K";
    std::cout << Stamp() << " " << text << "\n";
    if (tty_) Redraw(plan, false);
  }

  void Redraw(const engine::RunPlan& plan, bool final) {
    auto now = std::chrono::steady_clock::now();
    if (!final && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    size_t total = plan.size();
    size_t done = 0;
    for (auto s : {InstanceState::kSuccess, InstanceState::kFailed, InstanceState::kSkipped,
                   InstanceState::kUpstreamFailed, InstanceState::kCancelled})
      done += plan.CountIn(s);
    const int width = 30;
    int filled = total ? static_cast<int>(width * done / total) : width;
    std::string bar(filled, '#');
    bar.resize(width, '-');
    std::printf("\r\033[K[%s] %zu/%zu  running %d  queued %d  retry %d  ok %d  failed %d  skipped %d  upstream_failed %d",
                bar.c_str(), done, total, plan.CountIn(InstanceState::kRunning),
                plan.CountIn(InstanceState::kQueued), plan.CountIn(InstanceState::kRetryWait),
                plan.CountIn(InstanceState::kSuccess), plan.CountIn(InstanceState::kFailed),
                plan.CountIn(InstanceState::kSkipped), plan.CountIn(InstanceState::kUpstreamFailed));
    if (final) std::printf("\n");
    std::fflush(stdout);
  }

  void PrintSummary(const engine::RunPlan& plan) {
    struct TaskSummary {
      int ok = 0, failed = 0, skipped = 0, other = 0, attempts = 0;
      double slowest = -1;
      std::string slowest_partition;
    };
    std::vector<std::string> order;
    std::map<std::string, TaskSummary> by_task;
    for (size_t i = 0; i < plan.size(); ++i) {
      const auto& inst = plan.instance(i);
      if (!by_task.count(inst.task)) order.push_back(inst.task);
      auto& t = by_task[inst.task];
      switch (inst.state) {
        case InstanceState::kSuccess: ++t.ok; break;
        case InstanceState::kFailed: ++t.failed; break;
        case InstanceState::kSkipped: ++t.skipped; break;
        default: ++t.other; break;
      }
      t.attempts += inst.attempts;
      double d = Seconds(inst.started_at, inst.ended_at);
      if (inst.attempts > 0 && d > t.slowest) {
        t.slowest = d;
        t.slowest_partition = inst.partition;
      }
    }
    const auto& run = plan.run();
    std::printf("\nrun %s (%s, key %s): %s in %.2fs\n", run.run_id.c_str(), run.dag.c_str(), run.run_key.c_str(),
                std::string(ToString(run.state)).c_str(),
                std::max(0.0, Seconds(run.started_at, run.ended_at)));  // a run of skips may end "before" it started
    std::printf("%-24s %6s %6s %7s %7s %8s  %s\n", "TASK", "OK", "FAILED", "SKIPPED", "OTHER", "ATTEMPTS",
                "SLOWEST");
    for (const auto& name : order) {
      const auto& t = by_task[name];
      std::string slowest = t.slowest >= 0 ? "[" + t.slowest_partition + "] " + FormatDuration(Millis(
                                                 static_cast<int64_t>(t.slowest * 1000))) : "-";
      std::printf("%-24s %6d %6d %7d %7d %8d  %s\n", name.c_str(), t.ok, t.failed, t.skipped, t.other, t.attempts,
                  slowest.c_str());
    }
    std::fflush(stdout);
  }

  std::string run_id_;
  bool tty_;
  bool done_ = false;
  RunState final_state_ = RunState::kFailed;
  std::chrono::steady_clock::time_point last_draw_{};
  std::chrono::steady_clock::time_point last_flush_{};
  std::chrono::sys_seconds stamp_second_{};
  std::string stamp_;
};


// The DAG file as loaded, its time zone, --date and --param: prints what is wrong and
// returns the exit status (1 for the file, 2 for the command line), or 0.
int CheckRunInput(const RunCommandOptions& options, dag::LoadResult loaded, dag::DagPtr& dag,
                  const date::time_zone*& zone, SysSeconds& logical) {
  if (!loaded.ok()) {
    for (const auto& d : loaded.errors) std::cerr << d.ToString() << "\n";
    return 1;
  }
  dag = loaded.dag;
  auto found = LookupZone(dag->timezone);
  if (!found.ok()) {
    std::cerr << "batchd: " << found.status().message() << "\n";
    return 1;
  }
  zone = *found;
  logical = std::chrono::floor<std::chrono::seconds>(SystemClock::Instance().Now());
  if (options.date) {
    auto parsed = ParseInstant(*options.date, zone);
    if (!parsed.ok()) {
      std::cerr << "batchd: --date: " << parsed.status().message() << "\n";
      return 2;
    }
    logical = *parsed;
  }
  for (const auto& [k, _] : options.params) {
    if (!dag->params.count(k)) {
      std::cerr << "batchd: --param " << k << ": DAG '" << dag->name << "' has no parameter '" << k << "'\n";
      return 2;
    }
  }
  return 0;
}

}  // namespace

int RunForeground(const RunCommandOptions& options) {
  executor::OrphanGuard guard;  // first: forked while the process is small (SubprocessRunnerOptions::guard)
  guard.DetachHelper();         // the process exits right after this function
  if (Status st = SetupLogging(options.log_level, "text"); !st.ok()) {
    std::cerr << "batchd: " << st.message() << "\n";
    return 2;
  }
  // The DAG file parses on a thread while a new store is created: each takes milliseconds
  // (~5 and ~3 for a 200-task file). Bad input must change nothing, so what the creation
  // made is removed again if the file or the command line turns out bad. An existing
  // store opens only after the checks: opening it may migrate its schema.
  const auto new_store_paths = store::NewStorePaths::Before(options.data_dir);
  auto loading = std::async(std::launch::async, [&options] { return dag::LoadDagFile(options.file); });
  // Durable at exit rather than at every commit: the exit status is this command's only
  // acknowledgement (docs/store-schema.md, "Durability").
  auto open_store = [&options] { return store::Store::Open(options.data_dir, store::Store::SyncMode::kOnFlush); };
  std::optional<Result<std::unique_ptr<store::Store>>> opened;
  if (new_store_paths.creates_database()) opened = open_store();
  dag::DagPtr dag;
  const date::time_zone* zone = nullptr;
  SysSeconds logical{};
  if (int invalid = CheckRunInput(options, loading.get(), dag, zone, logical); invalid != 0) {
    if (opened) store::Store::Discard(opened->ok() ? std::move(**opened) : nullptr, new_store_paths);
    return invalid;
  }
  // Pools are slot limits of the daemon's config; a run without the daemon has none.
  std::set<std::string> pools;
  for (const auto& task : dag->tasks)
    if (!task.pool.empty() && pools.insert(task.pool).second)
      std::cerr << "batchd run: pool '" << task.pool
                << "' has no slot limit here (pools are limits of the daemon config); its tasks are limited only "
                   "by --workers\n";
  if (!opened) opened = open_store();
  if (!opened->ok()) {
    std::cerr << "batchd: " << opened->status().message() << "\n";
    return 1;
  }
  std::unique_ptr<store::Store> store = std::move(**opened);
  asio::io_context io;
  executor::SubprocessRunnerOptions runner_options;
  runner_options.workers = options.workers > 0 ? options.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  runner_options.guard = &guard;
  executor::SubprocessRunner runner(io, runner_options);
  engine::DagVersionCache versions(*store);
  versions.Add(dag);
  engine::EngineOptions engine_options;
  engine_options.base_env = TaskBaseEnvironment(DefaultEnvPassthrough());
  engine_options.orphan_guard = &guard;
  engine_options.only_dag = dag->name;
  engine::Engine engine(io, *store, runner, SystemClock::Instance(), engine_options,
                        [&](const std::string& name, const std::string& hash) { return versions.Resolve(name, hash); });
  if (Status st = engine.Recover(); !st.ok()) {
    std::cerr << "batchd: recovering from " << options.data_dir << ": " << st.message() << "\n";
    return 1;
  }

  // A previous invocation killed mid-run is finished first (its lost attempts retry);
  // then this invocation's run. A key that exists already gets a "#N" suffix, so each
  // invocation is a new run whose already-succeeded instances are skipped.
  engine::RunRequest request;
  request.dag = dag;
  request.trigger = "manual";
  request.logical_date = request.interval_start = request.interval_end = logical;
  request.params = options.params;
  request.force = options.force;
  const std::string base_key = dag->name + "@" + FormatIso(logical, zone);
  std::optional<engine::CreatedRun> created;
  for (int n = 1; n < 10000 && !created; ++n) {
    request.run_key = n == 1 ? base_key : base_key + "#" + std::to_string(n);
    auto r = engine.CreateRun(request);
    if (!r.ok()) {
      std::cerr << "batchd: " << r.status().message() << "\n";
      return 1;
    }
    if (r->created) {
      created = *r;
    } else if (!IsTerminal(r->run.state)) {
      std::cout << "resuming run " << r->run.run_id << " (" << r->run.run_key << ") left unfinished\n";
      created = *r;
    }
  }
  if (!created) return 1;
  const bool tty = ::isatty(STDOUT_FILENO);
  ProgressPrinter progress(created->run.run_id, tty);
  engine.AddObserver(&progress);
  std::cout << "run " << created->run.run_id << " of " << dag->name << " (key " << created->run.run_key
            << ", data dir " << options.data_dir << ")\n";
  std::cout.flush();

  // SIGINT/SIGTERM: stop dispatching, kill running attempts (they become queued again
  // and run on the next invocation), exit non-zero.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  bool interrupted = false;
  signals.async_wait([&](const boost::system::error_code& ec, int) {
    if (ec) return;
    interrupted = true;
    engine.StopDispatching();
    runner.Shutdown(std::chrono::seconds(5));  // reports every attempt; the engine records them from `io`
  });
  while (!progress.done() && !interrupted) io.run_one_for(std::chrono::milliseconds(200));
  signals.cancel();
  if (interrupted) io.poll();  // records the killed attempts as cancelled, their instances as queued
  if (Status st = store->Flush(); !st.ok()) {
    std::cerr << "batchd: " << st.message() << "\n";
    return 1;
  }
  if (interrupted) {
    std::cerr << "batchd: interrupted; run " << created->run.run_id << " resumes on the next `batchd run`\n";
    ExitWithoutTeardown(1);
  }
  ExitWithoutTeardown(progress.final_state() == RunState::kSuccess ? 0 : 1);
}

}  // namespace batchd::daemon
