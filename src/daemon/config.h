#pragma once
// The daemon's configuration: config/batchd.yaml documents every key. Command-line flags
// override the file; with neither, the embedded default serves from ./.batchd with the
// DAGs in ./dags (SPEC section 5).

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "api/access_policy.h"
#include "common/duration.h"
#include "common/status.h"
#include "daemon/task_environment.h"

namespace batchd::daemon {

struct Config {
  std::string data_dir = ".batchd";                 // SQLite database, attempt logs, lock
  std::string dags_dir = "dags";                    // *.yaml / *.yml DAG files
  std::string socket;                               // control socket; default <data_dir>/batchd.sock
  int socket_mode = 0660;                           // file mode of the socket
  std::string http = "127.0.0.1:9464";              // /metrics and /healthz; "" disables
  int workers = 0;                                  // parallel attempts; 0 = number of CPUs
  Millis shutdown_grace = std::chrono::seconds(30); // SIGTERM: wait this long, then kill attempts
  uint64_t attempt_log_max_bytes = uint64_t{64} << 20;  // per attempt log; 0 = unlimited (docs/logs.md)
  std::map<std::string, int> pools;                 // pool name -> slots
  Millis retention = std::chrono::days(30);         // prune runs ended longer ago; 0 keeps all
  std::string log_level = "info";
  std::string log_format = "text";                  // text | json
  Millis scheduler_tick = std::chrono::seconds(2);  // longest scheduler sleep; file-trigger poll
  Millis clock_offset = Millis(0);                  // testing only: shifts the daemon's clock
  // Variables of the daemon's environment that tasks inherit (names, or prefixes ending in *).
  std::vector<std::string> env_passthrough = DefaultEnvPassthrough();

  // The `api:` section: bounds on both listeners (the control socket and `http`) and who
  // may change state (docs/http-api.md, "Limits" and "Who may change state").
  int max_connections = 256;                        // open connections per listener
  Millis idle_timeout = std::chrono::seconds(60);   // a kept-alive connection between requests
  Millis read_timeout = std::chrono::seconds(30);   // one request, head and body
  Millis write_timeout = std::chrono::seconds(30);  // one reply
  api::MutationAllowList mutation_allow_list;       // mutation_uids / mutation_groups; off unless set

  // The `ui:` section: the read-only web UI on the `http` listener (docs/ui.md).
  bool ui_enabled = true;
  // Bearer token the UI's data requests must carry; from ui.token or ui.token_file. Empty:
  // none is asked for, and the UI is off unless `http` is bound to a loopback address.
  std::string ui_token;
};

// The pools of the embedded default (batchd without --config): those of the example
// config/batchd.yaml, so that every example DAG in dags/ loads as it is.
std::map<std::string, int> DefaultPools();

// Reads `path` over `base`. Errors: "file:line:column: message" (unknown keys, with a
// suggestion when close; wrong types; bad durations).
Result<Config> LoadConfig(const std::string& path, Config base = {});

}  // namespace batchd::daemon
