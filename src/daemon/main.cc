// batchd: the batch orchestrator daemon.
#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <iostream>

#include <CLI/CLI.hpp>

#include "batchd/version.h"
#include "daemon/run_command.h"

int main(int argc, char** argv) {
  using namespace batchd::daemon;
  CLI::App app{"batchd: a batch orchestrator daemon"};
  app.set_version_flag("--version", std::string("batchd ") + batchd::kVersion);

  RunCommandOptions run;
  std::vector<std::string> run_params;
  auto* run_cmd = app.add_subcommand("run", "run a DAG file once in the foreground (no daemon); exit 0 if it succeeded");
  run_cmd->add_option("FILE", run.file, "DAG file")->required();
  run_cmd->add_option("--date", run.date, "logical date (YYYY-MM-DD = midnight in the DAG's zone, or ISO-8601)");
  run_cmd->add_option("--param", run_params, "override a parameter, K=V (repeatable)");
  run_cmd->add_option("--data-dir", run.data_dir, "state directory (SQLite database and logs)")->capture_default_str();
  run_cmd->add_option("--workers", run.workers, "parallel attempts (default: number of CPUs)")->check(CLI::Range(1, 4096));
  run_cmd->add_flag("--force", run.force, "run instances even if their idempotency key already succeeded");
  run_cmd->add_option("--log-level", run.log_level, "trace|debug|info|warn|error")->capture_default_str();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (run_cmd->parsed()) {
    for (const auto& kv : run_params) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) {
        std::cerr << "batchd: --param expects K=V, got '" << kv << "'\n";
        return 2;
      }
      run.params[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    return RunForeground(run);
  }
  std::cout << app.help();
  return 0;
}
