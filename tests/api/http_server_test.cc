#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "api/http_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <gtest/gtest.h>

namespace batchd::api {
namespace {

using std::chrono::milliseconds;

int Connect(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Everything the server sends until it closes the connection (or `timeout` passes).
std::string ReadUntilClosed(int fd, milliseconds timeout = milliseconds(5000)) {
  std::string in;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

bool ClosedWithin(int fd, milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  char c;
  return ::recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

// A server on a Unix socket in a fresh directory, its io_context run by a thread.
class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hstXXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/s";
  }
  void TearDown() override {
    Stop();
    std::filesystem::remove_all(dir_);
  }
  Result<std::unique_ptr<HttpServer>> Listen(HttpServerOptions options = {}) {
    return HttpServer::ListenUnix(io_, path_, [](const HttpRequest&) {
      HttpResponse r;
      r.body = "{}\n";
      return r;
    }, options);
  }
  void Run() {
    thread_ = std::thread([this] { io_.run(); });
  }
  void Stop() {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
  }

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_{io_.get_executor()};
  std::thread thread_;
  std::unique_ptr<HttpServer> server_;
  std::string dir_, path_;
};

TEST_F(HttpServerTest, RefusesAFileThatIsNotASocketAndLeavesItAlone) {
  std::ofstream(path_) << "precious\n";
  auto server = Listen();
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().message(), "socket path '" + path_ + "' exists and is not a socket; refusing to remove it");
  std::ifstream in(path_);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "precious");
}

TEST_F(HttpServerTest, ReplacesAStaleSocketAndRefusesALiveOne) {
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, path_.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);  // the file stays: a stale socket
  }
  auto first = Listen();
  ASSERT_TRUE(first.ok()) << first.status().message();
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  auto second = Listen();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message(), "another process is listening on socket '" + path_ + "'");
  server_ = std::move(*first);
}

TEST_F(HttpServerTest, OversizedHeadersGet431) {
  HttpServerOptions options;
  options.header_limit = 1024;
  auto server = Listen(options);
  ASSERT_TRUE(server.ok());
  server_ = std::move(*server);
  Run();
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  std::string request = "GET /v1/health HTTP/1.1\r\nHost: b\r\nX-Big: " + std::string(2000, 'x') + "\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string reply = ReadUntilClosed(fd);
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply;
  EXPECT_NE(reply.find(R"j({"error":{"code":"headers_too_large","message":"request headers exceed the limit of 1024 bytes"}})j"),
            std::string::npos)
      << reply;
}

TEST_F(HttpServerTest, AtTheLimitTheLongestIdleMakesRoomAndBusyConnectionsGet503) {
  HttpServerOptions options;
  options.max_connections = 2;
  auto server = Listen(options);
  ASSERT_TRUE(server.ok());
  server_ = std::move(*server);
  Run();
  int a = Connect(path_), b = Connect(path_);
  std::this_thread::sleep_for(milliseconds(100));
  int c = Connect(path_);  // a has waited longest: it goes
  EXPECT_TRUE(ClosedWithin(a, milliseconds(2000)));
  EXPECT_FALSE(ClosedWithin(b, milliseconds(100)));
  // b and c start requests: nobody is idle, so d is refused.
  const std::string partial = "GET /v1/health HTTP/1.1\r\n";
  ASSERT_GT(::send(b, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
  ASSERT_GT(::send(c, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
  std::this_thread::sleep_for(milliseconds(100));
  int d = Connect(path_);
  std::string reply = ReadUntilClosed(d);
  EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0u) << reply;
  EXPECT_NE(reply.find(R"j({"error":{"code":"unavailable","message":"too many connections (limit 2)"}})j"),
            std::string::npos)
      << reply;
  EXPECT_FALSE(ClosedWithin(b, milliseconds(50)));
  for (int fd : {a, b, c, d}) ::close(fd);
}

TEST_F(HttpServerTest, CloseRemovesTheSocketOnlyWhileItIsStillItsOwn) {
  auto server = Listen();
  ASSERT_TRUE(server.ok());
  (*server)->Close();
  EXPECT_FALSE(std::filesystem::exists(path_));

  server = Listen();
  ASSERT_TRUE(server.ok());
  ASSERT_EQ(::unlink(path_.c_str()), 0);
  std::ofstream(path_) << "someone else's\n";
  (*server)->Close();
  EXPECT_TRUE(std::filesystem::exists(path_));
}

}  // namespace
}  // namespace batchd::api
