#pragma once
// batchctl's daemon commands. Each Add*Commands function registers its subcommands on the
// CLI11 app; when one of them is chosen on the command line, its callback stores the work in
// `action`, which main runs after parsing (so global flags given after the subcommand,
// like `batchctl runs --json`, are already set). Every action returns the process exit code.

#include <functional>

#include "cli/cli.h"

namespace CLI {
class App;
}

namespace batchd::cli {

using Action = std::function<int()>;

// submit, dags, show, delete, pause, unpause
void AddDagCommands(CLI::App& app, const GlobalOptions& global, Action& action);
// trigger, backfill, runs, status, attempts, retry, cancel, failed
void AddRunCommands(CLI::App& app, const GlobalOptions& global, Action& action);
// mark, clear
void AddInstanceCommands(CLI::App& app, const GlobalOptions& global, Action& action);
// logs
void AddLogCommands(CLI::App& app, const GlobalOptions& global, Action& action);
// reload, pools, health
void AddAdminCommands(CLI::App& app, const GlobalOptions& global, Action& action);

}  // namespace batchd::cli
