// batchctl: the command-line client of batchd.
#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <iostream>

#include <CLI/CLI.hpp>

#include "batchd/version.h"
#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/offline_commands.h"
#include "dag/text_util.h"

namespace {

// The first word on the command line that is not an option (or an option's value), or ""
// when there is none. Only --socket takes a value among batchctl's global options.
std::string FirstCommandWord(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") return i + 1 < argc ? argv[i + 1] : "";
    if (arg == "--socket") {
      ++i;
      continue;
    }
    if (!arg.empty() && arg[0] == '-') continue;
    return arg;
  }
  return "";
}

// "batchctl: unknown command 'stauts'; did you mean 'status'?" for a word that names no
// command (CLI11 alone would only say that a subcommand is required).
bool ReportUnknownCommand(const CLI::App& app, const std::string& word) {
  if (word.empty()) return false;
  std::vector<std::string> names;
  for (const auto* sub : app.get_subcommands({})) {
    if (sub->get_name() == word) return false;
    names.push_back(sub->get_name());
  }
  std::string nearest = batchd::dag::internal::Suggest(word, names);
  std::cerr << "batchctl: unknown command " << batchd::dag::internal::QuoteForMessage(word)
            << (nearest.empty() ? "; batchctl --help lists the commands" : "; did you mean '" + nearest + "'?")
            << "\n";
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace batchd::cli;
  CLI::App app{"batchctl: control and inspect the batchd batch orchestrator"};
  app.set_version_flag("--version", std::string("batchctl ") + batchd::kVersion);
  app.require_subcommand(1);
  GlobalOptions global;
  app.add_option("--socket", global.socket,
                 "control socket (default: $BATCHD_SOCKET, ./.batchd/batchd.sock, /run/batchd/batchd.sock)");
  app.add_flag("--json", global.json, "machine-readable JSON output");
  app.fallthrough();

  std::vector<std::string> validate_files;
  auto* validate = app.add_subcommand("validate", "check DAG files offline; exit 1 if any has errors");
  validate->add_option("FILE", validate_files, "DAG files")->required();

  NextOptions next;
  auto* next_cmd = app.add_subcommand("next", "preview the fire times of a cron expression (offline)");
  next_cmd->add_option("CRON", next.cron, "cron expression or macro, e.g. \"30 2 * * *\" or @daily")->required();
  next_cmd->add_option("--tz", next.tz, "IANA time zone the schedule is evaluated in")->capture_default_str();
  next_cmd->add_option("--from", next.from, "ISO-8601 start (exclusive); without an offset read in --tz; default now");
  next_cmd->add_option("--count", next.count, "how many fire times")->capture_default_str()->check(CLI::Range(1, 10000));

  // Daemon commands: each stores its work in `action` when chosen (commands.h).
  Action action;
  AddDagCommands(app, global, action);
  AddRunCommands(app, global, action);
  AddInstanceCommands(app, global, action);
  AddLogCommands(app, global, action);
  AddAdminCommands(app, global, action);

  for (auto* sub : app.get_subcommands({})) sub->fallthrough();

  if (ReportUnknownCommand(app, FirstCommandWord(argc, argv))) return kExitUsage;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  if (validate->parsed()) return RunValidate(global, validate_files);
  if (next_cmd->parsed()) return RunNext(global, next);
  if (action) return action();
  return kExitUsage;
}
