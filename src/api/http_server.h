#pragma once
// HttpServer: a Boost.Beast HTTP/1.1 server on a Unix socket or a TCP address, calling a
// transport-free handler for each request on the io_context's thread. Requests larger
// than the body limit get 413, malformed ones 400; the connection is closed after an
// error and the server keeps serving.
//
// Lifetime: owned by the daemon; Close() stops accepting and closes open connections.
// Thread rules: the io_context must be run by one thread (the daemon's loop).

#include <memory>
#include <string>

#include "api/http.h"
#include "common/status.h"

namespace boost::asio { class io_context; }

namespace batchd::api {

struct HttpServerOptions {
  size_t body_limit = 4 * 1024 * 1024;  // bytes; larger bodies get 413
  int socket_mode = 0660;               // Unix socket file mode
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  virtual void Close() = 0;
  // "unix:/path" or "127.0.0.1:9464", for logs.
  virtual std::string Endpoint() const = 0;

  // Listens on a Unix socket at `path` (a stale socket file is replaced; a live one,
  // i.e. another daemon answering there, is an error).
  static Result<std::unique_ptr<HttpServer>> ListenUnix(boost::asio::io_context& io, const std::string& path,
                                                        HttpHandler handler, HttpServerOptions options = {});
  // Listens on "HOST:PORT" (IPv4 or [IPv6]).
  static Result<std::unique_ptr<HttpServer>> ListenTcp(boost::asio::io_context& io, const std::string& address,
                                                       HttpHandler handler, HttpServerOptions options = {});
};

}  // namespace batchd::api
