#pragma once
// HttpServer: a Boost.Beast HTTP/1.1 server on a Unix socket or a TCP address, calling a
// transport-free handler for each request on the io_context's thread. Requests larger
// than the limits get 413 (body) or 431 (headers), malformed ones 400; the connection is
// closed after an error and the server keeps serving.
//
// Resource bounds (docs/http-api.md, "Limits"): at most `max_connections` open connections
// per listener; a new one beyond it closes the connection that has waited longest for a
// request, or when every connection is busy gets 503 and is closed. A request must arrive
// whole within `read_timeout` (from its first byte; from the connect for a connection's
// first request), a reply must be taken within `write_timeout`, and a kept-alive
// connection may wait `idle_timeout` for its next request. Nothing here blocks: a slow
// client only holds its own connection. When accept fails for want of descriptors
// (EMFILE/ENFILE) the listener retries every 100 ms instead of spinning.
//
// Lifetime: owned by the daemon; Close() stops accepting and closes open connections.
// Thread rules: the io_context must be run by one thread (the daemon's loop).

#include <chrono>
#include <memory>
#include <string>

#include "api/http.h"
#include "common/status.h"

namespace boost::asio { class io_context; }

namespace batchd::api {

struct HttpServerOptions {
  size_t body_limit = 4 * 1024 * 1024;                    // bytes; larger bodies get 413
  size_t header_limit = 64 * 1024;                         // bytes of request line and headers; more get 431
  int socket_mode = 0660;                                  // Unix socket file mode
  int max_connections = 256;                               // open connections on this listener
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);   // kept-alive, between requests
  std::chrono::milliseconds read_timeout = std::chrono::seconds(30);   // one request's head and body
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);  // one reply
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  virtual void Close() = 0;
  // "unix:/path" or "127.0.0.1:9464", for logs.
  virtual std::string Endpoint() const = 0;

  // Listens on a Unix socket at `path`. Only a stale socket file (nothing accepts on it)
  // is replaced; any other file there, or a socket something answers on, is an error. At
  // Close the file is removed only if it is still the socket this server created.
  static Result<std::unique_ptr<HttpServer>> ListenUnix(boost::asio::io_context& io, const std::string& path,
                                                        HttpHandler handler, HttpServerOptions options = {});
  // Listens on "HOST:PORT" (IPv4 or [IPv6]).
  static Result<std::unique_ptr<HttpServer>> ListenTcp(boost::asio::io_context& io, const std::string& address,
                                                       HttpHandler handler, HttpServerOptions options = {});
};

}  // namespace batchd::api
