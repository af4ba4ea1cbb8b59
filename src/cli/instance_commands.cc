// Instance commands: mark and clear, an operator's decisions on single task instances.
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>

#include "cli/api.h"
#include "cli/commands.h"
#include "cli/output.h"

namespace batchd::cli {

namespace {

struct MarkOptions {
  std::string run_id;
  std::string task;
  std::string partition;
  std::string state;
  std::string reason;
};

struct ClearOptions {
  std::string run_id;
  std::string task;
  std::string partition;
  bool downstream = false;
  bool force = false;
};

// "of task T" or "of task T partition P".
std::string Which(const std::string& task, const std::string& partition) {
  std::string out = "of task " + task;
  if (!partition.empty()) out += " partition " + partition;
  return out;
}

int RunMark(const GlobalOptions& global, const MarkOptions& o) {
  Json body = {{"task", o.task}, {"state", o.state}, {"reason", o.reason}};
  if (!o.partition.empty()) body["partition"] = o.partition;
  Api api(global);
  auto reply = api.Call("POST", RunPath(o.run_id) + "/mark", body);
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
    return kExitOk;
  }
  std::cout << "run " << Str(*reply, "run_id", o.run_id) << ": "
            << Plural(Int(*reply, "marked").value_or(0), "instance") << " " << Which(o.task, o.partition)
            << " marked " << o.state << " (" << o.reason << ")\n";
  return kExitOk;
}

int RunClear(const GlobalOptions& global, const ClearOptions& o) {
  Json body = {{"task", o.task}};
  if (!o.partition.empty()) body["partition"] = o.partition;
  if (o.downstream) body["downstream"] = true;
  if (o.force) body["force"] = true;
  Api api(global);
  auto reply = api.Call("POST", RunPath(o.run_id) + "/clear", body);
  if (!reply) return api.exit_code();
  if (global.json) {
    PrintJson(*reply);
    return kExitOk;
  }
  const int64_t cleared = Int(*reply, "cleared").value_or(0);
  const int64_t skipped = Int(*reply, "skipped_for_key").value_or(0);
  std::cout << "run " << Str(*reply, "run_id", o.run_id) << ": " << Plural(cleared, "instance") << " "
            << Which(o.task, o.partition) << (o.downstream ? " and downstream" : "") << " cleared to run again"
            << (o.force ? ", idempotency keys ignored" : "") << "\n";
  if (skipped > 0) {
    std::cout << (skipped == cleared ? (cleared == 1 ? "it" : "all of them") : std::to_string(skipped) + " of them")
              << " already succeeded under the same idempotency key and will be skipped; "
                 "`batchctl clear --force` runs them anyway\n";
  }
  return kExitOk;
}

}  // namespace

void AddInstanceCommands(CLI::App& app, const GlobalOptions& global, Action& action) {
  auto mark = std::make_shared<MarkOptions>();
  auto* m = app.add_subcommand("mark", "set instances that are not running to success, failed or skipped");
  m->add_option("RUN_ID", mark->run_id, "run id")->required();
  m->add_option("TASK", mark->task, "task id")->required();
  m->add_option("STATE", mark->state, "success, failed or skipped")
      ->required()
      ->check(CLI::IsMember({"success", "failed", "skipped"}));
  m->add_option("--partition", mark->partition, "only this partition (default: every partition of the task)");
  m->add_option("--reason", mark->reason, "why; kept on the instances and in the audit log")->required();
  m->callback([&global, &action, mark] { action = [&global, mark] { return RunMark(global, *mark); }; });

  auto clear = std::make_shared<ClearOptions>();
  auto* c = app.add_subcommand("clear", "run finished instances again (skipped when their idempotency key succeeded)");
  c->add_option("RUN_ID", clear->run_id, "run id")->required();
  c->add_option("TASK", clear->task, "task id")->required();
  c->add_option("--partition", clear->partition, "only this partition (default: every partition of the task)");
  c->add_flag("--downstream", clear->downstream, "also every instance downstream of them");
  c->add_flag("--force", clear->force, "run them even when their idempotency key already succeeded");
  c->callback([&global, &action, clear] { action = [&global, clear] { return RunClear(global, *clear); }; });
}

}  // namespace batchd::cli
