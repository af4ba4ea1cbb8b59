#pragma once
// batchctl: command-line arguments -> (offline work | HTTP/JSON calls to the daemon) ->
// human tables or --json. Exit codes are part of the contract (SPEC section 5).

#include <string>

namespace batchd::cli {

enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,        // the operation or the awaited run failed; validation errors
  kExitUsage = 2,
  kExitUnreachable = 3,   // daemon not running / socket not connectable
  kExitNotFound = 4,
};

struct GlobalOptions {
  std::string socket;  // --socket; resolved by ResolveSocket (client.h) when empty
  bool json = false;   // --json
};

// Prints an error for a failed command: "batchctl: message" on stderr, or with --json
// {"error": {"code": ..., "message": ...}} on stdout.
void PrintError(const GlobalOptions& global, const std::string& code, const std::string& message);

}  // namespace batchd::cli
