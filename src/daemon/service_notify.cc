#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "daemon/service_notify.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <systemd/sd-daemon.h>

namespace batchd::daemon {

ServiceNotifier::ServiceNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  // > 0 only when $WATCHDOG_USEC is set and $WATCHDOG_PID, if set, names this process.
  if (enabled_ && sd_watchdog_enabled(0, &usec) > 0 && usec > 0)
    watchdog_interval_ = std::chrono::microseconds(usec / 2);
}

void ServiceNotifier::Send(std::string_view state, std::string_view status) {
  if (!enabled_) return;
  std::string message(state);
  if (!status.empty()) {
    if (!message.empty()) message += '\n';
    message += "STATUS=";
    // STATUS= is one line; a newline would start a message field of its own.
    for (char c : status) message += c == '\n' ? ' ' : c;
  }
  // Failures are not reported: a manager that went away cannot be told anything else.
  sd_notify(0, message.c_str());
}

void ServiceNotifier::Ready(std::string_view status) { Send("READY=1", status); }
void ServiceNotifier::Reloading(std::string_view status) { Send("RELOADING=1", status); }
void ServiceNotifier::Stopping(std::string_view status) { Send("STOPPING=1", status); }
void ServiceNotifier::Status(std::string_view status) { Send("", status); }
void ServiceNotifier::Watchdog() { Send("WATCHDOG=1", ""); }

struct WatchdogFeeder::Timer {
  explicit Timer(boost::asio::io_context& io) : timer(io) {}
  boost::asio::steady_timer timer;
};

WatchdogFeeder::WatchdogFeeder(boost::asio::io_context& io, ServiceNotifier& notifier)
    : notifier_(notifier), timer_(std::make_unique<Timer>(io)) {}

WatchdogFeeder::~WatchdogFeeder() = default;

void WatchdogFeeder::Start() {
  if (notifier_.watchdog_interval().count() <= 0 || running_) return;
  running_ = true;
  notifier_.Watchdog();
  Arm();
}

void WatchdogFeeder::Stop() {
  running_ = false;
  timer_->timer.cancel();
}

void WatchdogFeeder::Arm() {
  timer_->timer.expires_after(notifier_.watchdog_interval());
  timer_->timer.async_wait([this](const boost::system::error_code& ec) {
    if (ec || !running_) return;
    notifier_.Watchdog();
    Arm();
  });
}

}  // namespace batchd::daemon
