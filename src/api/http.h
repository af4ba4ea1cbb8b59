#pragma once
// Transport-free HTTP request/response, so the control API is a pure function of a
// request (tested without sockets) and the Beast server only moves bytes.

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace batchd::api {

struct HttpRequest {
  std::string method;   // "GET", "POST", ...
  std::string target;   // path and query, e.g. "/v1/runs?dag=x"
  std::string body;
  int uid = -1;         // the peer's uid (SO_PEERCRED) on the Unix socket; -1 over TCP
  std::string host;           // the Host header, as sent
  std::string authorization;  // the Authorization header, as sent
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// {"error": {"code": code, "message": message}} with `status`.
HttpResponse ErrorResponse(int status, const std::string& code, const std::string& message);

}  // namespace batchd::api
