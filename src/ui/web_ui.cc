#include "ui/web_ui.h"

#include <arpa/inet.h>

#include <cctype>

#include "ui/assets.h"

namespace batchd::ui {
namespace {

// Pages may load only what this daemon serves: no inline script, no other origin.
constexpr const char* kContentSecurityPolicy =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

api::HttpResponse WithHeaders(api::HttpResponse response, const char* cache_control) {
  response.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
  response.headers.emplace_back("X-Content-Type-Options", "nosniff");
  response.headers.emplace_back("X-Frame-Options", "DENY");
  response.headers.emplace_back("Referrer-Policy", "no-referrer");
  response.headers.emplace_back("Cache-Control", cache_control);
  return response;
}

api::HttpResponse Error(int status, const std::string& code, const std::string& message) {
  return WithHeaders(api::ErrorResponse(status, code, message), "no-store");
}

// The host part of "HOST:PORT", "[V6]:PORT" or a Host header without a port.
std::string HostPart(const std::string& address) {
  if (!address.empty() && address[0] == '[') {
    auto close = address.find(']');
    return close == std::string::npos ? address : address.substr(1, close - 1);
  }
  auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Compares in time independent of where the strings differ (the length is no secret).
bool SameSecret(const std::string& given, const std::string& secret) {
  if (given.size() != secret.size() || secret.empty()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < secret.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ secret[i]);
  return diff == 0;
}

bool StartsWith(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

}  // namespace

bool IsLoopbackAddress(const std::string& listen_address) {
  const std::string host = Lower(HostPart(listen_address));
  if (host == "localhost" || host == "::1") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  return false;
}

WebUi::WebUi(WebUiOptions options, ReadApi read_api, FindDag find_dag)
    : options_(std::move(options)), read_api_(std::move(read_api)), find_dag_(std::move(find_dag)) {
  Reconfigure(options_.enabled, options_.token);
}

void WebUi::Reconfigure(bool enabled, std::string token) {
  options_.enabled = enabled;
  options_.token = std::move(token);
  off_reason_.clear();
  if (!options_.enabled)
    off_reason_ = "the web UI is off (config ui.enabled: false)";
  else if (options_.token.empty() && !IsLoopbackAddress(options_.listen_address))
    off_reason_ = "the web UI is off: the HTTP listener " + options_.listen_address +
                  " is not a loopback address and no ui.token is configured (docs/ui.md)";
}

std::optional<api::HttpResponse> WebUi::Handle(const api::HttpRequest& request) {
  const std::string path = request.target.substr(0, request.target.find('?'));
  if (path != "/" && path != "/ui" && !StartsWith(path, "/ui/")) return std::nullopt;
  if (!off_reason_.empty()) return Error(404, "not_found", off_reason_);
  if (path == "/" || path == "/ui") {
    api::HttpResponse r;
    r.status = 302;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "/ui/\n";
    r.headers.emplace_back("Location", "/ui/");
    return WithHeaders(std::move(r), "no-store");
  }
  if (auto refused = Refusal(request)) return refused;
  if (StartsWith(path, "/ui/static/")) return Static(path.substr(std::string("/ui/static/").size()));
  if (StartsWith(path, "/ui/api/v1/") || path == "/ui/api/v1") {
    api::HttpRequest inner = request;
    inner.target = request.target.substr(std::string("/ui/api").size());
    // GET only: the control API's GET routes read; nothing else is forwarded.
    if (request.method != "GET") return Error(405, "method_not_allowed", "the web UI only reads (GET)");
    return WithHeaders(read_api_(inner), "no-store");
  }
  if (StartsWith(path, "/ui/graph/")) return Graph(path.substr(std::string("/ui/graph/").size()));
  // The pages: the router in app.js draws the one the path names.
  const std::string page = path.substr(std::string("/ui/").size());
  if (page.empty() || page == "dead-letters" || StartsWith(page, "dags/") || StartsWith(page, "runs/") ||
      StartsWith(page, "logs/"))
    return Page();
  return Error(404, "not_found", "no page " + path + " in the web UI");
}

std::optional<api::HttpResponse> WebUi::Refusal(const api::HttpRequest& request) {
  if (!options_.token.empty()) {
    // The page itself and its scripts hold no data; everything with data needs the token.
    const std::string path = request.target.substr(0, request.target.find('?'));
    if (!StartsWith(path, "/ui/api/") && !StartsWith(path, "/ui/graph/")) return std::nullopt;
    const std::string& header = request.authorization;
    const bool bearer = header.size() > 7 && Lower(header.substr(0, 7)) == "bearer ";
    if (bearer && SameSecret(header.substr(7), options_.token)) return std::nullopt;
    api::HttpResponse r =
        Error(401, "unauthorized",
              header.empty() ? "this web UI needs a token: send Authorization: Bearer <ui.token>"
                             : "the token is not this web UI's (config ui.token)");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"batchd\"");
    return r;
  }
  // No token, so the listener is loopback: answer only requests addressed to it by a
  // loopback name or an address, never to a domain name that merely resolves here.
  const std::string host = Lower(HostPart(request.host));
  if (host == "localhost" || IsIpLiteral(host)) return std::nullopt;
  return Error(403, "forbidden",
               "Host '" + request.host.substr(0, 64) +
                   "' is refused: without ui.token the web UI answers only requests to localhost or an IP address");
}

api::HttpResponse WebUi::Page() {
  const Asset* page = FindAsset("index.html");
  api::HttpResponse r;
  r.content_type = std::string(page->content_type);
  r.body = std::string(page->body);
  return WithHeaders(std::move(r), "no-cache");
}

api::HttpResponse WebUi::Static(const std::string& name) {
  const Asset* asset = name == "index.html" ? nullptr : FindAsset(name);
  if (!asset) return Error(404, "not_found", "no file '" + name.substr(0, 64) + "' in the web UI");
  api::HttpResponse r;
  r.content_type = std::string(asset->content_type);
  r.body = std::string(asset->body);
  return WithHeaders(std::move(r), "no-cache");
}

api::HttpResponse WebUi::Graph(const std::string& file) {
  constexpr std::string_view kSuffix = ".svg";
  if (file.size() <= kSuffix.size() || file.compare(file.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
    return Error(404, "not_found", "graphs are at /ui/graph/<dag>.svg");
  const std::string name = file.substr(0, file.size() - kSuffix.size());
  const dag::DagPtr dag = find_dag_(name);
  if (!dag) return Error(404, "not_found", "DAG '" + name.substr(0, 128) + "' not found");
  // Long enough for the graphs of most DAGs; a big one is laid out while the page waits.
  constexpr std::chrono::milliseconds kLayoutWait(100);
  auto svg = graphs_.Svg(dag, kLayoutWait);
  if (!svg) {
    api::HttpResponse r = Error(202, "laying_out", "the graph of DAG '" + name + "' is being laid out; ask again");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  if (!svg->ok()) return Error(500, "internal", svg->status().message());
  api::HttpResponse r;
  r.content_type = "image/svg+xml";
  r.body = std::move(**svg);
  return WithHeaders(std::move(r), "no-cache");
}

}  // namespace batchd::ui
