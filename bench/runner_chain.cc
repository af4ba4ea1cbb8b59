// The executor alone on a chain: SubprocessRunner runs `true` N times, each Start() from a
// handler posted by the previous attempt's callback, on the io thread like the engine.
// Separates the cost of spawning and reaping from the engine's per-step work, for comparison with `make` on the same chain (bench/README.md).
//
//   cmake --build build --target bench_runner_chain
//   build/bench_runner_chain [N] [LOG_DIR]     # default 200; no LOG_DIR: logs to /dev/null
//   CMD=/usr/bin/true build/bench_runner_chain  # another command (default `true`, found via PATH)

#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first (via common headers)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "executor/subprocess_runner.h"

extern char** environ;

int main(int argc, char** argv) {
  using batchd::executor::AttemptResult;
  using batchd::executor::AttemptSpec;
  const int n = argc > 1 ? std::atoi(argv[1]) : 200;
  const std::string log_dir = argc > 2 ? argv[2] : "";
  boost::asio::io_context io;
  batchd::executor::SubprocessRunnerOptions options;
  options.workers = 2;
  batchd::executor::SubprocessRunner runner(io, options);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  const char* cmd = getenv("CMD");

  int started = 0;
  std::function<void()> start_next = [&] {
    if (started == n) return;
    AttemptSpec spec;
    spec.attempt_id = static_cast<uint64_t>(++started);
    spec.command = cmd != nullptr ? cmd : "true";
    spec.env = env;
    if (!log_dir.empty()) spec.log_path = log_dir + "/" + std::to_string(started) + ".log";
    // Like the engine: the result is posted to the loop, which starts the next one.
    runner.Start(std::move(spec), [&](AttemptResult) { boost::asio::post(io, start_next); });
  };
  const auto start = std::chrono::steady_clock::now();
  start_next();
  io.run();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("chain of %d x true through SubprocessRunner: %.3f s, %.0f us per step\n", n, seconds,
              seconds / n * 1e6);
  return 0;
}
