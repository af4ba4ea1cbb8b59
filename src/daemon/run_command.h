#pragma once
// `batchd run FILE`: one run of a DAG in the foreground, no daemon.

#include <map>
#include <optional>
#include <string>

namespace batchd::daemon {

struct RunCommandOptions {
  std::string file;
  std::optional<std::string> date;             // --date; default: now
  std::map<std::string, std::string> params;   // --param K=V
  std::string data_dir = ".batchd";
  int workers = 0;                              // 0: number of CPUs
  bool force = false;                           // ignore already-succeeded keys
  std::string log_level = "warn";
};

// Returns the process exit code: 0 if the run succeeded, 1 if not (or it could not
// start), 2 for bad arguments.
int RunForeground(const RunCommandOptions& options);

}  // namespace batchd::daemon
