#pragma once
// Api: one batchctl command's conversation with the daemon. It resolves the socket, sends
// requests through HttpClient, and turns the two kinds of failure into the CLI contract:
//   unreachable  -> "batchctl: cannot reach batchd at PATH: REASON (is the daemon running?)", exit 3
//   API error    -> "batchctl: MESSAGE" (with --json the API's error object as is),
//                   exit 4 for 404, 1 for any other status
// Not thread-safe; one per command.

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/client.h"

namespace batchd::cli {

class Api {
 public:
  explicit Api(const GlobalOptions& global);

  // Sends a request and returns the reply's JSON body (null when empty) on 2xx. Otherwise the
  // failure has been printed, nullopt is returned and exit_code() says how to exit.
  std::optional<nlohmann::json> Call(std::string_view method, const std::string& target,
                                     const std::optional<nlohmann::json>& body = std::nullopt);

  // Like Call, but returns the raw 2xx reply (for text/plain logs).
  std::optional<HttpResponse> CallRaw(std::string_view method, const std::string& target);

  // For polling loops that ride out a daemon restart: sends once and reports nothing.
  // The result is an Unavailable status when the daemon could not be reached.
  Result<HttpResponse> Send(std::string_view method, const std::string& target,
                            const std::optional<nlohmann::json>& body = std::nullopt) const;

  // Prints what Call prints for these failures and records the exit code.
  void ReportUnreachable(const std::string& reason);
  void ReportHttpError(const HttpResponse& response);
  // Prints an error that is batchctl's own (e.g. a reply it cannot understand); exit 1.
  void ReportFailure(const std::string& code, const std::string& message);

  // The exit code of the last reported failure, kExitOk if none.
  int exit_code() const { return exit_code_; }
  const std::string& socket_path() const { return client_.socket_path(); }
  const GlobalOptions& global() const { return global_; }

 private:
  const GlobalOptions& global_;
  SocketChoice socket_;
  HttpClient client_;
  int exit_code_ = kExitOk;
};

// "/v1/dags/NAME" style path building: each segment percent-encoded.
std::string DagPath(const std::string& dag);
std::string RunPath(const std::string& run_id);

// Appends "?k=v&..." for the non-empty values, percent-encoded.
class Query {
 public:
  Query& Add(std::string_view key, const std::string& value);
  std::string Apply(const std::string& path) const { return path + query_; }

 private:
  std::string query_;
};

}  // namespace batchd::cli
