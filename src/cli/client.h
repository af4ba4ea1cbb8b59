#pragma once
// HttpClient: one HTTP/1.1 request per connection to batchd's control socket (a Unix stream
// socket). It knows nothing about the API's routes or error bodies; Api (api.h) does.
// Asio stays in client.cc.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace batchd::cli {

// Where batchctl looks for the daemon (SPEC section 5): `flag` (--socket) if set, else
// $BATCHD_SOCKET, else ./.batchd/batchd.sock if it is a socket owned by the caller's uid,
// else /run/batchd/batchd.sock. The working directory may be anyone's (/tmp, a shared
// checkout): a socket planted there by another user would receive every command, so it
// is used only when it is the caller's own, checked with lstat (a symlink is not followed).
struct SocketChoice {
  std::string path;
  // Why ./.batchd/batchd.sock was passed over ("" when it was not), for the unreachable
  // message: "ignored ./.batchd/batchd.sock: owned by uid 65534, not you (uid 1000)".
  std::string skipped;
};
SocketChoice ResolveSocket(const std::string& flag);

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  // The header's value, or "" when absent. `name` is matched case-insensitively.
  std::string Header(std::string_view name) const;
};

// Sends requests to one socket path. Not thread-safe; cheap to create.
class HttpClient {
 public:
  // `timeout` bounds one whole request: connect, send, and the complete reply.
  explicit HttpClient(std::string socket_path,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Sends `method target` with an optional JSON body (Content-Type: application/json) on a
  // fresh connection and reads the whole reply. Any HTTP status is a successful result; an
  // Unavailable status means the daemon could not be reached or did not answer, and its
  // message is the reason ("Connection refused", "no reply within 30s").
  Result<HttpResponse> Request(std::string_view method, const std::string& target,
                               const std::optional<std::string>& json_body = std::nullopt) const;

  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
};

// Percent-encodes everything but RFC 3986 unreserved characters, for path segments and
// query values. Valid names ([A-Za-z0-9_.-]) pass unchanged, so hostile input such as
// "../x" reaches the daemon as one segment and is refused there.
std::string UrlEncode(std::string_view text);

}  // namespace batchd::cli
