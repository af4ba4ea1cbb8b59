// Following runs until they end (see wait.h).
#include "cli/wait.h"

#include <unistd.h>

#include <chrono>
#include <iostream>
#include <map>
#include <thread>

namespace batchd::cli {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPollInterval = std::chrono::milliseconds(300);
constexpr auto kBatchPollInterval = std::chrono::milliseconds(500);
// How long a restarting daemon is waited for before giving up with exit 3.
constexpr auto kRestartGrace = std::chrono::seconds(60);

// Instance states in the order a progress line lists them.
constexpr const char* kInstanceStates[] = {"success", "skipped", "running", "retry_wait", "queued",
                                           "pending", "failed", "upstream_failed", "cancelled"};

bool IsTerminalInstanceState(const std::string& s) {
  return s == "success" || s == "failed" || s == "skipped" || s == "upstream_failed" || s == "cancelled";
}

// One progress line, redrawn on a terminal or printed when it changes otherwise.
class Progress {
 public:
  explicit Progress(bool json_mode) {
    int fd = json_mode ? STDERR_FILENO : STDOUT_FILENO;
    out_ = json_mode ? &std::cerr : &std::cout;
    redraw_ = IsTerminal(fd);
    if (json_mode && !redraw_) out_ = nullptr;  // keep a redirected stderr free of noise
    width_ = redraw_ ? TerminalWidth(fd) : 0;
  }
  ~Progress() { Finish(); }

  // `status` is what counts as a change; `suffix` (elapsed time) is only shown.
  void Update(const std::string& status, const std::string& suffix) {
    if (out_ == nullptr) return;
    if (redraw_) {
      std::string line = status + (suffix.empty() ? "" : "  " + suffix);
      if (width_ > 1) line = Shorten(line, static_cast<size_t>(width_ - 1));
      *out_ << "\r\033[K" << line << std::flush;
      drawn_ = true;
    } else if (status != last_) {
      *out_ << status << "\n" << std::flush;
    }
    last_ = status;
  }

  // Clears a redrawn line so what follows starts on a clean line.
  void Finish() {
    if (out_ != nullptr && drawn_) *out_ << "\r\033[K" << std::flush;
    drawn_ = false;
  }

 private:
  std::ostream* out_ = nullptr;
  bool redraw_ = false;
  bool drawn_ = false;
  int width_ = 0;
  std::string last_;
};

// GET `target` as JSON, riding out a daemon restart. nullopt once a failure is reported.
std::optional<Json> Poll(Api& api, const std::string& target, Progress& progress) {
  std::optional<Clock::time_point> failing_since;
  while (true) {
    auto response = api.Send("GET", target);
    bool transient = !response.ok() || response->status == 503;
    if (!transient) {
      if (response->status < 200 || response->status >= 300) {
        progress.Finish();
        api.ReportHttpError(*response);
        return std::nullopt;
      }
      Json parsed = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded() || !parsed.is_object()) {
        progress.Finish();
        api.ReportFailure("bad_reply", "batchd sent a reply that is not a JSON object to GET " + target);
        return std::nullopt;
      }
      return parsed;
    }
    auto now = Clock::now();
    if (!failing_since) failing_since = now;
    if (now - *failing_since > kRestartGrace) {
      progress.Finish();
      if (!response.ok()) {
        api.ReportUnreachable(response.status().message());
      } else {
        api.ReportHttpError(*response);
      }
      return std::nullopt;
    }
    std::string why = response.ok() ? "batchd is unavailable (HTTP 503)" : response.status().message();
    progress.Update("waiting for batchd to come back: " + why, "");
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

// Instances per state over the run's `counts` ({"TASK": {"STATE": n}}).
std::map<std::string, int64_t> StateTotals(const Json& run) {
  std::map<std::string, int64_t> totals;
  const Json& counts = Field(run, "counts");
  if (!counts.is_object()) return totals;
  for (const auto& [_, by_state] : counts.items()) {
    if (!by_state.is_object()) continue;
    for (const auto& [state, n] : by_state.items())
      if (n.is_number_integer()) totals[state] += n.get<int64_t>();
  }
  return totals;
}

// "running  3/10 done: success 3, running 2, pending 5"
std::string RunStatusLine(const Json& run) {
  std::map<std::string, int64_t> counts = StateTotals(run);
  int64_t total = 0, done = 0;
  for (const auto& [s, n] : counts) {
    total += n;
    if (IsTerminalInstanceState(s)) done += n;
  }
  std::string line = "run " + Str(run, "run_id") + " " + Str(run, "state", "?");
  if (total == 0) return line;
  line += "  " + std::to_string(done) + "/" + std::to_string(total) + " done:";
  bool first = true;
  auto add = [&](const std::string& state, int64_t n) {
    line += (first ? " " : ", ") + state + " " + std::to_string(n);
    first = false;
  };
  for (const char* s : kInstanceStates) {
    auto it = counts.find(s);
    if (it != counts.end()) {
      add(s, it->second);
      counts.erase(it);
    }
  }
  for (const auto& [s, n] : counts) add(s, n);  // states this client does not know yet
  return line;
}

// Polls cost O(1) on the daemon: the run and its counts, no instances.
std::string PollTarget(const std::string& run_id) { return RunPath(run_id) + "?limit=0"; }

// How many failed instances a finished run's summary lists.
constexpr int kFailuresListed = 50;

}  // namespace

bool IsTerminalRunState(const std::string& state) {
  return state == "success" || state == "failed" || state == "cancelled";
}

std::string InstanceLabel(const Json& instance) {
  std::string label = Str(instance, "task", "?");
  std::string partition = Str(instance, "partition", "-");
  if (partition != "-" && !partition.empty()) label += "[" + partition + "]";
  return label;
}

std::optional<Json> WaitForRun(Api& api, const std::string& run_id) {
  Progress progress(api.global().json);
  const std::string target = PollTarget(run_id);
  while (true) {
    auto run = Poll(api, target, progress);
    if (!run) return std::nullopt;
    std::string state = Str(*run, "state");
    if (IsTerminalRunState(state)) {
      progress.Finish();
      if (state == "success") return run;
      // Once, at the end: the instances that did not succeed, for the summary.
      return Poll(api, RunPath(run_id) + "?state=failed,upstream_failed,cancelled&limit=" +
                           std::to_string(kFailuresListed), progress);
    }
    std::string elapsed = ElapsedCell(*run, Now());
    progress.Update(RunStatusLine(*run), elapsed == "-" ? "" : elapsed);
    std::this_thread::sleep_for(kPollInterval);
  }
}

std::optional<std::vector<Json>> WaitForRuns(Api& api, const std::string& label,
                                             const std::vector<std::string>& run_ids) {
  Progress progress(api.global().json);
  std::vector<Json> runs(run_ids.size());
  std::vector<bool> done(run_ids.size(), false);
  auto started = Clock::now();
  while (true) {
    std::map<std::string, int> counts;
    size_t finished = 0;
    for (size_t i = 0; i < run_ids.size(); ++i) {
      if (!done[i]) {
        auto run = Poll(api, PollTarget(run_ids[i]), progress);
        if (!run) return std::nullopt;
        runs[i] = std::move(*run);
        done[i] = IsTerminalRunState(Str(runs[i], "state"));
      }
      ++counts[Str(runs[i], "state", "?")];
      if (done[i]) ++finished;
    }
    if (finished == run_ids.size()) {
      progress.Finish();
      return runs;
    }
    std::string line = label + "  " + std::to_string(finished) + "/" + std::to_string(run_ids.size()) +
                       " runs done:";
    bool first = true;
    for (const char* s : {"success", "failed", "cancelled", "running", "queued"}) {
      auto it = counts.find(s);
      if (it == counts.end()) continue;
      line += (first ? " " : ", ") + std::string(s) + " " + std::to_string(it->second);
      first = false;
    }
    progress.Update(line, HumanDuration(std::chrono::duration_cast<std::chrono::milliseconds>(
                              Clock::now() - started)));
    std::this_thread::sleep_for(kBatchPollInterval);
  }
}

void PrintRunOutcome(const Json& run) {
  const std::string run_id = Str(run, "run_id");
  const std::string state = Str(run, "state", "?");
  std::string line = "run " + run_id + " " + state;
  std::string elapsed = ElapsedCell(run, Now());
  if (elapsed != "-") line += " in " + elapsed;
  const std::map<std::string, int64_t> counts = StateTotals(run);
  if (!counts.empty()) {
    line += " (";
    bool first = true;
    for (const auto& [s, n] : counts) {
      line += (first ? "" : ", ") + std::to_string(n) + " " + s;
      first = false;
    }
    line += ")";
  }
  std::cout << line << "\n";
  if (std::string error = Str(run, "error"); !error.empty()) std::cout << "  error: " << error << "\n";
  const Json& failed = Field(run, "tasks");  // the failures WaitForRun fetched
  if (state == "success" || !failed.is_array() || failed.empty()) return;
  const Json* first_failed = nullptr;
  for (const Json& t : failed) {
    std::string s = Str(t, "state");
    std::string detail = "  " + InstanceLabel(t) + "  " + s;
    auto code = Int(t, "exit_code");
    if (code) detail += ", exit " + std::to_string(*code);
    if (auto attempts = Int(t, "attempts"); attempts && *attempts > 0) {
      detail += ", " + Plural(*attempts, "attempt");
    }
    // A failed instance's reason is its last attempt's ("timeout", "signal SIGKILL"); an
    // exit code is said already.
    std::string reason = Str(t, "reason");
    if (!reason.empty() && !(code && reason == "exit code " + std::to_string(*code))) detail += " (" + reason + ")";
    std::cout << detail << "\n";
    if (first_failed == nullptr && s == "failed") first_failed = &t;
  }
  if (Bool(run, "more").value_or(false)) {
    int64_t not_succeeded = 0;
    for (const char* s : {"failed", "upstream_failed", "cancelled"})
      if (auto it = counts.find(s); it != counts.end()) not_succeeded += it->second;
    std::cout << "  (" << Plural(not_succeeded - static_cast<int64_t>(failed.size()), "more instance")
              << " not listed: batchctl status " << run_id << " --state failed)\n";
  }
  if (first_failed != nullptr) {
    std::string hint = "logs: batchctl logs " + run_id + " " + Str(*first_failed, "task");
    std::string partition = Str(*first_failed, "partition", "-");
    if (partition != "-" && !partition.empty()) hint += " --partition " + partition;
    std::cout << hint << "\n";
  }
}

}  // namespace batchd::cli
