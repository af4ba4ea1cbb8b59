// batchd: the batch orchestrator daemon.
#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>

#include "batchd/version.h"
#include "daemon/config.h"
#include "daemon/daemon.h"
#include "daemon/run_command.h"
#include "store/store.h"

namespace {

struct ServeFlags {
  std::string config;
  std::optional<std::string> data_dir, dags_dir, socket, http, log_level;
  std::optional<int> workers;
  std::optional<double> clock_offset;
};

void AddServeFlags(CLI::App* app, ServeFlags& f) {
  app->add_option("--config", f.config, "config file (see config/batchd.yaml)");
  app->add_option("--data-dir", f.data_dir, "state directory: SQLite database, attempt logs (default ./.batchd)");
  app->add_option("--dags-dir", f.dags_dir, "directory of DAG files loaded at start and on reload (default ./dags)");
  app->add_option("--socket", f.socket, "control socket (default <data-dir>/batchd.sock)");
  app->add_option("--http", f.http, "HOST:PORT for /metrics and /healthz (default 127.0.0.1:9464; '' disables)");
  app->add_option("--workers", f.workers, "parallel attempts (default: number of CPUs)")->check(CLI::Range(1, 4096));
  app->add_option("--log-level", f.log_level, "trace|debug|info|warn|error");
  app->add_option("--clock-offset", f.clock_offset, "testing only: shift the daemon's clock by this many seconds")
      ->group("");
}

// The config file's settings, or the defaults without one; nullopt (after printing why)
// when the file is bad.
std::optional<batchd::daemon::Config> LoadConfigOrDefaults(const std::string& config_file) {
  if (config_file.empty()) {
    batchd::daemon::Config config;
    config.pools = batchd::daemon::DefaultPools();
    return config;
  }
  auto loaded = batchd::daemon::LoadConfig(config_file);
  if (!loaded.ok()) {
    std::cerr << loaded.status().message() << "\n";
    return std::nullopt;
  }
  return *loaded;
}

int RunServe(const ServeFlags& f) {
  std::optional<batchd::daemon::Config> loaded = LoadConfigOrDefaults(f.config);
  if (!loaded) return 2;
  batchd::daemon::Config& config = *loaded;
  if (f.data_dir) config.data_dir = *f.data_dir;
  if (f.dags_dir) config.dags_dir = *f.dags_dir;
  if (f.socket) config.socket = *f.socket;
  if (f.http) config.http = *f.http;
  if (f.workers) config.workers = *f.workers;
  if (f.log_level) config.log_level = *f.log_level;
  if (f.clock_offset) config.clock_offset = batchd::Millis(static_cast<int64_t>(*f.clock_offset * 1000));
  return batchd::daemon::Serve(config, f.config);
}

// `batchd check`: the full integrity check that start-up runs only after an unclean
// shutdown or an upgrade. Reads through its own read-only connection, so the daemon
// may keep running.
int RunCheck(const std::string& config_file, const std::optional<std::string>& data_dir_flag) {
  std::optional<batchd::daemon::Config> config = LoadConfigOrDefaults(config_file);
  if (!config) return 2;
  const std::string data_dir = data_dir_flag ? *data_dir_flag : config->data_dir;
  batchd::Status st = batchd::store::Store::CheckIntegrity(data_dir);
  if (!st.ok()) {
    std::cerr << "batchd check: " << st.message() << "\n";
    return 1;
  }
  std::cout << "batchd check: database '" << data_dir << "/batchd.db' is intact\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace batchd::daemon;
  CLI::App app{"batchd: a batch orchestrator daemon.\nWith no command it serves (same as `batchd serve`)."};
  app.set_version_flag("--version", std::string("batchd ") + batchd::kVersion);

  ServeFlags top_flags, serve_flags;
  AddServeFlags(&app, top_flags);
  auto* serve_cmd = app.add_subcommand("serve", "run the daemon: scheduler, executor, control socket, metrics");
  AddServeFlags(serve_cmd, serve_flags);

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

  std::string check_config;
  std::optional<std::string> check_data_dir;
  auto* check_cmd = app.add_subcommand(
      "check", "check the database's integrity (PRAGMA integrity_check, foreign_key_check); safe while serving");
  check_cmd->add_option("--config", check_config, "config file naming the data directory");
  check_cmd->add_option("--data-dir", check_data_dir, "state directory (default ./.batchd, or the config's)");

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
  if (check_cmd->parsed()) return RunCheck(check_config, check_data_dir);
  return RunServe(serve_cmd->parsed() ? serve_flags : top_flags);
}
