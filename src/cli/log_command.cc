// logs: an attempt's stdout/stderr, raw, fetched in chunks from GET /v1/runs/{id}/logs.
// The daemon sends at most 1 MiB per reply, so even without --follow the log is read until a
// reply comes back empty. With --follow an empty reply of a running attempt means "wait and
// ask again"; following waits for an instance that has not started yet, continues with the
// next attempt while the instance retries, and stops once the last attempt is complete.
// stdout carries only the log: the line naming the attempt shown ("== run R task T[P]
// attempt 2 of 2 (failed, exit code 1) ==") and "(attempt 2 printed nothing)" go to stderr.
// A partitioned task without --partition lists its partitions instead.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <iostream>
#include <memory>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace batchd::cli {

namespace {

constexpr auto kFollowInterval = std::chrono::milliseconds(500);

struct LogsOptions {
  std::string run_id;
  std::string task;
  std::string partition;
  int attempt = 0;  // 0: the latest
  bool follow = false;
};

std::optional<int64_t> ParseInt(const std::string& s) {
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

// --follow on an instance that has not started yet (404 from the logs route): true while
// the run has that instance in a state that will still produce an attempt, so following
// can wait for it instead of failing.
bool WillStart(Api& api, const LogsOptions& o) {
  Query query;
  query.Add("task", o.task).Add("partition", o.partition.empty() ? "-" : o.partition);
  auto response = api.Send("GET", query.Apply(RunPath(o.run_id)));
  if (!response.ok() || response->status != 200) return false;
  Json run = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  const Json& tasks = Field(run, "tasks");
  if (!tasks.is_array()) return false;
  const std::string partition = o.partition.empty() ? "-" : o.partition;
  for (const auto& t : tasks) {
    if (Str(t, "task") != o.task || Str(t, "partition", "-") != partition) continue;
    std::string state = Str(t, "state");
    return state == "pending" || state == "queued" || state == "running" || state == "retry_wait";
  }
  return false;
}

std::string LogsTarget(const LogsOptions& o, int64_t attempt, int64_t offset) {
  Query query;
  query.Add("task", o.task).Add("partition", o.partition);
  if (attempt > 0) query.Add("attempt", std::to_string(attempt));
  if (offset > 0) query.Add("offset", std::to_string(offset));
  return query.Apply(RunPath(o.run_id) + "/logs");
}

// --follow: waits while the logs route answers 404 for `attempt` (0: any attempt) and the
// instance is still going to run it. Returns false when it will not (the caller then stops
// following, or reports the 404 itself).
bool WaitForAttempt(Api& api, const LogsOptions& o, int64_t attempt) {
  const std::string target = LogsTarget(o, attempt, 0);
  while (true) {
    auto response = api.Send("GET", target);
    if (response.ok() && response->status != 404) return true;
    if (!response.ok() || !WillStart(api, o)) return false;
    std::this_thread::sleep_for(kFollowInterval);
  }
}

std::string Label(const LogsOptions& o) {
  return o.task + (o.partition.empty() || o.partition == "-" ? "" : "[" + o.partition + "]");
}

// Without --partition: when the task's instances are all partitions (none is "-"), lists
// them and returns the exit code; nullopt when the log can be asked for as is (an
// unpartitioned task, or one the daemon does not know yet: the logs route says why).
std::optional<int> ListPartitionsInstead(Api& api, const LogsOptions& o) {
  if (!o.partition.empty()) return std::nullopt;
  Query query;
  query.Add("task", o.task);
  auto response = api.Send("GET", query.Apply(RunPath(o.run_id)));
  if (!response.ok() || response->status != 200) return std::nullopt;
  Json run = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  const Json& tasks = Field(run, "tasks");
  if (!tasks.is_array() || tasks.empty()) return std::nullopt;
  for (const auto& t : tasks)
    if (Str(t, "partition") == "-") return std::nullopt;
  if (api.global().json) {
    OrderedJson partitions = OrderedJson::array();
    for (const auto& t : tasks)
      partitions.push_back({{"partition", Field(t, "partition")}, {"state", Field(t, "state")},
                            {"attempts", Field(t, "attempts")}});
    PrintJson({{"run_id", o.run_id}, {"task", o.task}, {"partitions", partitions}});
    return kExitUsage;
  }
  int64_t total = 0;
  for (const auto& [_, n] : Field(Field(run, "counts"), o.task).items()) total += n.is_number_integer() ? n.get<int64_t>() : 0;
  total = std::max(total, static_cast<int64_t>(tasks.size()));
  std::cerr << "task " << o.task << " of run " << o.run_id << " has " << Plural(total, "partition")
            << "; show one with --partition P:\n";
  Table table({"PARTITION", "STATE", "ATTEMPTS"});
  for (const auto& t : tasks) table.AddRow({Cell(t, "partition"), Cell(t, "state"), Cell(t, "attempts")});
  table.Print(std::cerr);
  if (total > static_cast<int64_t>(tasks.size()))
    std::cerr << "(" << Plural(total - static_cast<int64_t>(tasks.size()), "more partition") << ": batchctl status "
              << o.run_id << " --task " << o.task << " --all)\n";
  return kExitUsage;
}

// "== run R task T[P] attempt 2 of 2 (failed, exit code 1) ==" on stderr, when the daemon
// knows the attempt; nothing otherwise (the logs route reports what is wrong).
void PrintAttemptHeader(Api& api, const LogsOptions& o, int64_t attempt) {
  Query query;
  query.Add("task", o.task).Add("partition", o.partition.empty() ? "-" : o.partition);
  auto response = api.Send("GET", query.Apply(RunPath(o.run_id) + "/attempts"));
  if (!response.ok() || response->status != 200) return;
  Json attempts = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (!attempts.is_array() || attempts.empty()) return;
  const Json* shown = &attempts.back();
  if (attempt > 0) {
    shown = nullptr;
    for (const auto& a : attempts)
      if (Int(a, "attempt") == attempt) shown = &a;
    if (!shown) return;
  }
  const std::string outcome = Str(*shown, "outcome", "?");
  const std::string reason = Str(*shown, "reason");
  std::cout.flush();
  std::cerr << "== run " << o.run_id << " task " << Label(o) << " attempt " << Cell(*shown, "attempt") << " of "
            << Cell(attempts.back(), "attempt") << " (" << outcome
            << (reason.empty() || reason == outcome ? "" : ", " + reason) << ") ==\n";
}

int RunLogs(const GlobalOptions& global, const LogsOptions& o) {
  Api api(global);
  if (auto rc = ListPartitionsInstead(api, o)) return *rc;
  // Wait for the first attempt, so `trigger` followed at once by `logs -f` works. If none
  // comes, the request below reports the daemon's 404.
  if (o.follow && o.attempt == 0) WaitForAttempt(api, o, 0);
  if (!global.json) PrintAttemptHeader(api, o, o.attempt);

  int64_t offset = 0;
  int64_t attempt = o.attempt;  // pinned after the first reply: a retry cannot switch logs under our offset
  bool complete = false;
  std::string collected;  // --json: the whole log, printed at the end
  int64_t printed = 0;    // bytes of the current attempt
  auto say_if_silent = [&] {
    if (!global.json && printed == 0 && attempt > 0) {
      std::cout.flush();
      std::cerr << "(attempt " << attempt << " printed nothing)\n";
    }
  };
  while (true) {
    auto reply = api.CallRaw("GET", LogsTarget(o, attempt, offset));
    if (!reply) return api.exit_code();

    if (auto a = ParseInt(reply->Header("X-Batchd-Attempt")); a && *a > 0) attempt = *a;
    complete = reply->Header("X-Batchd-Complete") == "true";
    const std::string& chunk = reply->body;
    const int64_t end = offset + static_cast<int64_t>(chunk.size());
    offset = std::max(end, ParseInt(reply->Header("X-Batchd-Next-Offset")).value_or(end));

    if (!chunk.empty()) {
      printed += static_cast<int64_t>(chunk.size());
      if (global.json) {
        collected += chunk;
      } else {
        std::cout.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        std::cout.flush();
      }
      continue;  // there may be more right away
    }
    if (!o.follow) {
      say_if_silent();
      break;
    }
    if (!complete) {
      std::this_thread::sleep_for(kFollowInterval);
      continue;
    }
    // The attempt ended. Unless one attempt was asked for, keep following while the instance
    // retries: the next attempt's output follows its header on stderr (stdout stays raw log).
    say_if_silent();
    if (o.attempt != 0 || !WillStart(api, o) || !WaitForAttempt(api, o, attempt + 1)) break;
    ++attempt;
    offset = 0;
    printed = 0;
    if (!global.json) PrintAttemptHeader(api, o, attempt);
  }
  if (global.json) {
    PrintJson({{"run_id", o.run_id},
               {"task", o.task},
               {"partition", o.partition.empty() ? "-" : o.partition},
               {"attempt", attempt > 0 ? Json(attempt) : Json()},
               {"complete", complete},
               {"log", collected}});
  }
  return kExitOk;
}

}  // namespace

void AddLogCommands(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto o = std::make_shared<LogsOptions>();
  auto* logs = app.add_subcommand("logs", "print the output of a task instance's attempt");
  logs->add_option("RUN_ID", o->run_id, "run id")->required();
  logs->add_option("TASK", o->task, "task id")->required();
  logs->add_option("--partition", o->partition,
                   "partition (default: -, the only partition of an unpartitioned task; a partitioned task "
                   "without it lists its partitions)");
  logs->add_option("--attempt", o->attempt, "attempt number (default: the latest)")->check(CLI::Range(1, 1000000));
  logs->add_flag("-f,--follow", o->follow, "keep printing output until the attempt ends");
  logs->callback([&global, &action, o] { action = [&global, o] { return RunLogs(global, *o); }; });
}

}  // namespace batchd::cli
