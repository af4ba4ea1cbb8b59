#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "api/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <sstream>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/json_text.h"

namespace batchd::api {

HttpResponse ErrorResponse(int status, const std::string& code, const std::string& message) {
  HttpResponse r;
  r.status = status;
  // A message may quote a request's bytes, which need not be UTF-8.
  r.body = DumpJsonForDisplay(nlohmann::json{{"error", {{"code", code}, {"message", message}}}}) + "\n";
  return r;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using SteadyTime = std::chrono::steady_clock::time_point;

// How long a listener waits before accepting again after running out of descriptors.
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

int PeerUid(asio::local::stream_protocol::socket& s) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) return static_cast<int>(cred.uid);
  return -1;
}
int PeerUid(asio::ip::tcp::socket&) { return -1; }

// The bytes of a complete HTTP/1.1 reply that closes the connection.
std::string ClosingReplyText(const HttpResponse& response) {
  http::response<http::string_body> res;
  res.version(11);
  res.result(static_cast<http::status>(response.status));
  res.set(http::field::server, "batchd");
  res.set(http::field::content_type, response.content_type);
  res.keep_alive(false);
  res.body() = response.body;
  res.prepare_payload();
  std::ostringstream out;
  out << res;
  return out.str();
}

// One connection: wait for a request, read it, answer it, repeat while keep-alive. Each
// phase has its own deadline (HttpServerOptions); the stream closes the socket when one
// passes, and the pending operation completes with beast::error::timeout.
template <typename Socket>
class Session : public std::enable_shared_from_this<Session<Socket>> {
 public:
  Session(Socket socket, const HttpHandler& handler, const HttpServerOptions& options,
          std::set<Session*>* registry)
      : stream_(std::move(socket)), handler_(handler), options_(options), registry_(registry) {
    registry_->insert(this);
  }
  ~Session() { Detach(); }

  void Start() {
    uid_ = PeerUid(stream_.socket());
    // A connection's first request must arrive whole within the read timeout of the connect.
    WaitForRequest(options_.read_timeout, /*first=*/true);
  }
  // Closes the connection now (server shutdown, or evicted to make room for a new one).
  void Close() {
    Detach();
    beast::error_code ec;
    stream_.socket().close(ec);
  }
  // Waiting for a request of which no byte has arrived: safe to close without losing one.
  bool idle() const { return phase_ == Phase::kIdle; }
  SteadyTime idle_since() const { return idle_since_; }

 private:
  enum class Phase { kIdle, kReading, kWriting };

  void Detach() {
    if (registry_) registry_->erase(this);
    registry_ = nullptr;
  }

  // Waits up to `timeout` for the first byte of the next request; its deadline ends there.
  void WaitForRequest(std::chrono::milliseconds timeout, bool first) {
    parser_.emplace();
    parser_->body_limit(options_.body_limit);
    parser_->header_limit(static_cast<std::uint32_t>(options_.header_limit));
    if (buffer_.size() > 0) return ReadRequest(first);  // a pipelined request is already here
    phase_ = Phase::kIdle;
    idle_since_ = std::chrono::steady_clock::now();
    stream_.expires_after(timeout);
    stream_.async_read_some(buffer_.prepare(4096), [self = this->shared_from_this(), first](beast::error_code ec,
                                                                                           size_t n) {
      self->buffer_.commit(n);
      if (ec) return self->OnEnd(ec, "waiting for a request");
      self->ReadRequest(first);
    });
  }

  // Reads the rest of the request: the first request keeps the deadline set at connect,
  // later ones get the whole read timeout from their first byte.
  void ReadRequest(bool first) {
    phase_ = Phase::kReading;
    if (!first) stream_.expires_after(options_.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  // The connection ends without a reply: the client left, or a deadline passed.
  void OnEnd(beast::error_code ec, const char* during) {
    if (ec == beast::error::timeout) {
      spdlog::debug("closing a connection: timed out {}", during);
      return;  // the stream has closed the socket
    }
    Shutdown();
  }

  void OnRead(beast::error_code ec) {
    if (ec == beast::error::timeout) return OnEnd(ec, "reading a request");
    if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::bad_descriptor) {
      return Shutdown();
    }
    if (ec == http::error::body_limit) {
      return Reply(ErrorResponse(413, "payload_too_large",
                                 "request body exceeds the limit of " + std::to_string(options_.body_limit) +
                                     " bytes"),
                   false, 11);
    }
    if (ec == http::error::header_limit) {
      return Reply(ErrorResponse(431, "headers_too_large",
                                 "request headers exceed the limit of " + std::to_string(options_.header_limit) +
                                     " bytes"),
                   false, 11);
    }
    if (ec) {
      return Reply(ErrorResponse(400, "bad_request", "malformed HTTP request: " + ec.message()), false, 11);
    }
    auto& req = parser_->get();
    if (req.chunked()) {
      return Reply(ErrorResponse(411, "length_required", "send the request body with a Content-Length header"),
                   false, req.version());
    }
    HttpRequest request;
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.body = std::move(req.body());
    request.uid = uid_;
    request.host = std::string(req[http::field::host]);
    request.authorization = std::string(req[http::field::authorization]);
    HttpResponse response;
    try {
      response = handler_(request);
    } catch (const std::exception& e) {
      spdlog::error("handler failed on {} {}: {}", request.method, request.target, e.what());
      response = ErrorResponse(500, "internal", std::string("internal error: ") + e.what());
    }
    Reply(std::move(response), req.keep_alive(), req.version());
  }

  void Reply(HttpResponse response, bool keep_alive, unsigned version) {
    phase_ = Phase::kWriting;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version);
    res->result(static_cast<http::status>(response.status));
    res->set(http::field::server, "batchd");
    res->set(http::field::content_type, response.content_type);
    for (const auto& [k, v] : response.headers) res->set(k, v);
    res->keep_alive(keep_alive);
    res->body() = std::move(response.body);
    res->prepare_payload();
    // A client that stops reading holds only this connection, and only this long.
    stream_.expires_after(options_.write_timeout);
    http::async_write(stream_, *res, [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec) return self->OnEnd(ec, "writing a reply");
      if (!keep_alive) return self->Shutdown();
      self->WaitForRequest(self->options_.idle_timeout, /*first=*/false);
    });
  }

  void Shutdown() {
    beast::error_code ec;
    stream_.socket().shutdown(Socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  beast::basic_stream<typename Socket::protocol_type, asio::any_io_executor, beast::unlimited_rate_policy> stream_;
  const HttpHandler& handler_;
  const HttpServerOptions& options_;
  std::set<Session*>* registry_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  int uid_ = -1;
  Phase phase_ = Phase::kIdle;
  SteadyTime idle_since_{};
};

template <typename Protocol>
class Server final : public HttpServer {
 public:
  using Acceptor = typename Protocol::acceptor;
  using Socket = typename Protocol::socket;
  using ServerSession = Session<Socket>;

  Server(asio::io_context& io, HttpHandler handler, HttpServerOptions options, std::string endpoint)
      : acceptor_(io), backoff_(io), handler_(std::move(handler)), options_(options), endpoint_(std::move(endpoint)) {}
  ~Server() override { Close(); }

  Acceptor& acceptor() { return acceptor_; }
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (ec) return OnAcceptError(ec);
      if (starved_) {
        spdlog::info("{}: accepting connections again", endpoint_);
        starved_ = false;
      }
      Admit(std::move(socket));
      Accept();
    });
  }
  void Close() override {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    backoff_.cancel();
    auto sessions = sessions_;
    for (auto* s : sessions) s->Close();
    sessions_.clear();
    if (!unix_path_.empty()) RemoveOwnSocket();
  }
  std::string Endpoint() const override { return endpoint_; }
  // The socket file this server created: removed at Close while it is still that file.
  void set_unix_socket(std::string path, dev_t dev, ino_t ino) {
    unix_path_ = std::move(path);
    unix_dev_ = dev;
    unix_ino_ = ino;
  }

 private:
  // Out of descriptors (or kernel memory) the listening socket stays readable, so accepting
  // again at once would spin: wait, log once per burst, and let connections end meanwhile.
  void OnAcceptError(beast::error_code ec) {
    if (ec == asio::error::connection_aborted) return Accept();  // that client gave up; the next one
    if (!starved_) {
      spdlog::warn("{}: cannot accept connections: {}; retrying every {} ms ({} open)", endpoint_, ec.message(),
                   kAcceptBackoff.count(), sessions_.size());
      starved_ = true;
    }
    backoff_.expires_after(kAcceptBackoff);
    backoff_.async_wait([this](const beast::error_code& wait_ec) {
      if (wait_ec || closed_) return;
      Accept();
    });
  }

  // Starts a session for a new connection, within max_connections: when the listener is
  // full the connection that has waited longest for a request makes room; when none is
  // waiting the newcomer is told so and closed.
  void Admit(Socket socket) {
    if (static_cast<int>(sessions_.size()) >= options_.max_connections && !EvictLongestIdle()) {
      return Refuse(std::move(socket));
    }
    limit_logged_ = false;
    std::make_shared<ServerSession>(std::move(socket), handler_, options_, &sessions_)->Start();
  }

  bool EvictLongestIdle() {
    ServerSession* oldest = nullptr;
    for (auto* s : sessions_)
      if (s->idle() && (!oldest || s->idle_since() < oldest->idle_since())) oldest = s;
    if (!oldest) return false;
    spdlog::debug("{}: {} connections open: closing the one idle longest", endpoint_, sessions_.size());
    oldest->Close();
    return true;
  }

  // Best effort and without waiting: the reply is small enough for any socket buffer.
  void Refuse(Socket socket) {
    if (!limit_logged_) {
      spdlog::warn("{}: {} connections busy: refusing new ones", endpoint_, options_.max_connections);
      limit_logged_ = true;
    }
    const std::string reply = ClosingReplyText(ErrorResponse(
        503, "unavailable", "too many connections (limit " + std::to_string(options_.max_connections) + ")"));
    const int fd = socket.native_handle();
    (void)::send(fd, reply.data(), reply.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    ::shutdown(fd, SHUT_WR);
    beast::error_code ec;
    socket.close(ec);
  }

  void RemoveOwnSocket() {
    struct stat st {};
    if (::lstat(unix_path_.c_str(), &st) != 0) return;
    if (!S_ISSOCK(st.st_mode) || st.st_dev != unix_dev_ || st.st_ino != unix_ino_) {
      spdlog::warn("{} was replaced by another file; leaving it in place", unix_path_);
      return;
    }
    ::unlink(unix_path_.c_str());
  }

  Acceptor acceptor_;
  asio::steady_timer backoff_;
  HttpHandler handler_;
  HttpServerOptions options_;
  std::string endpoint_;
  std::set<ServerSession*> sessions_;
  std::string unix_path_;
  dev_t unix_dev_ = 0;
  ino_t unix_ino_ = 0;
  bool closed_ = false;
  bool starved_ = false;       // accept is failing for want of descriptors; logged once
  bool limit_logged_ = false;  // max_connections refusals logged once per burst
};

// What is at a Unix socket path before listening there. Only a socket nothing accepts
// on may be removed; the probe does not block even when that listener's backlog is full.
Status CheckSocketPath(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::IoError("cannot inspect socket path '" + path + "': " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode))
    return Status::FailedPrecondition("socket path '" + path + "' exists and is not a socket; refusing to remove it");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  const int err = rc == 0 ? 0 : errno;
  ::close(fd);
  if (err == 0 || err == EAGAIN || err == EINPROGRESS)
    return Status::FailedPrecondition("another process is listening on socket '" + path + "'");
  if (err != ECONNREFUSED)
    return Status::IoError("cannot check whether socket '" + path + "' is in use: " + std::strerror(err));
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    return Status::IoError("cannot remove stale socket '" + path + "': " + std::strerror(errno));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::ListenUnix(asio::io_context& io, const std::string& path,
                                                          HttpHandler handler, HttpServerOptions options) {
  using Protocol = asio::local::stream_protocol;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return Status::InvalidArgument("socket path '" + path + "' is too long (at most 107 bytes)");
  std::error_code fs_ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, fs_ec);
  if (Status st = CheckSocketPath(path); !st.ok()) return st;
  auto server = std::make_unique<Server<Protocol>>(io, std::move(handler), options, "unix:" + path);
  beast::error_code ec;
  auto& acceptor = server->acceptor();
  acceptor.open(Protocol(), ec);
  if (!ec) {
    // Create the socket with the final mode: no window where it is wider open.
    mode_t old = ::umask(0777 & ~static_cast<mode_t>(options.socket_mode));
    acceptor.bind(Protocol::endpoint(path), ec);
    ::umask(old);
  }
  if (!ec) ::chmod(path.c_str(), static_cast<mode_t>(options.socket_mode));
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IoError("cannot listen on socket '" + path + "': " + ec.message());
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Status::IoError("cannot inspect socket '" + path + "' after binding it");
  server->set_unix_socket(path, st.st_dev, st.st_ino);
  server->Accept();
  return std::unique_ptr<HttpServer>(std::move(server));
}

Result<std::unique_ptr<HttpServer>> HttpServer::ListenTcp(asio::io_context& io, const std::string& address,
                                                         HttpHandler handler, HttpServerOptions options) {
  using Protocol = asio::ip::tcp;
  auto colon = address.rfind(':');
  if (colon == std::string::npos)
    return Status::InvalidArgument("invalid listen address '" + address + "': expected HOST:PORT");
  std::string host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int port = 0;
  try {
    size_t used = 0;
    port = std::stoi(address.substr(colon + 1), &used);
    if (used != address.size() - colon - 1 || port < 0 || port > 65535) throw std::out_of_range("port");
  } catch (const std::exception&) {
    return Status::InvalidArgument("invalid listen address '" + address + "': bad port");
  }
  beast::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) return Status::InvalidArgument("invalid listen address '" + address + "': " + ec.message());
  auto server = std::make_unique<Server<Protocol>>(io, std::move(handler), options, address);
  auto& acceptor = server->acceptor();
  Protocol::endpoint endpoint(ip, static_cast<unsigned short>(port));
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::IoError("cannot listen on " + address + ": " + ec.message());
  server->Accept();
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace batchd::api
