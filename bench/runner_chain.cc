// The executor alone on a chain: SubprocessRunner runs `true` N times, each Start() after
// the previous attempt's callback, from the calling thread like the engine does. Separates
// the cost of spawning and reaping (including the two thread hand-offs) from the engine's
// per-step work, for comparison with `make` on the same chain (bench/README.md).
//
//   cmake --build build --target bench_runner_chain
//   build/bench_runner_chain [N] [LOG_DIR]     # default 200; no LOG_DIR: logs to /dev/null
//   CMD=/usr/bin/true build/bench_runner_chain  # another command (default `true`, found via PATH)

#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first (via common headers)

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <vector>

#include "executor/subprocess_runner.h"

extern char** environ;

int main(int argc, char** argv) {
  using batchd::executor::AttemptResult;
  using batchd::executor::AttemptSpec;
  const int n = argc > 1 ? std::atoi(argv[1]) : 200;
  const std::string log_dir = argc > 2 ? argv[2] : "";
  batchd::executor::SubprocessRunnerOptions options;
  options.workers = 2;
  batchd::executor::SubprocessRunner runner(options);
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);

  std::mutex mu;
  std::condition_variable cv;
  int finished = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    AttemptSpec spec;
    spec.attempt_id = static_cast<uint64_t>(i + 1);
    spec.command = getenv("CMD") ? getenv("CMD") : "true";
    spec.env = env;
    if (!log_dir.empty()) spec.log_path = log_dir + "/" + std::to_string(i) + ".log";
    runner.Start(std::move(spec), [&](AttemptResult) {
      std::lock_guard lock(mu);
      ++finished;
      cv.notify_one();
    });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return finished == i + 1; });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("chain of %d x true through SubprocessRunner: %.3f s, %.0f us per step\n", n, seconds,
              seconds / n * 1e6);
  return 0;
}
