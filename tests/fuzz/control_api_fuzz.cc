#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

// The control API's router on arbitrary requests. Input: "METHOD TARGET\n" then the
// body. The API runs over a real store in a temporary directory, a registry with the
// example DAGs, and a runner whose attempts succeed at once, so triggers, cancels and
// retries go through the engine. State accumulates across inputs, like a daemon's: every
// request gets a response with a status, never a crash, UB or a leak.

#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "api/control_api.h"
#include "engine/dag_versions.h"
#include "engine/engine.h"
#include "executor/runner.h"
#include "scheduler/dag_registry.h"
#include "scheduler/scheduler.h"
#include "store/store.h"

namespace {

namespace fs = std::filesystem;
using namespace batchd;

// Every attempt succeeds as soon as the io_context runs.
class InstantRunner final : public executor::TaskRunner {
 public:
  explicit InstantRunner(boost::asio::io_context& io) : io_(io) {}
  void Start(executor::AttemptSpec spec, DoneCallback done) override {
    boost::asio::post(io_, [id = spec.attempt_id, done = std::move(done)] {
      executor::AttemptResult r;
      r.attempt_id = id;
      r.end = executor::AttemptEnd::kSuccess;
      r.exit_code = 0;
      done(r);
    });
  }
  void Cancel(uint64_t) override {}
  int Capacity() const override { return 4; }

 private:
  boost::asio::io_context& io_;
};

struct World {
  std::string root;
  boost::asio::io_context io;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<InstantRunner> runner;
  std::unique_ptr<engine::DagVersionCache> versions;
  std::unique_ptr<engine::Engine> engine;
  std::unique_ptr<scheduler::DagRegistry> registry;
  std::unique_ptr<scheduler::Scheduler> scheduler;
  std::unique_ptr<api::ControlApi> api;
};

World* world = nullptr;

void Die(const std::string& what) {
  fprintf(stderr, "control_api_fuzz: %s\n", what.c_str());
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/batchd-fuzz-api-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) Die("mkdtemp failed");
  spdlog::set_level(spdlog::level::warn);  // not a line per run started and finished
  world = new World;  // lives until exit, like a daemon's state
  world->root = pattern;
  atexit([] { std::error_code ec; fs::remove_all(world->root, ec); });
  const std::string dags_dir = world->root + "/dags";
  fs::create_directories(dags_dir);
  for (const auto& entry : fs::directory_iterator(BATCHD_SOURCE_DIR "/dags")) {
    if (entry.path().extension() == ".yaml") fs::copy_file(entry.path(), dags_dir / entry.path().filename());
  }

  auto store = store::Store::Open(world->root + "/data", store::Store::SyncMode::kOnFlush);
  if (!store.ok()) Die(store.status().message());
  world->store = std::move(*store);
  world->runner = std::make_unique<InstantRunner>(world->io);
  world->versions = std::make_unique<engine::DagVersionCache>(*world->store);
  engine::EngineOptions options;
  world->engine = std::make_unique<engine::Engine>(
      world->io, *world->store, *world->runner, SystemClock::Instance(), options,
      [](const std::string& name, const std::string& hash) { return world->versions->Resolve(name, hash); });
  world->registry = std::make_unique<scheduler::DagRegistry>(*world->store, *world->versions, SystemClock::Instance());
  world->registry->ScanDirectory(dags_dir);
  world->scheduler = std::make_unique<scheduler::Scheduler>(world->io, *world->engine, *world->registry,
                                                            SystemClock::Instance(), scheduler::SchedulerOptions{});

  api::ControlApiContext context;
  context.engine = world->engine.get();
  context.registry = world->registry.get();
  context.scheduler = world->scheduler.get();
  context.clock = &SystemClock::Instance();
  context.reload = [dags_dir] { return world->registry->ScanDirectory(dags_dir); };
  context.started_at = SystemClock::Instance().Now();
  context.workers = 4;
  context.shutting_down = [] { return false; };
  world->api = std::make_unique<api::ControlApi>(context);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  api::HttpRequest request;
  size_t nl = input.find('\n');
  std::string_view line = input.substr(0, nl);
  size_t space = line.find(' ');
  request.method = std::string(line.substr(0, space));
  request.target = space == std::string_view::npos ? "" : std::string(line.substr(space + 1));
  request.body = nl == std::string_view::npos ? "" : std::string(input.substr(nl + 1));
  request.uid = static_cast<int>(getuid());

  api::HttpResponse response;
  try {
    response = world->api->Handle(request);
  } catch (const std::exception& e) {
    // What HttpServer does with an exception from its handler: a 500 for this request
    // only. (ErrorResponse throwing on a message that is not UTF-8 ends up here.)
    response = api::ErrorResponse(500, "internal", std::string("internal error: ") + e.what());
  }
  if (response.status < 100 || response.status > 599) Die("status " + std::to_string(response.status));
  // Let the engine act on what the request started (runs, attempts, cancels), a bounded
  // number of steps per request: a backfill of years queues thousands of runs, which a
  // daemon works through over time, not within one request.
  for (int i = 0; i < 200 && world->io.poll_one() > 0; ++i) {
  }
  world->io.restart();
  return 0;
}
