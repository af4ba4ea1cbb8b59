#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "api/http_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace batchd::api {

HttpResponse ErrorResponse(int status, const std::string& code, const std::string& message) {
  HttpResponse r;
  r.status = status;
  r.body = nlohmann::json{{"error", {{"code", code}, {"message", message}}}}.dump() + "\n";
  return r;
}

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

int PeerUid(asio::local::stream_protocol::socket& s) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(s.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) return static_cast<int>(cred.uid);
  return -1;
}
int PeerUid(asio::ip::tcp::socket&) { return -1; }

// One connection: read a request, answer it, repeat while keep-alive.
template <typename Socket>
class Session : public std::enable_shared_from_this<Session<Socket>> {
 public:
  Session(Socket socket, const HttpHandler& handler, const HttpServerOptions& options,
          std::set<Session*>* registry)
      : stream_(std::move(socket)), handler_(handler), options_(options), registry_(registry),
        timer_(stream_.get_executor()) {
    registry_->insert(this);
  }
  ~Session() { if (registry_) registry_->erase(this); }

  void Start() {
    uid_ = PeerUid(stream_.socket());
    Read();
  }
  void Close() {
    registry_ = nullptr;
    beast::error_code ec;
    stream_.socket().close(ec);
    timer_.cancel();
  }
  void Detach() { registry_ = nullptr; }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(options_.body_limit);
    parser_->header_limit(64 * 1024);
    // An idle or slow client is dropped after a minute.
    timer_.expires_after(std::chrono::seconds(60));
    timer_.async_wait([weak = this->weak_from_this()](const beast::error_code& ec) {
      if (ec) return;
      if (auto self = weak.lock()) {
        beast::error_code ignored;
        self->stream_.socket().close(ignored);
      }
    });
    http::async_read(stream_, buffer_, *parser_,
                     [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    timer_.cancel();
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
      return Reply(ErrorResponse(431, "bad_request", "request headers are too large"), false, 11);
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
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(version);
    res->result(static_cast<http::status>(response.status));
    res->set(http::field::server, "batchd");
    res->set(http::field::content_type, response.content_type);
    for (const auto& [k, v] : response.headers) res->set(k, v);
    res->keep_alive(keep_alive);
    res->body() = std::move(response.body);
    res->prepare_payload();
    http::async_write(stream_, *res, [self = this->shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
      if (ec || !keep_alive) return self->Shutdown();
      self->Read();
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
  asio::steady_timer timer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  int uid_ = -1;
};

template <typename Protocol>
class Server final : public HttpServer {
 public:
  using Acceptor = typename Protocol::acceptor;
  using Socket = typename Protocol::socket;

  Server(asio::io_context& io, HttpHandler handler, HttpServerOptions options, std::string endpoint)
      : acceptor_(io), handler_(std::move(handler)), options_(options), endpoint_(std::move(endpoint)) {}
  ~Server() override { Close(); }

  Acceptor& acceptor() { return acceptor_; }
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, Socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor_.is_open()) return;
      if (!ec) {
        auto session = std::make_shared<Session<Socket>>(std::move(socket), handler_, options_, &sessions_);
        session->Start();
      }
      Accept();
    });
  }
  void Close() override {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    acceptor_.close(ec);
    auto sessions = sessions_;
    for (auto* s : sessions) s->Close();
    sessions_.clear();
    if (!unix_path_.empty()) ::unlink(unix_path_.c_str());
  }
  std::string Endpoint() const override { return endpoint_; }
  void set_unix_path(std::string p) { unix_path_ = std::move(p); }

 private:
  Acceptor acceptor_;
  HttpHandler handler_;
  HttpServerOptions options_;
  std::string endpoint_;
  std::set<Session<Socket>*> sessions_;
  std::string unix_path_;
  bool closed_ = false;
};

}  // namespace

Result<std::unique_ptr<HttpServer>> HttpServer::ListenUnix(asio::io_context& io, const std::string& path,
                                                          HttpHandler handler, HttpServerOptions options) {
  using Protocol = asio::local::stream_protocol;
  if (path.size() >= sizeof(sockaddr_un::sun_path))
    return Status::InvalidArgument("socket path '" + path + "' is too long (at most 107 bytes)");
  std::error_code fs_ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, fs_ec);
  if (std::filesystem::exists(path, fs_ec)) {
    // Someone answering there is a running daemon; otherwise the file is stale.
    Protocol::socket probe(io);
    beast::error_code ec;
    probe.connect(Protocol::endpoint(path), ec);
    if (!ec) return Status::FailedPrecondition("another process is listening on socket '" + path + "'");
    ::unlink(path.c_str());
  }
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
  server->set_unix_path(path);
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
