#pragma once
// Readiness, status and watchdog messages to the service manager (sd_notify(3)): systemd
// runs batchd as Type=notify with WatchdogSec=, and passes $NOTIFY_SOCKET (and, with a
// watchdog, $WATCHDOG_USEC and $WATCHDOG_PID). Without $NOTIFY_SOCKET every call is a
// no-op, so `batchd serve` from a terminal or a test behaves as before.

#include <chrono>
#include <memory>
#include <string_view>

namespace boost::asio {
class io_context;
}

namespace batchd::daemon {

// Sends sd_notify messages. Reads the environment once, at construction. Not thread-safe:
// the daemon calls it from its io_context thread only.
class ServiceNotifier {
 public:
  ServiceNotifier();

  // Whether a service manager listens ($NOTIFY_SOCKET is set).
  bool enabled() const { return enabled_; }
  // Half of the manager's watchdog timeout (the interval sd_watchdog_enabled(3)
  // recommends for WATCHDOG=1), or zero when no watchdog is set for this process.
  std::chrono::microseconds watchdog_interval() const { return watchdog_interval_; }

  // READY=1: the daemon serves (store open, DAGs loaded, listeners bound).
  void Ready(std::string_view status);
  // RELOADING=1 before a SIGHUP reload; Ready() again once it is done.
  void Reloading(std::string_view status);
  // STOPPING=1 when shutdown begins.
  void Stopping(std::string_view status);
  // STATUS=: one line shown by `systemctl status`.
  void Status(std::string_view status);
  // WATCHDOG=1: the daemon is alive.
  void Watchdog();

 private:
  void Send(std::string_view state, std::string_view status);

  bool enabled_ = false;
  std::chrono::microseconds watchdog_interval_{0};
};

// Feeds the watchdog from a timer on `io`, every notifier.watchdog_interval(). The pings
// come from the loop's own thread, so a loop stuck in one handler stops them and the
// manager restarts the daemon. Does nothing when the watchdog is off. Lives on the loop's
// thread; destroy it before `io`.
class WatchdogFeeder {
 public:
  WatchdogFeeder(boost::asio::io_context& io, ServiceNotifier& notifier);
  ~WatchdogFeeder();
  WatchdogFeeder(const WatchdogFeeder&) = delete;
  WatchdogFeeder& operator=(const WatchdogFeeder&) = delete;

  // Sends one ping now and arms the timer.
  void Start();
  // Cancels the timer; no ping after this returns.
  void Stop();

 private:
  struct Timer;
  void Arm();

  ServiceNotifier& notifier_;
  std::unique_ptr<Timer> timer_;
  bool running_ = false;
};

}  // namespace batchd::daemon
