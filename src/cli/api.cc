// Api: requests plus the CLI's error and exit-code conventions (see api.h).
#include "cli/api.h"

#include <iostream>

#include "cli/output.h"

namespace batchd::cli {

using nlohmann::json;

Api::Api(const GlobalOptions& global)
    : global_(global), socket_(ResolveSocket(global.socket)), client_(socket_.path) {}

Result<HttpResponse> Api::Send(std::string_view method, const std::string& target,
                               const std::optional<json>& body) const {
  std::optional<std::string> text;
  if (body) text = body->dump();
  return client_.Request(method, target, text);
}

std::optional<HttpResponse> Api::CallRaw(std::string_view method, const std::string& target) {
  auto response = Send(method, target);
  if (!response.ok()) {
    ReportUnreachable(response.status().message());
    return std::nullopt;
  }
  if (response->status < 200 || response->status >= 300) {
    ReportHttpError(*response);
    return std::nullopt;
  }
  return std::move(response).value();
}

std::optional<json> Api::Call(std::string_view method, const std::string& target,
                              const std::optional<json>& body) {
  auto response = Send(method, target, body);
  if (!response.ok()) {
    ReportUnreachable(response.status().message());
    return std::nullopt;
  }
  if (response->status < 200 || response->status >= 300) {
    ReportHttpError(*response);
    return std::nullopt;
  }
  if (response->body.empty()) return json();
  json parsed = json::parse(response->body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) {
    ReportFailure("bad_reply", "batchd sent a reply that is not JSON (HTTP " +
                                   std::to_string(response->status) + " to " + std::string(method) +
                                   " " + target + ")");
    return std::nullopt;
  }
  return parsed;
}

void Api::ReportUnreachable(const std::string& reason) {
  PrintError(global_, "unreachable",
             "cannot reach batchd at " + socket_path() + ": " + reason + " (is the daemon running?" +
                 (socket_.skipped.empty() ? "" : "; " + socket_.skipped) + ")");
  exit_code_ = kExitUnreachable;
}

void Api::ReportHttpError(const HttpResponse& response) {
  exit_code_ = response.status == 404 ? kExitNotFound : kExitFailed;
  json body = json::parse(response.body, nullptr, /*allow_exceptions=*/false);
  bool api_error = !body.is_discarded() && body.is_object() && body.contains("error") &&
                   body["error"].is_object();
  if (!api_error) {
    // Not the API's error shape (e.g. a proxy or a crash): say what came back.
    std::string text = response.body.substr(0, 200);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    PrintError(global_, "http_" + std::to_string(response.status),
               "batchd replied HTTP " + std::to_string(response.status) + (text.empty() ? "" : ": " + text));
    return;
  }
  if (global_.json) {
    PrintJson(nlohmann::ordered_json::parse(response.body));  // as the daemon wrote it
    return;
  }
  const json& error = body["error"];
  std::string message = Str(error, "message");
  if (message.empty()) message = Str(error, "code", "HTTP " + std::to_string(response.status));
  std::cerr << "batchctl: " << message << "\n";
  // invalid_dag carries one diagnostic per problem; show them like `validate` does.
  const json& details = Field(error, "details");
  if (details.is_array()) {
    for (const auto& d : details) std::cerr << DiagnosticLine(d) << "\n";
  }
}

void Api::ReportFailure(const std::string& code, const std::string& message) {
  PrintError(global_, code, message);
  exit_code_ = kExitFailed;
}

std::string DagPath(const std::string& dag) { return "/v1/dags/" + UrlEncode(dag); }
std::string RunPath(const std::string& run_id) { return "/v1/runs/" + UrlEncode(run_id); }

Query& Query::Add(std::string_view key, const std::string& value) {
  if (value.empty()) return *this;
  query_ += query_.empty() ? '?' : '&';
  query_ += std::string(key) + "=" + UrlEncode(value);
  return *this;
}

}  // namespace batchd::cli
