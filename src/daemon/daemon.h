#pragma once
// `batchd serve`: wires the store, engine, scheduler, control API and HTTP listener on
// one io_context thread, handles signals, and shuts down in order.

#include "daemon/config.h"

namespace batchd::daemon {

// Runs until SIGTERM/SIGINT; returns the process exit code. `config_path` (may be
// empty) is re-read on SIGHUP for the reloadable settings (pools, log level).
int Serve(const Config& config, const std::string& config_path);

}  // namespace batchd::daemon
