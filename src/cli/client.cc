// HttpClient over a Unix stream socket with Boost.Beast. Each request runs on its own
// io_context so one deadline (beast::basic_stream::expires_after) covers connect, write and
// read; batchctl is single-threaded and makes one request at a time.
#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "cli/client.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "batchd/version.h"

namespace batchd::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

constexpr const char* kDefaultLocalSocket = "./.batchd/batchd.sock";
constexpr const char* kDefaultSystemSocket = "/run/batchd/batchd.sock";
// Replies larger than this are refused (a log chunk is at most 1 MiB; lists are smaller).
constexpr std::uint64_t kMaxReplyBytes = 64ull * 1024 * 1024;

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// The reason shown after "cannot reach batchd at PATH: ".
std::string Reason(const beast::error_code& ec, std::string_view stage, std::chrono::milliseconds timeout) {
  if (ec == beast::error::timeout) {
    return "no reply within " + std::to_string(timeout.count() / 1000) + "s";
  }
  if (ec == http::error::end_of_stream || ec == asio::error::eof) {
    return "the connection was closed before a complete reply";
  }
  if (stage == "connect") return ec.message();
  return std::string(stage) + " failed: " + ec.message();
}

}  // namespace

SocketChoice ResolveSocket(const std::string& flag) {
  if (!flag.empty()) return {flag, ""};
  if (const char* env = std::getenv("BATCHD_SOCKET"); env != nullptr && *env != '\0') return {env, ""};
  struct stat st {};
  if (::lstat(kDefaultLocalSocket, &st) != 0) return {kDefaultSystemSocket, ""};
  const std::string ignored = std::string("ignored ") + kDefaultLocalSocket + ": ";
  if (!S_ISSOCK(st.st_mode)) {
    return {kDefaultSystemSocket, ignored + (S_ISLNK(st.st_mode) ? "a symbolic link" : "not a socket")};
  }
  if (st.st_uid != ::getuid()) {
    return {kDefaultSystemSocket, ignored + "owned by uid " + std::to_string(st.st_uid) + ", not you (uid " +
                                      std::to_string(::getuid()) + ")"};
  }
  return {kDefaultLocalSocket, ""};
}

std::string HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(Lower(name));
  return it == headers.end() ? std::string() : it->second;
}

HttpClient::HttpClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout) {}

Result<HttpResponse> HttpClient::Request(std::string_view method, const std::string& target,
                                         const std::optional<std::string>& json_body) const {
  using Stream = beast::basic_stream<asio::local::stream_protocol>;

  asio::local::stream_protocol::endpoint endpoint;
  try {
    endpoint = asio::local::stream_protocol::endpoint(socket_path_);
  } catch (const std::exception& e) {  // e.g. a path longer than sun_path allows
    return Status::Unavailable(e.what());
  }

  http::request<http::string_body> req{http::string_to_verb(beast::string_view(method.data(), method.size())), target, 11};
  req.set(http::field::host, "batchd");
  req.set(http::field::user_agent, std::string("batchctl/") + kVersion);
  req.set(http::field::accept, "application/json");
  req.set(http::field::connection, "close");
  if (json_body) {
    req.set(http::field::content_type, "application/json");
    req.body() = *json_body;
  }
  req.prepare_payload();  // Content-Length, also "0" for a POST without a body

  asio::io_context ioc;
  Stream stream(ioc);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(kMaxReplyBytes);
  beast::error_code failure;
  std::string failed_stage;
  auto fail = [&](const beast::error_code& ec, const char* stage) {
    failure = ec;
    failed_stage = stage;
  };

  // connect -> write -> read, one deadline for the whole exchange.
  stream.expires_after(timeout_);
  stream.async_connect(endpoint, [&](const beast::error_code& ec) {
    if (ec) return fail(ec, "connect");
    http::async_write(stream, req, [&](const beast::error_code& write_ec, std::size_t) {
      // A daemon that refuses the connection (503, too many connections) or the request
      // (413) may answer and close before the request is sent: read the answer anyway.
      const bool cut_short = write_ec == asio::error::broken_pipe || write_ec == asio::error::connection_reset;
      if (write_ec && !cut_short) return fail(write_ec, "sending the request");
      http::async_read(stream, buffer, parser, [&, write_ec](const beast::error_code& ec, std::size_t) {
        if (ec && write_ec) return fail(write_ec, "sending the request");
        if (ec) return fail(ec, "reading the reply");
      });
    });
  });
  ioc.run();
  if (failure) return Status::Unavailable(Reason(failure, failed_stage, timeout_));

  beast::error_code ignored;
  stream.socket().shutdown(asio::local::stream_protocol::socket::shutdown_both, ignored);

  auto& msg = parser.get();
  HttpResponse response;
  response.status = static_cast<int>(msg.result_int());
  for (const auto& field : msg) {
    response.headers[Lower(std::string_view(field.name_string().data(), field.name_string().size()))] =
        std::string(field.value());
  }
  response.body = std::move(msg.body());
  return response;
}

std::string UrlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace batchd::cli
