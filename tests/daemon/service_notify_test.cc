#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "daemon/service_notify.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <gtest/gtest.h>

namespace batchd::daemon {
namespace {

using namespace std::chrono_literals;

// A datagram socket standing in for systemd's $NOTIFY_SOCKET, and the environment that
// points the process at it. Restores the environment when it goes.
class FakeServiceManager {
 public:
  explicit FakeServiceManager(std::optional<std::chrono::microseconds> watchdog = std::nullopt) {
    dir_ = std::filesystem::temp_directory_path() / ("notify_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "notify.sock").string();
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path_.copy(addr.sun_path, sizeof addr.sun_path - 1);
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::setenv("NOTIFY_SOCKET", path_.c_str(), 1);
    if (watchdog) {
      ::setenv("WATCHDOG_USEC", std::to_string(watchdog->count()).c_str(), 1);
      ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    }
  }
  ~FakeServiceManager() {
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
    ::close(fd_);
    std::filesystem::remove_all(dir_);
  }

  // The next message, or "" when none arrives within `timeout`.
  std::string Receive(std::chrono::milliseconds timeout = 2s) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

  // Every message that arrives within `window`.
  std::vector<std::string> ReceiveFor(std::chrono::milliseconds window) {
    std::vector<std::string> got;
    auto end = std::chrono::steady_clock::now() + window;
    for (auto now = std::chrono::steady_clock::now(); now < end; now = std::chrono::steady_clock::now()) {
      std::string m = Receive(std::chrono::duration_cast<std::chrono::milliseconds>(end - now));
      if (!m.empty()) got.push_back(m);
    }
    return got;
  }

 private:
  std::filesystem::path dir_;
  std::string path_;
  int fd_ = -1;
};

TEST(ServiceNotifierTest, DisabledWithoutNotifySocket) {
  ::unsetenv("NOTIFY_SOCKET");
  ServiceNotifier notifier;
  EXPECT_FALSE(notifier.enabled());
  EXPECT_EQ(notifier.watchdog_interval().count(), 0);
  notifier.Ready("serving");  // no socket to write to: nothing happens
}

TEST(ServiceNotifierTest, SendsReadyReloadingStoppingWithStatus) {
  FakeServiceManager manager;
  ServiceNotifier notifier;
  ASSERT_TRUE(notifier.enabled());
  notifier.Ready("serving: 3 DAG file(s)");
  EXPECT_EQ(manager.Receive(), "READY=1\nSTATUS=serving: 3 DAG file(s)");
  notifier.Reloading("reloading");
  EXPECT_EQ(manager.Receive(), "RELOADING=1\nSTATUS=reloading");
  notifier.Status("two\nlines");
  EXPECT_EQ(manager.Receive(), "STATUS=two lines");
  notifier.Stopping("");
  EXPECT_EQ(manager.Receive(), "STOPPING=1");
}

TEST(ServiceNotifierTest, WatchdogIntervalIsHalfOfWatchdogUsec) {
  FakeServiceManager manager(std::chrono::microseconds(3'000'000));
  ServiceNotifier notifier;
  EXPECT_EQ(notifier.watchdog_interval(), std::chrono::microseconds(1'500'000));
}

TEST(ServiceNotifierTest, NoWatchdogWhenWatchdogPidNamesAnotherProcess) {
  FakeServiceManager manager(std::chrono::microseconds(3'000'000));
  ::setenv("WATCHDOG_PID", "1", 1);
  ServiceNotifier notifier;
  EXPECT_EQ(notifier.watchdog_interval().count(), 0);
}

TEST(WatchdogFeederTest, DoesNothingWithoutWatchdog) {
  FakeServiceManager manager;
  ServiceNotifier notifier;
  boost::asio::io_context io;
  WatchdogFeeder feeder(io, notifier);
  feeder.Start();
  io.run_for(200ms);
  EXPECT_EQ(manager.Receive(100ms), "");
}

// The pings come from the loop: while one handler blocks it, none arrive; once the loop
// runs again, they resume.
TEST(WatchdogFeederTest, PingsFromTheLoopAndStopWhileTheLoopIsBlocked) {
  FakeServiceManager manager(std::chrono::microseconds(200'000));  // a ping every 100 ms
  ServiceNotifier notifier;
  boost::asio::io_context io;
  auto work = boost::asio::make_work_guard(io);
  WatchdogFeeder feeder(io, notifier);
  boost::asio::post(io, [&] { feeder.Start(); });
  std::thread loop([&] { io.run(); });

  auto running = manager.ReceiveFor(550ms);
  EXPECT_GE(running.size(), 3u);
  for (const auto& m : running) EXPECT_EQ(m, "WATCHDOG=1");

  std::atomic<bool> blocked{false}, release{false};
  boost::asio::post(io, [&] {
    blocked = true;
    while (!release) std::this_thread::sleep_for(5ms);
  });
  while (!blocked) std::this_thread::sleep_for(1ms);
  manager.ReceiveFor(20ms);  // a ping sent just before the block
  EXPECT_EQ(manager.ReceiveFor(500ms).size(), 0u) << "the watchdog was fed while its loop was blocked";
  release = true;

  EXPECT_EQ(manager.Receive(1s), "WATCHDOG=1");
  boost::asio::post(io, [&] { feeder.Stop(); });
  manager.ReceiveFor(50ms);
  EXPECT_EQ(manager.ReceiveFor(300ms).size(), 0u) << "pings after Stop()";
  work.reset();
  io.stop();
  loop.join();
}

}  // namespace
}  // namespace batchd::daemon
