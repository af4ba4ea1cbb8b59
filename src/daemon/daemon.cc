#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include "daemon/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <iostream>
#include <thread>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "api/access_policy.h"
#include "api/control_api.h"
#include "api/http_server.h"
#include "batchd/version.h"
#include "common/logging.h"
#include "daemon/service_notify.h"
#include "daemon/task_environment.h"
#include "engine/dag_versions.h"
#include "engine/engine.h"
#include "executor/subprocess_runner.h"
#include "metrics/metrics.h"
#include "ui/web_ui.h"
#include "scheduler/dag_registry.h"
#include "scheduler/scheduler.h"
#include "scheduler/slo_monitor.h"
#include "store/store.h"


namespace batchd::daemon {
namespace {

namespace asio = boost::asio;

// The system clock shifted by a fixed offset (testing only: lets end-to-end tests reach
// a fire time without waiting for it).
class OffsetClock final : public Clock {
 public:
  explicit OffsetClock(Millis offset) : offset_(offset) {}
  SysMillis Now() const override { return SystemClock::Instance().Now() + offset_; }

 private:
  Millis offset_;
};


}  // namespace

int Serve(const Config& config, const std::string& config_path) {
  executor::OrphanGuard guard;  // first: forked while the process is small (SubprocessRunnerOptions::guard)
  guard.DetachHelper();         // the process exits right after this function
  if (Status st = SetupLogging(config.log_level, config.log_format); !st.ok()) {
    std::cerr << "batchd: " << st.message() << "\n";
    return 2;
  }
  OffsetClock clock(config.clock_offset);
  auto store_result = store::Store::Open(config.data_dir);
  if (!store_result.ok()) {
    std::cerr << "batchd: " << store_result.status().message() << "\n";
    return 1;
  }
  store::Store& store = **store_result;
  if (!store.integrity_checked().empty())
    spdlog::info("database {}/batchd.db passed its integrity check (quick_check, after an {})", config.data_dir,
                 store.integrity_checked());
  const int workers =
      config.workers > 0 ? config.workers : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  asio::io_context io;
  // sd_notify messages (no-ops unless systemd started us); the watchdog is fed from the
  // thread that runs `io`, the engine's loop.
  ServiceNotifier notifier;
  WatchdogFeeder watchdog(io, notifier);
  executor::SubprocessRunnerOptions runner_options;
  runner_options.workers = workers;
  runner_options.shutdown_grace = config.shutdown_grace;
  runner_options.log_max_bytes = config.attempt_log_max_bytes;
  runner_options.guard = &guard;
  executor::SubprocessRunner runner(io, runner_options);

  engine::DagVersionCache versions(store);
  engine::EngineOptions engine_options;
  engine_options.pools = config.pools;
  engine_options.base_env = TaskBaseEnvironment(config.env_passthrough);
  engine_options.orphan_guard = &guard;
  engine::Engine engine(io, store, runner, clock, engine_options,
                        [&](const std::string& name, const std::string& hash) { return versions.Resolve(name, hash); });

  scheduler::DagRegistry registry(store, versions, clock);
  if (Status st = registry.LoadFromStore(); !st.ok()) {
    std::cerr << "batchd: " << st.message() << "\n";
    return 1;
  }
  // Pools: DAG files and submits are checked against the configured pools. A pool that a
  // config reload removes while current DAGs still name it keeps its old slot count in the
  // engine (dropping it would make their tasks unlimited) until a rescan finds it unused.
  std::map<std::string, int> configured_pools = config.pools;
  auto apply_pools = [&] {
    registry.SetPools(configured_pools);
    std::map<std::string, int> effective = configured_pools;
    for (const auto& [pool, dags] : registry.PoolsInUse()) {
      if (effective.count(pool)) continue;
      std::string names;
      for (const auto& d : dags) names += (names.empty() ? "" : ", ") + d;
      auto old = engine.options().pools.find(pool);
      if (old == engine.options().pools.end()) {
        spdlog::error("pool '{}' is not defined in the daemon config but DAG(s) {} name it; their tasks in it "
                      "run without a slot limit until the pool is defined or the DAGs change",
                      pool, names);
        continue;
      }
      effective[pool] = old->second;
      spdlog::error("pool '{}' was removed from the daemon config but DAG(s) {} still name it; it keeps its {} "
                    "slot(s) until no DAG names it (change those DAGs, then reload)",
                    pool, names, old->second);
    }
    engine.SetPools(std::move(effective));
  };
  auto reload_dags = [&]() {
    registry.SetPools(configured_pools);
    auto report = registry.ScanDirectory(config.dags_dir);
    apply_pools();
    spdlog::info("DAGs directory {}: {} loaded, {} unchanged, {} errors", config.dags_dir, report.loaded.size(),
                 report.unchanged.size(), report.errors.size());
    return report;
  };
  auto serving_status = [&](const scheduler::ScanReport& report) {
    return fmt::format("serving: {} DAG file(s) in the DAGs directory, {} error(s); {} worker(s)",
                       report.loaded.size() + report.unchanged.size(), report.errors.size(), workers);
  };
  std::string status = serving_status(reload_dags());
  if (Status st = engine.Recover(); !st.ok()) {
    std::cerr << "batchd: recovering from " << store.data_dir() << ": " << st.message() << "\n";
    return 1;
  }

  scheduler::SchedulerOptions scheduler_options;
  scheduler_options.tick = config.scheduler_tick;
  scheduler::Scheduler scheduler(io, engine, registry, clock, scheduler_options);
  engine.AddObserver(&scheduler);

  metrics::Metrics metrics(engine, registry, clock, workers);
  engine.AddObserver(&metrics);
  scheduler::SloMonitor slo(io, engine, registry, clock);
  engine.AddObserver(&slo);

  bool shutting_down = false;
  api::ControlApiContext context;
  context.engine = &engine;
  context.registry = &registry;
  context.scheduler = &scheduler;
  context.slo = &slo;
  context.clock = &clock;
  context.reload = [&] {
    auto report = reload_dags();
    scheduler.Poke();
    return report;
  };
  context.started_at = clock.Now();
  context.workers = workers;
  context.shutting_down = [&] { return shutting_down; };
  api::MutationAllowList mutation_allow_list = config.mutation_allow_list;  // SIGHUP re-reads it
  context.deny_mutation = [&, daemon_uid = ::geteuid()](const api::HttpRequest& r, const std::string& path) {
    return api::MutationDenied(mutation_allow_list, r.uid, daemon_uid, r.method, path);
  };
  api::ControlApi control(context);

  const std::string socket_path = config.socket.empty() ? store.data_dir() + "/batchd.sock" : config.socket;
  api::HttpServerOptions socket_options;
  socket_options.socket_mode = config.socket_mode;
  socket_options.max_connections = config.max_connections;
  socket_options.idle_timeout = config.idle_timeout;
  socket_options.read_timeout = config.read_timeout;
  socket_options.write_timeout = config.write_timeout;
  auto control_server = api::HttpServer::ListenUnix(
      io, socket_path, [&](const api::HttpRequest& r) { return control.Handle(r); }, socket_options);
  if (!control_server.ok()) {
    std::cerr << "batchd: " << control_server.status().message() << "\n";
    return 1;
  }
  ui::WebUiOptions ui_options;
  ui_options.enabled = config.ui_enabled;
  ui_options.token = config.ui_token;
  ui_options.listen_address = config.http;
  ui::WebUi web_ui(
      ui_options, [&](const api::HttpRequest& r) { return control.Handle(r); },
      [&](const std::string& name) -> dag::DagPtr {
        const auto* reg = registry.Find(name);
        return reg ? reg->dag : nullptr;
      });
  std::unique_ptr<api::HttpServer> http_server;  // after web_ui: its handler uses it
  if (!config.http.empty()) {
    if (!web_ui.off_reason().empty() && config.ui_enabled) spdlog::warn("{}", web_ui.off_reason());
    // Read-only: /metrics, /healthz and the web UI, whose data routes are the control API's
    // GET routes. No method that could change state is accepted on this listener.
    auto listening = api::HttpServer::ListenTcp(io, config.http, [&](const api::HttpRequest& r) {
      if (r.method != "GET" && r.method != "HEAD")
        return api::ErrorResponse(405, "method_not_allowed", "this listener is read-only");
      std::string path = r.target.substr(0, r.target.find('?'));
      if (path == "/metrics") {
        api::HttpResponse res;
        res.content_type = "text/plain; version=0.0.4; charset=utf-8";
        res.body = metrics.Render();
        return res;
      }
      if (path == "/healthz") {
        api::HttpResponse res;
        res.content_type = "text/plain; charset=utf-8";
        const auto& fault = engine.store_fault();
        res.body = shutting_down ? "shutting down\n" : fault ? "store cannot be written: " + *fault + "\n" : "ok\n";
        res.status = shutting_down || fault ? 503 : 200;
        return res;
      }
      if (auto page = web_ui.Handle(r)) return std::move(*page);
      return api::ErrorResponse(404, "not_found", "only /metrics, /healthz and the web UI (/ui/) are served here");
    }, socket_options);
    if (!listening.ok()) {
      std::cerr << "batchd: " << listening.status().message() << "\n";
      return 1;
    }
    http_server = std::move(*listening);
  }

  scheduler.Start();
  slo.Start();

  // Retention: prune old runs hourly (and once at start), in batches with the loop's other
  // work in between, so that a first prune of a long history never stalls the engine.
  asio::steady_timer retention_timer(io);
  std::function<void()> prune = [&] {
    constexpr int kPruneBatch = 500;
    int removed_now = 0;
    if (config.retention.count() > 0) {
      auto removed = store.PruneRunsBefore(clock.Now() - config.retention, kPruneBatch);
      if (!removed.ok()) spdlog::error("retention: {}", removed.status().message());
      else if (*removed > 0) spdlog::info("retention: pruned {} runs older than {}", *removed, FormatDuration(config.retention));
      if (removed.ok()) removed_now = *removed;
    }
    retention_timer.expires_after(removed_now == kPruneBatch ? std::chrono::milliseconds(50)
                                                             : std::chrono::milliseconds(std::chrono::hours(1)));
    retention_timer.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) prune();
    });
  };
  prune();

  // Signals. SIGPIPE would kill us when a client disconnects mid-reply.
  ::signal(SIGPIPE, SIG_IGN);
  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  asio::signal_set hup(io, SIGHUP);
  asio::steady_timer drain_timer(io);
  auto deadline = std::chrono::steady_clock::now();
  std::function<void()> drain = [&] {
    if (engine.HasRunningAttempts() && std::chrono::steady_clock::now() < deadline) {
      drain_timer.expires_after(std::chrono::milliseconds(50));
      drain_timer.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) drain();
      });
      return;
    }
    if (engine.HasRunningAttempts())
      spdlog::warn("grace period over: killing {} running attempt(s); they run again on next start",
                   engine.RunningAttemptCount());
    runner.Shutdown(std::chrono::seconds(2));  // reports every attempt; the engine records them from io
    // Let the engine record them, then stop.
    asio::post(io, [&] {
      asio::post(io, [&] { io.stop(); });
    });
  };
  stop_signals.async_wait([&](const boost::system::error_code& ec, int signo) {
    if (ec) return;
    spdlog::info("received signal {}: draining (grace {})", signo, FormatDuration(config.shutdown_grace));
    notifier.Stopping(fmt::format("stopping: draining {} running attempt(s), grace {}", engine.RunningAttemptCount(),
                                  FormatDuration(config.shutdown_grace)));
    shutting_down = true;
    scheduler.Stop();
    slo.Stop();
    engine.StopDispatching();
    retention_timer.cancel();
    hup.cancel();
    deadline = std::chrono::steady_clock::now() + config.shutdown_grace;
    drain();
  });
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      spdlog::info("SIGHUP: reloading");
      notifier.Reloading("reloading config and DAGs directory");
      if (!config_path.empty()) {
        // The file's pools replace the current ones (a pool left out is removed).
        Config base = config;
        base.pools.clear();
        auto reloaded = LoadConfig(config_path, base);
        if (!reloaded.ok()) {
          spdlog::error("config reload failed, keeping the current settings: {}", reloaded.status().message());
        } else {
          if (Status st = SetupLogging(reloaded->log_level, reloaded->log_format); !st.ok())
            spdlog::error("config reload: {}", st.message());
          configured_pools = reloaded->pools;
          mutation_allow_list = reloaded->mutation_allow_list;
          web_ui.Reconfigure(reloaded->ui_enabled, reloaded->ui_token);
          if (!config.http.empty() && reloaded->ui_enabled && !web_ui.off_reason().empty())
            spdlog::warn("{}", web_ui.off_reason());
        }
      }
      notifier.Ready(serving_status(reload_dags()));
      scheduler.Poke();
      wait_hup();
    });
  };
  wait_hup();

  spdlog::info("batchd {} serving: data {}, dags {}, socket {}, http {}, {} workers", kVersion, store.data_dir(),
               config.dags_dir, socket_path, config.http.empty() ? "off" : config.http, workers);
  notifier.Ready(status);
  watchdog.Start();
  // A handler that throws must not take the daemon down: the error is logged and the
  // loop goes on (the engine rolls back and re-plans a pass that threw by itself).
  for (;;) {
    try {
      io.run();
      break;
    } catch (const std::exception& e) {
      spdlog::error("unexpected error in the event loop, continuing: {}", e.what());
      while (store.InTransaction()) store.Rollback();
    }
  }
  (*control_server)->Close();
  if (http_server) http_server->Close();
  spdlog::info("batchd stopped");
  return 0;
}

}  // namespace batchd::daemon
