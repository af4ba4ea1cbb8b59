// Engine: the loop on an io_context, with a real Store in a temporary directory, a fake
// clock and a fake TaskRunner whose attempts the test finishes by hand. After every step
// the tests compare what the engine holds in memory with what it committed to the store.

#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <regex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <sqlite3.h>

#include "common/time.h"
#include "dag/loader.h"
#include "engine/engine.h"
#include "executor/runner.h"
#include "store/store.h"

namespace batchd::engine {
namespace {

namespace fs = std::filesystem;
using executor::AttemptEnd;
using executor::AttemptResult;
using executor::AttemptSpec;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

SysSeconds At(std::string_view iso) {
  auto t = ParseInstant(iso, *LookupZone("UTC"));
  EXPECT_TRUE(t.ok()) << iso;
  return t.ok() ? *t : SysSeconds{};
}

// A clock the test sets; the engine reads it for every timestamp and retry deadline.
class FakeClock final : public Clock {
 public:
  SysMillis Now() const override { return now_; }
  void Set(SysMillis t) { now_ = t; }
  void Advance(Millis d) { now_ += d; }

 private:
  SysMillis now_{};
};

// Records every started attempt; the test finishes them with chosen results by calling
// the engine's DoneCallback from the test thread (the engine posts it to its loop).
class FakeRunner final : public executor::TaskRunner {
 public:
  struct Attempt {
    AttemptSpec spec;
    DoneCallback done;
    bool finished = false;
    bool cancel_requested = false;

    std::string Env(const std::string& key) const {
      for (const auto& kv : spec.env)
        if (kv.compare(0, key.size() + 1, key + "=") == 0) return kv.substr(key.size() + 1);
      return "<unset>";
    }
    std::string task() const { return Env("BATCHD_TASK"); }
    std::string partition() const { return Env("BATCHD_PARTITION"); }
    std::string run_id() const { return Env("BATCHD_RUN_ID"); }
    // "task[partition]#attempt"
    std::string Name() const { return task() + "[" + partition() + "]#" + Env("BATCHD_ATTEMPT"); }
  };

  FakeRunner(const FakeClock& clock, int capacity) : clock_(clock), capacity_(capacity) {}

  void Start(AttemptSpec spec, DoneCallback done) override {
    EXPECT_LT(InFlight(), capacity_) << "the engine started more attempts than Capacity()";
    attempts_.push_back(std::make_unique<Attempt>(Attempt{std::move(spec), std::move(done)}));
    max_in_flight_ = std::max(max_in_flight_, InFlight());
  }
  void Cancel(uint64_t attempt_id) override {
    cancelled_.push_back(attempt_id);
    for (auto& a : attempts_)
      if (a->spec.attempt_id == attempt_id) a->cancel_requested = true;
  }
  int Capacity() const override { return capacity_; }

  int InFlight() const {
    int n = 0;
    for (const auto& a : attempts_) n += !a->finished;
    return n;
  }
  int max_in_flight() const { return max_in_flight_; }
  size_t started() const { return attempts_.size(); }
  const Attempt& attempt(size_t i) const { return *attempts_.at(i); }
  const std::vector<uint64_t>& cancelled() const { return cancelled_; }

  // Unfinished attempts, "task[partition]#attempt", in start order.
  std::vector<std::string> Running() const {
    std::vector<std::string> out;
    for (const auto& a : attempts_)
      if (!a->finished) out.push_back(a->Name());
    return out;
  }
  // Every attempt ever started, in start order.
  std::vector<std::string> Started() const {
    std::vector<std::string> out;
    for (const auto& a : attempts_) out.push_back(a->Name());
    return out;
  }
  Attempt* Find(const std::string& task, const std::string& partition = "-") {
    for (auto& a : attempts_)
      if (!a->finished && a->task() == task && a->partition() == partition) return a.get();
    return nullptr;
  }

  // The unfinished attempt started first, or null.
  Attempt* Oldest() {
    for (auto& a : attempts_)
      if (!a->finished) return a.get();
    return nullptr;
  }

  void Finish(Attempt& a, AttemptEnd end, std::optional<int> exit_code) {
    ASSERT_FALSE(a.finished) << a.Name() << " finished twice";
    a.finished = true;
    AttemptResult r;
    r.attempt_id = a.spec.attempt_id;
    r.end = end;
    r.exit_code = end == AttemptEnd::kSuccess ? std::optional<int>(0) : exit_code;
    if (end == AttemptEnd::kCancelled || end == AttemptEnd::kTimeout) r.signal = 15;
    if (end == AttemptEnd::kSpawnError) r.error = "cannot open log file: Permission denied";
    r.pid = 4242;
    r.started_at = clock_.Now();
    r.ended_at = clock_.Now();
    r.cpu_seconds = 0.25;
    r.max_rss_kb = 1024;
    a.done(std::move(r));
  }

 private:
  const FakeClock& clock_;
  int capacity_;
  std::vector<std::unique_ptr<Attempt>> attempts_;
  std::vector<uint64_t> cancelled_;
  int max_in_flight_ = 0;
};

// Records what observers are told, and checks it is committed before they hear of it.
// Instance transitions are recorded as they happen, so a test can see that an instance
// went through retry_wait even when its short retry timer has fired since.
class RecordingObserver final : public EngineObserver {
 public:
  explicit RecordingObserver(std::function<store::Store&()> store) : store_(std::move(store)) {}
  void OnRunCreated(const store::RunRecord& run) override { events.push_back("created " + run.run_id); }
  void OnRunStateChanged(const RunPlan& plan, RunState from) override {
    events.push_back("run " + std::string(ToString(from)) + "->" + std::string(ToString(plan.run().state)));
  }
  void OnInstanceStateChanged(const RunPlan& plan, const store::InstanceRecord& inst) override {
    auto stored = store_().ListInstances(plan.run().run_id);
    ASSERT_TRUE(stored.ok());
    for (const auto& s : *stored) {
      if (s.id == inst.id) {
        EXPECT_EQ(ToString(s.state), ToString(inst.state)) << "observer told before the store was written";
        EXPECT_EQ(s.next_attempt_at, inst.next_attempt_at) << "observer told before the store was written";
      }
    }
    const std::string name = inst.task + "[" + inst.partition + "]";
    transitions.push_back(name + "=" + std::string(ToString(inst.state)));
    if (inst.state == InstanceState::kRetryWait && inst.next_attempt_at) retry_at.push_back(*inst.next_attempt_at);
  }
  void OnAttemptFinished(const RunPlan&, const store::InstanceRecord& inst, const store::AttemptRecord& a) override {
    events.push_back("attempt " + inst.task + "#" + std::to_string(a.number) + " " + std::string(ToString(a.outcome)));
  }
  void OnRunFinished(const RunPlan& plan) override {
    auto run = store_().GetRun(plan.run().run_id);
    ASSERT_TRUE(run.ok() && *run);
    EXPECT_EQ((**run).state, plan.run().state) << "observer told before the run was committed";
    events.push_back("finished " + std::string(ToString(plan.run().state)));
  }

  // The states task[partition] went through, in order.
  std::vector<std::string> StatesOf(const std::string& task, const std::string& partition = "-") const {
    const std::string prefix = task + "[" + partition + "]=";
    std::vector<std::string> out;
    for (const auto& t : transitions)
      if (t.rfind(prefix, 0) == 0) out.push_back(t.substr(prefix.size()));
    return out;
  }

  std::vector<std::string> events;
  std::vector<std::string> transitions;  // "task[partition]=state"
  std::vector<SysMillis> retry_at;        // next_attempt_at of every retry_wait, in order

 private:
  std::function<store::Store&()> store_;
};

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::critical);
    char tmpl[] = "/tmp/batchd-engine-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    OpenStore();
    clock_.Set(SysMillis(At("2026-03-29T10:00:00Z")));
    runner_ = std::make_unique<FakeRunner>(clock_, capacity_);
  }

  void TearDown() override {
    engine_.reset();
    Drain();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void OpenStore() {
    auto s = store::Store::Open(dir_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
  }

  Engine& NewEngine(EngineOptions options = {}) {
    options.seed = 1;
    options_ = options;
    observer_.transitions.clear();
    observer_.retry_at.clear();
    engine_ = std::make_unique<Engine>(io_, *store_, *runner_, clock_, options,
                                       [this](const std::string& name, const std::string& hash) -> Result<dag::DagPtr> {
                                         auto it = dags_.find(hash);
                                         if (it == dags_.end() || it->second->name != name)
                                           return Status::NotFound("no DAG " + name + " version " + hash);
                                         return it->second;
                                       });
    engine_->AddObserver(&observer_);
    return *engine_;
  }

  // Simulates a daemon restart: the engine goes away with attempts in flight, the store is
  // closed and reopened, a fresh runner and engine recover from it.
  void Restart(Millis advance_clock = 0ms) {
    engine_.reset();
    Drain();
    store_.reset();
    OpenStore();
    old_runners_.push_back(std::move(runner_));
    runner_ = std::make_unique<FakeRunner>(clock_, capacity_);
    clock_.Advance(advance_clock);
    NewEngine(options_);
    Status st = engine_->Recover();
    ASSERT_TRUE(st.ok()) << st.ToString();
    Drain();
  }

  dag::DagPtr AddDag(std::string_view yaml) {
    dag::LoadResult r = dag::LoadDagString(yaml, "test.yaml");
    for (const auto& d : r.errors) ADD_FAILURE() << d.ToString();
    if (r.dag) dags_[r.dag->content_hash] = r.dag;
    return r.dag;
  }

  static RunRequest Request(const dag::DagPtr& dag, std::string_view logical_date = "2026-03-29T00:00:00Z") {
    RunRequest req;
    req.dag = dag;
    req.trigger = "manual";
    req.logical_date = At(logical_date);
    req.interval_start = req.logical_date;
    req.interval_end = req.logical_date;
    return req;
  }

  // Creates a run (asserting it is new) and lets the engine start it. The clock moves on
  // a second first, so runs created one after another have distinct creation times.
  std::string Trigger(const RunRequest& req) {
    clock_.Advance(1s);
    auto created = engine_->CreateRun(req);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return "";
    EXPECT_TRUE(created->created);
    Drain();
    return created->run.run_id;
  }
  std::string Trigger(const dag::DagPtr& dag, std::string_view logical_date = "2026-03-29T00:00:00Z") {
    return Trigger(Request(dag, logical_date));
  }

  // Runs every ready handler (results, pumps, expired timers) until none is left and no
  // run waits for its partitions commands (they run on the expander's thread).
  void Drain() {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    for (int busy = 0; busy < 1000;) {
      io_.restart();
      if (io_.poll() != 0) {
        ++busy;
        continue;
      }
      if (!engine_ || engine_->StartingRunCount() == 0) return;
      if (std::chrono::steady_clock::now() > deadline) break;
      std::this_thread::sleep_for(1ms);
    }
    ADD_FAILURE() << "the io_context never became idle";
  }

  // Runs the loop (timers included) until `pred` holds or `limit` passes.
  bool RunUntil(const std::function<bool()>& pred, Millis limit = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    Drain();
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io_.restart();
      if (io_.run_for(2ms) == 0) std::this_thread::sleep_for(1ms);
    }
    Drain();
    return true;
  }

  // Runs the loop for `d` of real time.
  void RunFor(Millis d) {
    const auto deadline = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < deadline) {
      io_.restart();
      if (io_.run_for(2ms) == 0) std::this_thread::sleep_for(1ms);
    }
    Drain();
  }

  // Finishes the running attempt of task[partition] and lets the engine react.
  void Complete(const std::string& task, const std::string& partition = "-", AttemptEnd end = AttemptEnd::kSuccess,
                std::optional<int> exit_code = std::nullopt) {
    FakeRunner::Attempt* a = runner_->Find(task, partition);
    ASSERT_NE(a, nullptr) << task << "[" << partition << "] is not running; running: "
                          << ::testing::PrintToString(runner_->Running());
    runner_->Finish(*a, end, exit_code);
    Drain();
  }
  void Fail(const std::string& task, const std::string& partition = "-", int exit_code = 1) {
    Complete(task, partition, AttemptEnd::kFailed, exit_code);
  }

  std::vector<store::InstanceRecord> StoredInstances(const std::string& run_id) {
    auto r = store_->ListInstances(run_id);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : std::vector<store::InstanceRecord>{};
  }

  store::InstanceRecord Stored(const std::string& run_id, const std::string& task, const std::string& partition = "-") {
    for (auto& i : StoredInstances(run_id))
      if (i.task == task && i.partition == partition) return i;
    ADD_FAILURE() << "no stored instance " << task << "[" << partition << "]";
    return {};
  }

  // Every stored instance as "task[partition]=state(reason)", in id order.
  std::vector<std::string> StoredStates(const std::string& run_id) {
    std::vector<std::string> out;
    for (const auto& i : StoredInstances(run_id)) {
      std::string s = i.task + "[" + i.partition + "]=" + std::string(ToString(i.state));
      if (!i.reason.empty()) s += "(" + i.reason + ")";
      out.push_back(s);
    }
    return out;
  }

  std::string StoredState(const std::string& run_id, const std::string& task, const std::string& partition = "-") {
    auto i = Stored(run_id, task, partition);
    std::string s(ToString(i.state));
    if (!i.reason.empty()) s += "(" + i.reason + ")";
    return s;
  }

  store::RunRecord StoredRun(const std::string& run_id) {
    auto r = store_->GetRun(run_id);
    EXPECT_TRUE(r.ok() && *r) << run_id;
    return r.ok() && *r ? **r : store::RunRecord{};
  }
  std::string RunStateOf(const std::string& run_id) { return std::string(ToString(StoredRun(run_id).state)); }

  std::vector<store::AttemptRecord> Attempts(const std::string& run_id, const std::string& task,
                                             const std::string& partition = "-") {
    auto r = store_->ListAttempts(Stored(run_id, task, partition).id);
    EXPECT_TRUE(r.ok());
    return r.ok() ? *r : std::vector<store::AttemptRecord>{};
  }
  std::vector<std::string> AttemptOutcomes(const std::string& run_id, const std::string& task,
                                           const std::string& partition = "-") {
    std::vector<std::string> out;
    for (const auto& a : Attempts(run_id, task, partition))
      out.push_back(std::to_string(a.number) + ":" + std::string(ToString(a.outcome)));
    return out;
  }

  std::vector<std::string> DeadLetters(const std::string& dag) {
    auto r = store_->ListDeadLetters(dag);
    EXPECT_TRUE(r.ok());
    std::vector<std::string> out;
    if (r.ok())
      for (const auto& i : *r) out.push_back(i.task + "[" + i.partition + "]");
    return out;
  }

  // The engine's view of an active run equals the store's, field by field.
  void ExpectStoreMatchesMemory(const std::string& run_id) {
    const RunPlan* plan = engine_->FindActiveRun(run_id);
    store::RunRecord run = StoredRun(run_id);
    if (!plan) {
      EXPECT_TRUE(IsTerminal(run.state) || run.state == RunState::kQueued)
          << "run " << run_id << " is " << ToString(run.state) << " in the store but not active";
      return;
    }
    EXPECT_EQ(ToString(run.state), ToString(plan->run().state)) << "run " << run_id;
    auto stored = StoredInstances(run_id);
    ASSERT_EQ(stored.size(), plan->size());
    for (const auto& s : stored) {
      auto idx = plan->IndexOf(s.id);
      ASSERT_TRUE(idx.has_value()) << s.id;
      const auto& m = plan->instance(*idx);
      const std::string what = s.task + "[" + s.partition + "]";
      EXPECT_EQ(ToString(s.state), ToString(m.state)) << what;
      EXPECT_EQ(s.reason, m.reason) << what;
      EXPECT_EQ(s.attempts, m.attempts) << what;
      EXPECT_EQ(s.exit_code, m.exit_code) << what;
      EXPECT_EQ(s.next_attempt_at, m.next_attempt_at) << what;
      EXPECT_EQ(s.started_at, m.started_at) << what;
      EXPECT_EQ(s.ended_at, m.ended_at) << what;
      EXPECT_EQ(s.idempotency_key, m.idempotency_key) << what;
    }
  }

  std::string dir_;
  boost::asio::io_context io_;
  FakeClock clock_;
  int capacity_ = 8;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<FakeRunner> runner_;
  std::vector<std::unique_ptr<FakeRunner>> old_runners_;
  std::map<std::string, dag::DagPtr> dags_;  // by content hash: the resolver's view
  EngineOptions options_;
  RecordingObserver observer_{[this]() -> store::Store& { return *store_; }};
  std::unique_ptr<Engine> engine_;
};

// --- dependency order ---------------------------------------------------------------------

TEST_F(EngineTest, RunsTasksInDependencyOrder) {
  auto dag = AddDag(R"yaml(dag: chain
tasks:
  - id: a
    command: "echo a"
  - id: b
    command: "echo b"
    depends_on: [a]
  - id: c
    command: "echo c"
    depends_on: [b, d]
  - id: d
    command: "echo d"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_EQ(RunStateOf(run), "running");
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#1"));
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=running", "b[-]=pending", "c[-]=pending", "d[-]=pending"));
  ExpectStoreMatchesMemory(run);

  Complete("a");
  EXPECT_THAT(runner_->Running(), ElementsAre("b[-]#1", "d[-]#1"));
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=success", "b[-]=running", "c[-]=pending", "d[-]=running"));
  ExpectStoreMatchesMemory(run);

  Complete("b");
  EXPECT_THAT(runner_->Running(), ElementsAre("d[-]#1"));
  EXPECT_EQ(StoredState(run, "c"), "pending");
  ExpectStoreMatchesMemory(run);

  Complete("d");
  EXPECT_THAT(runner_->Running(), ElementsAre("c[-]#1"));
  ExpectStoreMatchesMemory(run);

  Complete("c");
  EXPECT_THAT(runner_->Running(), IsEmpty());
  EXPECT_EQ(RunStateOf(run), "success");
  EXPECT_TRUE(StoredRun(run).started_at.has_value());
  EXPECT_TRUE(StoredRun(run).ended_at.has_value());
  EXPECT_EQ(engine_->FindActiveRun(run), nullptr);
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=success", "b[-]=success", "c[-]=success", "d[-]=success"));
  EXPECT_THAT(AttemptOutcomes(run, "c"), ElementsAre("1:success"));
  auto attempt = Attempts(run, "c").at(0);
  EXPECT_EQ(attempt.exit_code, 0);
  EXPECT_EQ(attempt.pid, 4242);
  EXPECT_EQ(attempt.cpu_seconds, 0.25);
  EXPECT_EQ(attempt.max_rss_kb, 1024);
  EXPECT_TRUE(attempt.ended_at.has_value());
}

TEST_F(EngineTest, SamePartitionDependenciesDispatchPerPartition) {
  auto dag = AddDag(R"yaml(dag: parts
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us, eu]}
  - id: transform
    command: "true"
    partitions: {values: [us, eu]}
    depends_on:
      - task: extract
        partitions: same
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_THAT(runner_->Running(), ElementsAre("extract[us]#1", "extract[eu]#1"));
  Complete("extract", "eu");
  EXPECT_THAT(runner_->Running(), ElementsAre("extract[us]#1", "transform[eu]#1"));
  ExpectStoreMatchesMemory(run);
}

// --- limits -------------------------------------------------------------------------------

TEST_F(EngineTest, MaxActiveTasksLimitsRunningInstancesOfARun) {
  auto dag = AddDag(R"yaml(dag: limited
max_active_tasks: 2
tasks:
  - id: a
    command: "true"
    partitions: {range: [0, 5]}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_THAT(runner_->Running(), ElementsAre("a[0]#1", "a[1]#1"));
  EXPECT_EQ(engine_->QueuedInstanceCount(), 3);
  EXPECT_EQ(StoredState(run, "a", "2"), "queued");
  ExpectStoreMatchesMemory(run);
  Complete("a", "1");
  EXPECT_THAT(runner_->Running(), ElementsAre("a[0]#1", "a[2]#1"));
  Complete("a", "0");
  Complete("a", "2");
  Complete("a", "3");
  Complete("a", "4");
  EXPECT_EQ(runner_->max_in_flight(), 2);
  EXPECT_EQ(RunStateOf(run), "success");
}

TEST_F(EngineTest, RunnerCapacityLimitsAttemptsAcrossRuns) {
  capacity_ = 3;
  runner_ = std::make_unique<FakeRunner>(clock_, capacity_);
  auto dag = AddDag(R"yaml(dag: wide
max_active_runs: 2
tasks:
  - id: a
    command: "true"
    partitions: {range: [0, 4]}
)yaml");
  NewEngine();
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  std::string r2 = Trigger(dag, "2026-03-02T00:00:00Z");
  EXPECT_EQ(runner_->InFlight(), 3);
  EXPECT_EQ(engine_->RunningAttemptCount(), 3);
  EXPECT_EQ(RunStateOf(r2), "running");
  // The older run goes first when priorities are equal.
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(runner_->attempt(i).run_id(), r1);
  Complete("a", "0");
  EXPECT_EQ(runner_->InFlight(), 3);
  EXPECT_EQ(runner_->attempt(3).run_id(), r1);
  while (FakeRunner::Attempt* oldest = runner_->Oldest()) {
    runner_->Finish(*oldest, AttemptEnd::kSuccess, 0);
    Drain();
  }
  EXPECT_EQ(runner_->started(), 8u);
  EXPECT_EQ(runner_->max_in_flight(), 3);
  EXPECT_EQ(RunStateOf(r1), "success");
  EXPECT_EQ(RunStateOf(r2), "success");
}

TEST_F(EngineTest, PoolsLimitTheirTasksAcrossRunsAndLeaveOthersAlone) {
  auto dag = AddDag(R"yaml(dag: pooled
max_active_runs: 2
tasks:
  - id: load
    command: "true"
    pool: warehouse
    partitions: {values: [x, y]}
  - id: free
    command: "true"
  - id: elsewhere
    command: "true"
    pool: not_configured
    partitions: {values: [p, q, r]}
)yaml");
  capacity_ = 16;
  runner_ = std::make_unique<FakeRunner>(clock_, capacity_);
  EngineOptions options;
  options.pools = {{"warehouse", 3}};
  NewEngine(options);
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  std::string r2 = Trigger(dag, "2026-03-02T00:00:00Z");
  int load_running = 0;
  for (const auto& name : runner_->Running()) load_running += name.rfind("load[", 0) == 0;
  EXPECT_EQ(load_running, 3);
  EXPECT_EQ(engine_->PoolUsage().at("warehouse"), 3);
  // Unlimited: every instance of the other tasks of both runs runs.
  EXPECT_EQ(runner_->InFlight(), 3 + 2 * 1 + 2 * 3);
  EXPECT_EQ(StoredState(r2, "load", "y"), "queued");
  ExpectStoreMatchesMemory(r1);
  ExpectStoreMatchesMemory(r2);

  // Finishing a pool task frees its slot for the queued one.
  Complete("load", "x");
  EXPECT_EQ(engine_->PoolUsage().at("warehouse"), 3);
  EXPECT_EQ(StoredState(r2, "load", "y"), "running");
  ExpectStoreMatchesMemory(r2);
}

TEST_F(EngineTest, PriorityPicksHigherFirstWhenSlotsAreScarce) {
  capacity_ = 1;
  runner_ = std::make_unique<FakeRunner>(clock_, capacity_);
  auto dag = AddDag(R"yaml(dag: prio
tasks:
  - id: low
    command: "true"
    priority: 1
  - id: plain
    command: "true"
  - id: high
    command: "true"
    priority: 10
  - id: mid
    command: "true"
    priority: 5
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_THAT(runner_->Running(), ElementsAre("high[-]#1"));
  Complete("high");
  Complete("mid");
  Complete("low");
  Complete("plain");
  EXPECT_THAT(runner_->Started(), ElementsAre("high[-]#1", "mid[-]#1", "low[-]#1", "plain[-]#1"));
  EXPECT_EQ(RunStateOf(run), "success");
}

TEST_F(EngineTest, MaxActiveRunsKeepsASecondRunQueuedUntilTheFirstFinishes) {
  auto dag = AddDag(R"yaml(dag: serial
max_active_runs: 1
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  std::string r2 = Trigger(dag, "2026-03-02T00:00:00Z");
  EXPECT_EQ(RunStateOf(r1), "running");
  EXPECT_EQ(RunStateOf(r2), "queued");
  EXPECT_THAT(StoredInstances(r2), IsEmpty());
  EXPECT_EQ(engine_->ActiveRunCount(), 1u);
  ASSERT_EQ(runner_->started(), 1u);
  EXPECT_EQ(runner_->attempt(0).run_id(), r1);

  Complete("a");
  EXPECT_EQ(RunStateOf(r1), "success");
  EXPECT_EQ(RunStateOf(r2), "running");
  ASSERT_EQ(runner_->started(), 2u);
  EXPECT_EQ(runner_->attempt(1).run_id(), r2);
  ExpectStoreMatchesMemory(r2);
  Complete("a");
  EXPECT_EQ(RunStateOf(r2), "success");
}

TEST_F(EngineTest, RunsCreatedInTheSameMillisecondDispatchInCreationOrder) {
  // A backfill creates its runs in a tight loop, often within one clock tick; "older runs
  // first" must still hold among them.
  capacity_ = 1;
  runner_ = std::make_unique<FakeRunner>(clock_, capacity_);
  auto dag = AddDag(R"yaml(dag: backfilled
max_active_runs: 8
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::vector<std::string> created;
  for (int day = 1; day <= 8; ++day) {
    auto r = engine_->CreateRun(Request(dag, "2026-03-0" + std::to_string(day) + "T00:00:00Z"));
    ASSERT_TRUE(r.ok() && r->created);
    created.push_back(r->run.run_id);
  }
  Drain();
  std::vector<std::string> dispatched;
  while (runner_->InFlight() > 0) {
    dispatched.push_back(runner_->Find("a")->run_id());
    Complete("a");
  }
  EXPECT_EQ(dispatched, created);
}

// --- retries ------------------------------------------------------------------------------

// Short retry delays (10ms) may elapse while a Pump commits, so these tests read the
// retry_wait step from the observer (which checks the store at that moment) rather than
// from the store afterwards.

TEST_F(EngineTest, RetriesAfterTheDelayUntilAnAttemptSucceeds) {
  auto dag = AddDag(R"yaml(dag: flaky
tasks:
  - id: a
    command: "true"
    retry: {retries: 2, delay: 10ms, backoff: fixed}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  const SysMillis t0 = clock_.Now();
  Fail("a", "-", 1);
  // (Changes within one loop pass are reported once, in their final state: a retry that
  // is queued and dispatched in the same pass shows as running.)
  auto seen = observer_.StatesOf("a");
  ASSERT_GE(seen.size(), 2u);
  EXPECT_EQ(seen[0], "running");
  EXPECT_EQ(seen[1], "retry_wait");
  EXPECT_THAT(observer_.retry_at, ElementsAre(t0 + 10ms));
  EXPECT_THAT(AttemptOutcomes(run, "a"), ::testing::Contains("1:failed"));
  EXPECT_EQ(Attempts(run, "a")[0].exit_code, 1);
  EXPECT_EQ(Stored(run, "a").exit_code, 1);
  EXPECT_THAT(DeadLetters("flaky"), IsEmpty());
  ExpectStoreMatchesMemory(run);

  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; })) << "the retry never started";
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#2"));
  EXPECT_THAT(observer_.StatesOf("a"), ElementsAre("running", "retry_wait", "running"));
  EXPECT_EQ(StoredState(run, "a"), "running");
  EXPECT_EQ(Stored(run, "a").attempts, 2);
  EXPECT_EQ(Stored(run, "a").next_attempt_at, std::nullopt);
  ExpectStoreMatchesMemory(run);

  Fail("a", "-", 2);
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; }));
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#3"));
  Complete("a");
  EXPECT_EQ(RunStateOf(run), "success");
  EXPECT_THAT(AttemptOutcomes(run, "a"), ElementsAre("1:failed", "2:failed", "3:success"));
  EXPECT_EQ(Stored(run, "a").attempts, 3);
  EXPECT_EQ(Stored(run, "a").exit_code, 0);
  // Each attempt logs to its own file.
  auto attempts = Attempts(run, "a");
  EXPECT_EQ(attempts[0].log_path, engine_->LogPath(run, Stored(run, "a"), 1));
  EXPECT_EQ(attempts[2].log_path, engine_->LogPath(run, Stored(run, "a"), 3));
  EXPECT_NE(attempts[0].log_path, attempts[2].log_path);
}

TEST_F(EngineTest, RetryDelayGrowsExponentiallyUpToMaxDelay) {
  auto dag = AddDag(R"yaml(dag: backoff
tasks:
  - id: a
    command: "true"
    retry: {retries: 3, delay: 10ms, backoff: exponential, factor: 3, max_delay: 50ms}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  const SysMillis t0 = clock_.Now();  // the fake clock stands still
  for (int n = 1; n <= 3; ++n) {
    Fail("a");
    ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; })) << "retry " << n;
  }
  Fail("a");
  EXPECT_THAT(observer_.retry_at, ElementsAre(t0 + 10ms, t0 + 30ms, t0 + 50ms));
  EXPECT_EQ(StoredState(run, "a"), "failed");
  EXPECT_EQ(Stored(run, "a").attempts, 4);
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_THAT(DeadLetters("backoff"), ElementsAre("a[-]"));
}

TEST_F(EngineTest, RetryWaitsForItsDelayBeforeStarting) {
  auto dag = AddDag(R"yaml(dag: patient
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 1h, backoff: fixed}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  RunFor(50ms);
  EXPECT_EQ(runner_->started(), 1u);
  EXPECT_EQ(StoredState(run, "a"), "retry_wait");
  EXPECT_EQ(Stored(run, "a").next_attempt_at, clock_.Now() + 1h);
  EXPECT_EQ(Stored(run, "a").attempts, 1);
  EXPECT_EQ(RunStateOf(run), "running");
  EXPECT_THAT(DeadLetters("patient"), IsEmpty());
  ExpectStoreMatchesMemory(run);
}

TEST_F(EngineTest, RetriesOnlyListedExitCodes) {
  auto dag = AddDag(R"yaml(dag: codes
tasks:
  - id: a
    command: "true"
    retry: {retries: 3, delay: 10ms, retry_on_exit_codes: [75]}
  - id: b
    command: "true"
    retry: {retries: 3, delay: 10ms, retry_on_exit_codes: [75]}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a", "-", 75);
  Fail("b", "-", 1);
  EXPECT_THAT(observer_.StatesOf("a"), ::testing::Contains("retry_wait"));
  EXPECT_EQ(StoredState(run, "b"), "failed");
  EXPECT_THAT(observer_.StatesOf("b"), ElementsAre("running", "failed"));
  EXPECT_THAT(DeadLetters("codes"), ElementsAre("b[-]"));
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; }));
  Fail("a", "-", 2);
  EXPECT_EQ(StoredState(run, "a"), "failed");
  EXPECT_EQ(Stored(run, "a").attempts, 2);
  EXPECT_EQ(Stored(run, "a").exit_code, 2);
  EXPECT_EQ(RunStateOf(run), "failed");
}

TEST_F(EngineTest, TimeoutsCountAsFailedAttempts) {
  auto dag = AddDag(R"yaml(dag: slow
tasks:
  - id: a
    command: "sleep 100"
    timeout: 1s
    retry: {retries: 1, delay: 10ms}
  - id: listed
    command: "sleep 100"
    timeout: 1s
    retry: {retries: 1, delay: 10ms, retry_on_exit_codes: [1]}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_EQ(runner_->Find("a")->spec.timeout, Millis(1s));
  Complete("a", "-", AttemptEnd::kTimeout);
  Complete("listed", "-", AttemptEnd::kTimeout);
  EXPECT_THAT(observer_.StatesOf("a"), ::testing::Contains("retry_wait"));
  // A timeout has no exit code, so a retry_on_exit_codes list does not match it.
  EXPECT_EQ(StoredState(run, "listed"), "failed");
  EXPECT_THAT(AttemptOutcomes(run, "listed"), ElementsAre("1:timeout"));
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; }));
  Complete("a", "-", AttemptEnd::kTimeout);
  EXPECT_EQ(StoredState(run, "a"), "failed");
  EXPECT_THAT(AttemptOutcomes(run, "a"), ElementsAre("1:timeout", "2:timeout"));
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_THAT(DeadLetters("slow"), UnorderedElementsAre("a[-]", "listed[-]"));
}

TEST_F(EngineTest, SpawnErrorsAreFailedAttemptsWithTheirMessage) {
  auto dag = AddDag(R"yaml(dag: spawn
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Complete("a", "-", AttemptEnd::kSpawnError);
  EXPECT_EQ(StoredState(run, "a"), "failed");
  auto attempts = Attempts(run, "a");
  ASSERT_EQ(attempts.size(), 1u);
  EXPECT_EQ(ToString(attempts[0].outcome), "failed");
  EXPECT_EQ(attempts[0].error, "cannot open log file: Permission denied");
}

TEST_F(EngineTest, AfterTheLastAttemptTheInstanceIsADeadLetterAndDownstreamUpstreamFailed) {
  auto dag = AddDag(R"yaml(dag: deadly
tasks:
  - id: a
    command: "true"
    partitions: {values: [us, eu]}
  - id: b
    command: "true"
    depends_on: [a]
  - id: alert
    command: "true"
    depends_on: [a]
    trigger_rule: one_failed
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a", "us");
  EXPECT_THAT(DeadLetters("deadly"), ElementsAre("a[us]"));
  EXPECT_EQ(StoredState(run, "b"), "upstream_failed(upstream a[us] failed)");
  EXPECT_THAT(runner_->Running(), ElementsAre("a[eu]#1", "alert[-]#1"));
  ExpectStoreMatchesMemory(run);
  Complete("a", "eu");
  Complete("alert");
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_THAT(DeadLetters("deadly"), ElementsAre("a[us]"));
  auto all = store_->ListDeadLetters(std::nullopt);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

// --- idempotency --------------------------------------------------------------------------

constexpr char kIdemYaml[] = R"yaml(dag: idem
tasks:
  - id: load
    command: "true"
    idempotency_key: "{{ dag }}/load/static"
  - id: report
    command: "true"
    depends_on: [load]
)yaml";

TEST_F(EngineTest, InstancesWhoseKeyAlreadySucceededAreSkippedAndCountAsSuccess) {
  auto dag = AddDag(kIdemYaml);
  NewEngine();
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  Complete("load");
  Complete("report");
  EXPECT_EQ(RunStateOf(r1), "success");

  // Another day: load's key is the same and is skipped, report's differs and runs.
  std::string r2 = Trigger(dag, "2026-03-02T00:00:00Z");
  EXPECT_THAT(StoredStates(r2), ElementsAre("load[-]=skipped(already_succeeded)", "report[-]=running"));
  EXPECT_TRUE(Stored(r2, "load").ended_at.has_value());
  EXPECT_THAT(runner_->Running(), ElementsAre("report[-]#1"));
  ExpectStoreMatchesMemory(r2);
  Complete("report");
  EXPECT_EQ(RunStateOf(r2), "success");
  EXPECT_EQ(runner_->started(), 3u);
}

TEST_F(EngineTest, ASecondRunWithTheSameKeysRunsNothing) {
  auto dag = AddDag(kIdemYaml);
  NewEngine();
  std::string r1 = Trigger(dag);
  Complete("load");
  Complete("report");
  RunRequest again = Request(dag);
  again.run_key = "idem-again";
  std::string r2 = Trigger(again);
  EXPECT_THAT(StoredStates(r2),
              ElementsAre("load[-]=skipped(already_succeeded)", "report[-]=skipped(already_succeeded)"));
  EXPECT_EQ(RunStateOf(r2), "success");
  EXPECT_EQ(runner_->started(), 2u);
  EXPECT_EQ(engine_->FindActiveRun(r2), nullptr);
}

TEST_F(EngineTest, ForceRunsInstancesWhoseKeysAlreadySucceeded) {
  auto dag = AddDag(kIdemYaml);
  NewEngine();
  Trigger(dag);
  Complete("load");
  Complete("report");
  RunRequest forced = Request(dag);
  forced.run_key = "idem-forced";
  forced.force = true;
  std::string r2 = Trigger(forced);
  EXPECT_TRUE(StoredRun(r2).force);
  EXPECT_THAT(runner_->Running(), ElementsAre("load[-]#1"));
  Complete("load");
  Complete("report");
  EXPECT_EQ(RunStateOf(r2), "success");
  EXPECT_THAT(StoredStates(r2), ElementsAre("load[-]=success", "report[-]=success"));
}

TEST_F(EngineTest, FailedInstancesDoNotRecordTheirKey) {
  auto dag = AddDag(kIdemYaml);
  NewEngine();
  std::string r1 = Trigger(dag);
  Fail("load");
  EXPECT_EQ(RunStateOf(r1), "failed");
  auto done = store_->KeySucceeded("idem", "idem/load/static");
  ASSERT_TRUE(done.ok());
  EXPECT_FALSE(*done);
  RunRequest again = Request(dag);
  again.run_key = "idem-again";
  Trigger(again);
  EXPECT_THAT(runner_->Running(), ElementsAre("load[-]#1"));
}

TEST_F(EngineTest, CreateRunWithAnExistingKeyReturnsTheExistingRun) {
  auto dag = AddDag(kIdemYaml);
  NewEngine();
  auto first = engine_->CreateRun(Request(dag));
  ASSERT_TRUE(first.ok());
  EXPECT_TRUE(first->created);
  EXPECT_EQ(first->run.run_key, "idem@2026-03-29T00:00:00+00:00");
  EXPECT_EQ(first->run.state, RunState::kQueued);
  Drain();
  auto second = engine_->CreateRun(Request(dag));
  ASSERT_TRUE(second.ok());
  EXPECT_FALSE(second->created);
  EXPECT_EQ(second->run.run_id, first->run.run_id);
  EXPECT_EQ(second->run.state, RunState::kRunning);

  RunRequest keyed = Request(dag, "2026-03-30T00:00:00Z");
  keyed.run_key = "custom";
  auto third = engine_->CreateRun(keyed);
  ASSERT_TRUE(third.ok() && third->created);
  auto fourth = engine_->CreateRun(keyed);
  ASSERT_TRUE(fourth.ok());
  EXPECT_FALSE(fourth->created);
  EXPECT_EQ(fourth->run.run_id, third->run.run_id);
  Drain();
  store::RunFilter filter;
  filter.dag = "idem";
  auto runs = store_->ListRuns(filter);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), 2u);
  EXPECT_EQ(runner_->started(), 1u);  // the second run waits for max_active_runs
}

// --- cancel -------------------------------------------------------------------------------

TEST_F(EngineTest, CancelRunCancelsQueuedWorkAndKillsRunningAttempts) {
  auto dag = AddDag(R"yaml(dag: cancel_me
max_active_tasks: 2
tasks:
  - id: r
    command: "true"
    priority: 10
    retry: {retries: 1, delay: 1h, backoff: fixed}
  - id: a
    command: "true"
    partitions: {range: [0, 3]}
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_THAT(runner_->Running(), ElementsAre("r[-]#1", "a[0]#1"));
  Fail("r");
  EXPECT_THAT(runner_->Running(), ElementsAre("a[0]#1", "a[1]#1"));
  EXPECT_THAT(StoredStates(run), ElementsAre("r[-]=retry_wait", "a[0]=running", "a[1]=running", "a[2]=queued",
                                             "b[-]=pending"));

  ASSERT_TRUE(engine_->CancelRun(run).ok());
  // Committed before CancelRun returned.
  EXPECT_EQ(RunStateOf(run), "cancelled");
  std::vector<uint64_t> killed = runner_->cancelled();
  EXPECT_THAT(killed, UnorderedElementsAre(runner_->Find("a", "0")->spec.attempt_id,
                                           runner_->Find("a", "1")->spec.attempt_id));
  Drain();
  EXPECT_THAT(StoredStates(run), ElementsAre("r[-]=cancelled", "a[0]=running", "a[1]=running", "a[2]=cancelled",
                                             "b[-]=cancelled"));
  ExpectStoreMatchesMemory(run);
  EXPECT_EQ(runner_->started(), 3u);

  // The killed attempt reports cancelled; one that finished just before the kill keeps
  // its success.
  Complete("a", "0", AttemptEnd::kCancelled);
  EXPECT_EQ(StoredState(run, "a", "0"), "cancelled");
  EXPECT_NE(engine_->FindActiveRun(run), nullptr);
  Complete("a", "1", AttemptEnd::kSuccess);
  EXPECT_EQ(StoredState(run, "a", "1"), "success");
  EXPECT_EQ(RunStateOf(run), "cancelled");
  EXPECT_TRUE(StoredRun(run).ended_at.has_value());
  EXPECT_EQ(engine_->FindActiveRun(run), nullptr);
  EXPECT_THAT(AttemptOutcomes(run, "a", "0"), ElementsAre("1:cancelled"));
  // The retry timer of r is gone with the run.
  RunFor(30ms);
  EXPECT_EQ(runner_->started(), 3u);
}

TEST_F(EngineTest, CancelRunWithNothingRunningEndsAtOnce) {
  auto dag = AddDag(R"yaml(dag: idle
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 1h, backoff: fixed}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  EXPECT_THAT(runner_->cancelled(), IsEmpty());
  Drain();
  EXPECT_EQ(RunStateOf(run), "cancelled");
  EXPECT_EQ(StoredState(run, "a"), "cancelled");
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);
}

TEST_F(EngineTest, CancelRunOfAQueuedRunKeepsItFromStarting) {
  auto dag = AddDag(R"yaml(dag: serial
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  std::string r2 = Trigger(dag, "2026-03-02T00:00:00Z");
  ASSERT_EQ(RunStateOf(r2), "queued");
  ASSERT_TRUE(engine_->CancelRun(r2).ok());
  EXPECT_EQ(RunStateOf(r2), "cancelled");
  EXPECT_TRUE(StoredRun(r2).ended_at.has_value());
  Complete("a");
  EXPECT_EQ(RunStateOf(r1), "success");
  EXPECT_EQ(RunStateOf(r2), "cancelled");
  EXPECT_EQ(runner_->started(), 1u);
}

TEST_F(EngineTest, CancelRunErrorsNameTheRun) {
  auto dag = AddDag(R"yaml(dag: done
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  Status missing = engine_->CancelRun("nope");
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.message(), "run 'nope' not found");
  std::string run = Trigger(dag);
  Complete("a");
  Status finished = engine_->CancelRun(run);
  EXPECT_EQ(finished.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(finished.message(), "run '" + run + "' is already success");
}

TEST_F(EngineTest, CancellingTwiceWhileAttemptsDrainIsFine) {
  auto dag = AddDag(R"yaml(dag: twice
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  EXPECT_TRUE(engine_->CancelRun(run).ok());
  EXPECT_EQ(runner_->cancelled().size(), 1u);
  Complete("a", "-", AttemptEnd::kCancelled);
  EXPECT_EQ(RunStateOf(run), "cancelled");
}

TEST_F(EngineTest, ACancelledRunKeepsItsMaxActiveRunsSlotUntilItsAttemptsEnd) {
  // max_active_runs: 1 promises that two runs never execute at once; a cancelled run's
  // processes are still being killed (up to kill_grace) until their results arrive.
  auto dag = AddDag(R"yaml(dag: exclusive
max_active_runs: 1
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  std::string r2 = Trigger(dag, "2026-03-02T00:00:00Z");
  ASSERT_EQ(RunStateOf(r2), "queued");
  ASSERT_TRUE(engine_->CancelRun(r1).ok());
  Drain();
  EXPECT_EQ(RunStateOf(r2), "queued") << "the next run started while the cancelled one still ran";
  EXPECT_EQ(runner_->InFlight(), 1);
  Complete("a", "-", AttemptEnd::kCancelled);
  EXPECT_EQ(RunStateOf(r1), "cancelled");
  EXPECT_EQ(RunStateOf(r2), "running");
  ASSERT_EQ(runner_->InFlight(), 1);
  EXPECT_EQ(runner_->Find("a")->run_id(), r2);
}

TEST_F(EngineTest, RetryRunOfARunBeingCancelledIsRefused) {
  auto dag = AddDag(R"yaml(dag: busy
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  auto r = engine_->RetryRun(run, std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "run '" + run + "' is being cancelled");
}

// --- retry run ----------------------------------------------------------------------------

constexpr char kRetryRunYaml[] = R"yaml(dag: rerun
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
  - id: c
    command: "true"
)yaml";

TEST_F(EngineTest, RetryRunResetsFailedInstancesOnlyAndTheRunThenSucceeds) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  Complete("c");
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=failed", "b[-]=upstream_failed(upstream a failed)", "c[-]=success"));
  EXPECT_THAT(DeadLetters("rerun"), ElementsAre("a[-]"));
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);

  auto reset = engine_->RetryRun(run, std::nullopt, std::nullopt);
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  EXPECT_EQ(*reset, 2);
  EXPECT_EQ(RunStateOf(run), "running");
  EXPECT_FALSE(StoredRun(run).ended_at.has_value());
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=pending", "b[-]=pending", "c[-]=success"));
  EXPECT_THAT(DeadLetters("rerun"), IsEmpty());
  Drain();
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#2"));
  ExpectStoreMatchesMemory(run);
  Complete("a");
  EXPECT_THAT(runner_->Running(), ElementsAre("b[-]#1"));
  Complete("b");
  EXPECT_EQ(RunStateOf(run), "success");
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=success", "b[-]=success", "c[-]=success"));
  // c was not run again.
  EXPECT_THAT(runner_->Started(), ElementsAre("a[-]#1", "c[-]#1", "a[-]#2", "b[-]#1"));
}

TEST_F(EngineTest, RetryRunWhileTheRunIsStillActive) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  ASSERT_THAT(runner_->Running(), ElementsAre("c[-]#1"));
  auto reset = engine_->RetryRun(run, std::nullopt, std::nullopt);
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  EXPECT_EQ(*reset, 2);
  Drain();
  EXPECT_THAT(runner_->Running(), ElementsAre("c[-]#1", "a[-]#2"));
  ExpectStoreMatchesMemory(run);
  Complete("c");
  Complete("a");
  Complete("b");
  EXPECT_EQ(RunStateOf(run), "success");
}

TEST_F(EngineTest, RetryRunFilteredByTaskAndPartition) {
  auto dag = AddDag(R"yaml(dag: rerun_parts
tasks:
  - id: a
    command: "true"
    partitions: {values: [us, eu]}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a", "us");
  Fail("a", "eu");
  auto reset = engine_->RetryRun(run, std::string("a"), std::string("eu"));
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  EXPECT_EQ(*reset, 1);
  Drain();
  EXPECT_THAT(runner_->Running(), ElementsAre("a[eu]#2"));
  EXPECT_EQ(StoredState(run, "a", "us"), "failed");
  Complete("a", "eu");
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_THAT(DeadLetters("rerun_parts"), ElementsAre("a[us]"));
}

TEST_F(EngineTest, RetryRunWithNothingToRetryNamesWhatWasAsked) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  Complete("c");
  auto by_task = engine_->RetryRun(run, std::string("c"), std::nullopt);
  ASSERT_FALSE(by_task.ok());
  EXPECT_EQ(by_task.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(by_task.status().message(), "run '" + run + "' has no failed or upstream_failed instances of task 'c'");
  auto by_part = engine_->RetryRun(run, std::string("a"), std::string("zz"));
  ASSERT_FALSE(by_part.ok());
  EXPECT_EQ(by_part.status().message(),
            "run '" + run + "' has no failed or upstream_failed instances of task 'a' in partition 'zz'");
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);

  auto missing = engine_->RetryRun("nope", std::nullopt, std::nullopt);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "run 'nope' not found");

  ASSERT_TRUE(engine_->RetryRun(run, std::nullopt, std::nullopt).ok());
  Drain();
  Complete("a");
  Complete("b");
  auto clean = engine_->RetryRun(run, std::nullopt, std::nullopt);
  ASSERT_FALSE(clean.ok());
  EXPECT_EQ(clean.status().message(), "run '" + run + "' has no failed or upstream_failed instances");
}

TEST_F(EngineTest, RetryRunWaitsForAFreeRunSlotUnderMaxActiveRuns) {
  // max_active_runs: 1 promises the job never runs twice at once, retries included.
  auto dag = AddDag(R"yaml(dag: single
max_active_runs: 1
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string first = Trigger(dag, "2026-03-01T00:00:00Z");
  Fail("a");
  ASSERT_EQ(RunStateOf(first), "failed");
  std::string second = Trigger(dag, "2026-03-02T00:00:00Z");
  ASSERT_THAT(runner_->Running(), ElementsAre("a[-]#1"));  // the second run holds the slot

  auto reset = engine_->RetryRun(first, std::nullopt, std::nullopt);
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  EXPECT_EQ(*reset, 1);
  Drain();
  EXPECT_EQ(RunStateOf(first), "queued");
  EXPECT_THAT(StoredStates(first), ElementsAre("a[-]=pending"));
  EXPECT_EQ(runner_->InFlight(), 1u) << "the retry started while the other run held the only slot";
  EXPECT_THAT(DeadLetters("single"), IsEmpty());

  Complete("a");  // the second run ends and frees the slot
  EXPECT_EQ(RunStateOf(second), "success");
  EXPECT_EQ(RunStateOf(first), "running");
  ASSERT_EQ(runner_->InFlight(), 1u);
  EXPECT_EQ(Attempts(first, "a").size(), 2u);
  Complete("a");
  EXPECT_EQ(RunStateOf(first), "success");
  ExpectStoreMatchesMemory(first);
}

TEST_F(EngineTest, CancellingARetryQueuedBehindMaxActiveRunsCancelsItsInstances) {
  auto dag = AddDag(R"yaml(dag: single_cancel
max_active_runs: 1
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string first = Trigger(dag, "2026-03-01T00:00:00Z");
  Fail("a");
  Trigger(dag, "2026-03-02T00:00:00Z");
  ASSERT_TRUE(engine_->RetryRun(first, std::nullopt, std::nullopt).ok());
  ASSERT_EQ(RunStateOf(first), "queued");
  ASSERT_TRUE(engine_->CancelRun(first).ok());
  EXPECT_EQ(RunStateOf(first), "cancelled");
  EXPECT_THAT(StoredStates(first), ElementsAre("a[-]=cancelled"));
  Complete("a");
  EXPECT_EQ(RunStateOf(first), "cancelled") << "a cancelled retry must not resume";
  EXPECT_EQ(runner_->InFlight(), 0u);
}

TEST_F(EngineTest, RetryRunOfAQueuedRunIsRefused) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  Trigger(dag, "2026-03-01T00:00:00Z");
  std::string queued = Trigger(dag, "2026-03-02T00:00:00Z");
  auto r = engine_->RetryRun(queued, std::nullopt, std::nullopt);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.status().message(), "run '" + queued + "' has not started yet: nothing to retry");
}

TEST_F(EngineTest, RetryRunGivesTheInstanceItsRetryPolicyAgain) {
  // After `batchctl retry` the instance starts over under its retry policy (as Airflow's
  // "clear" does): a transient failure of the first re-run attempt is retried.
  auto dag = AddDag(R"yaml(dag: rerun_policy
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 10ms}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; }));
  Fail("a");
  ASSERT_EQ(StoredState(run, "a"), "failed");
  ASSERT_TRUE(engine_->RetryRun(run, std::nullopt, std::nullopt).ok());
  Drain();
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#3"));
  observer_.transitions.clear();
  Fail("a");
  EXPECT_THAT(observer_.StatesOf("a"), ElementsAre("retry_wait")) << "the re-run got no retries of its own";
}

// --- recovery -----------------------------------------------------------------------------

TEST_F(EngineTest, RecoverMarksInFlightAttemptsLostAndRetriesOrFailsThem) {
  auto dag = AddDag(R"yaml(dag: crashy
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 10ms, retry_on_exit_codes: [75]}
  - id: b
    command: "true"
  - id: c
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_THAT(runner_->Running(), ElementsAre("a[-]#1", "b[-]#1"));
  ExpectStoreMatchesMemory(run);

  clock_.Advance(5s);
  Restart();
  // The attempts are lost in the store, ended at the recovery time. (a's 10ms retry may
  // have started already: its first attempt is what counts here.)
  auto a_attempts = Attempts(run, "a");
  ASSERT_GE(a_attempts.size(), 1u);
  EXPECT_EQ(ToString(a_attempts[0].outcome), "lost");
  EXPECT_EQ(a_attempts[0].ended_at, clock_.Now());
  EXPECT_EQ(a_attempts[0].error, "the daemon stopped while the attempt ran");
  EXPECT_THAT(AttemptOutcomes(run, "b"), ElementsAre("1:lost"));
  // a retries (lost attempts ignore the exit code list; checked below by its second
  // attempt: the 10ms timer armed during Recover may already have fired); b had no
  // retries left.
  EXPECT_EQ(StoredState(run, "b"), "failed");
  EXPECT_THAT(DeadLetters("crashy"), ElementsAre("b[-]"));
  EXPECT_EQ(RunStateOf(run), "running");
  ExpectStoreMatchesMemory(run);

  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; })) << "the lost instance was not retried";
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#2"));
  ExpectStoreMatchesMemory(run);
  Complete("a");
  Complete("c");
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_THAT(AttemptOutcomes(run, "a"), ElementsAre("1:lost", "2:success"));
}

TEST_F(EngineTest, ResultsForTheOldEngineAfterARestartAreIgnored) {
  auto dag = AddDag(R"yaml(dag: ghost
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 1h, backoff: fixed}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Restart();
  EXPECT_EQ(StoredState(run, "a"), "retry_wait");
  // The process of the previous daemon reports late: nobody listens.
  FakeRunner& old = *old_runners_.back();
  old.Finish(*old.Find("a"), AttemptEnd::kSuccess, 0);
  Drain();
  EXPECT_EQ(StoredState(run, "a"), "retry_wait");
  EXPECT_THAT(AttemptOutcomes(run, "a"), ElementsAre("1:lost"));
  ExpectStoreMatchesMemory(run);
}

TEST_F(EngineTest, RecoverFailsARunWhoseDagVersionNoLongerLoads) {
  auto dag = AddDag(R"yaml(dag: vanished
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_THAT(runner_->Running(), ElementsAre("a[-]#1"));
  dags_.clear();  // e.g. a newer batchd refuses what an older one accepted
  Restart();
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_EQ(StoredRun(run).error,
            "cannot load DAG version " + dag->content_hash + ": no DAG vanished version " + dag->content_hash);
  EXPECT_TRUE(StoredRun(run).ended_at.has_value());
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=cancelled(dag_unavailable)", "b[-]=cancelled(dag_unavailable)"));
  EXPECT_THAT(AttemptOutcomes(run, "a"), ElementsAre("1:lost"));
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);
  EXPECT_EQ(runner_->started(), 0u);
}

TEST_F(EngineTest, RecoverRearmsRetryTimersFromTheStoredDeadline) {
  auto dag = AddDag(R"yaml(dag: sleepy
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 1h, backoff: fixed}
  - id: b
    command: "true"
    retry: {retries: 1, delay: 1h, backoff: fixed}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  Fail("b");
  const auto deadline = Stored(run, "a").next_attempt_at;
  ASSERT_TRUE(deadline.has_value());

  // Restarted half-way through the delay: still waiting.
  Restart(30min);
  RunFor(30ms);
  EXPECT_EQ(runner_->started(), 0u);
  EXPECT_EQ(StoredState(run, "a"), "retry_wait");
  EXPECT_EQ(Stored(run, "a").next_attempt_at, deadline);

  // Restarted after the deadline: the retries start right away.
  Restart(31min);
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 2; }, 1s));
  EXPECT_THAT(runner_->Running(), UnorderedElementsAre("a[-]#2", "b[-]#2"));
  ExpectStoreMatchesMemory(run);
}

TEST_F(EngineTest, RecoverResumesQueuedWorkAndNeverRerunsSuccesses) {
  auto dag = AddDag(R"yaml(dag: resume
max_active_tasks: 1
tasks:
  - id: a
    command: "true"
    partitions: {values: [x, y, z]}
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  Complete("a", "x");
  ASSERT_THAT(runner_->Running(), ElementsAre("a[y]#1"));
  ASSERT_EQ(StoredState(run, "a", "z"), "queued");
  Restart();
  // a[y] was lost without retries left: failed, so b cannot run; a[z] still runs, a[x]
  // (success) does not run again.
  EXPECT_EQ(StoredState(run, "a", "x"), "success");
  EXPECT_EQ(StoredState(run, "a", "y"), "failed");
  EXPECT_EQ(StoredState(run, "b"), "upstream_failed(upstream a[y] failed)");
  EXPECT_THAT(runner_->Started(), ElementsAre("a[z]#1"));
  ExpectStoreMatchesMemory(run);
  Complete("a", "z");
  EXPECT_EQ(RunStateOf(run), "failed");
}

TEST_F(EngineTest, RecoverStartsQueuedRunsWhenAllowed) {
  auto dag = AddDag(R"yaml(dag: later
tasks:
  - id: a
    command: "true"
)yaml");
  NewEngine();
  std::string r1 = Trigger(dag, "2026-03-01T00:00:00Z");
  Complete("a");
  auto created = engine_->CreateRun(Request(dag, "2026-03-02T00:00:00Z"));
  ASSERT_TRUE(created.ok());
  // Killed before the loop ran: the run is only in the store, queued.
  std::string r2 = created->run.run_id;
  Restart();
  EXPECT_EQ(RunStateOf(r2), "running");
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#1"));
  EXPECT_EQ(runner_->attempt(0).run_id(), r2);
}

TEST_F(EngineTest, RecoverFinishesACancelledRunWhoseAttemptWasLost) {
  auto dag = AddDag(R"yaml(dag: cancel_crash
tasks:
  - id: a
    command: "true"
    retry: {retries: 3, delay: 10ms}
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  // Crash before the killed attempt reported back (and before the next Pump).
  Restart();
  EXPECT_EQ(RunStateOf(run), "cancelled");
  EXPECT_EQ(StoredState(run, "a"), "cancelled");
  EXPECT_EQ(StoredState(run, "b"), "cancelled");
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);
  RunFor(30ms);
  EXPECT_EQ(runner_->started(), 0u);
}

TEST_F(EngineTest, ShutdownCancelledAttemptsAreQueuedAgainAndRunAfterRestart) {
  auto dag = AddDag(R"yaml(dag: shutdown
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  engine_->StopDispatching();
  EXPECT_TRUE(engine_->HasRunningAttempts());
  Complete("a", "-", AttemptEnd::kCancelled);
  EXPECT_FALSE(engine_->HasRunningAttempts());
  EXPECT_EQ(StoredState(run, "a"), "queued");
  EXPECT_EQ(RunStateOf(run), "running");
  EXPECT_EQ(runner_->started(), 1u);
  ExpectStoreMatchesMemory(run);

  Restart();
  EXPECT_THAT(runner_->Running(), ElementsAre("a[-]#2"));
  Complete("a");
  Complete("b");
  EXPECT_EQ(RunStateOf(run), "success");
}

// --- what the runner is given -------------------------------------------------------------

TEST_F(EngineTest, AttemptEnvironmentHasBatchdVariablesAndTheDagEnv) {
  auto dag = AddDag(R"yaml(dag: envdag
timezone: Europe/Berlin
env: {LANG: C.UTF-8, SHARED: from_dag}
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us]}
    env: {SHARED: from_task}
)yaml");
  EngineOptions options;
  options.base_env = {"PATH=/usr/bin:/bin", "HOME=/var/lib/batchd", "LANG=POSIX", "BATCHD_DAG=spoofed"};
  NewEngine(options);
  RunRequest req = Request(dag, "2026-03-28T23:30:00Z");
  std::string run = Trigger(req);
  ASSERT_EQ(runner_->started(), 1u);
  EXPECT_THAT(runner_->attempt(0).spec.env,
              UnorderedElementsAre("BATCHD_DAG=envdag", "BATCHD_RUN_ID=" + run, "BATCHD_TASK=extract",
                                   "BATCHD_PARTITION=us", "BATCHD_ATTEMPT=1",
                                   "BATCHD_LOGICAL_DATE=2026-03-29T00:30:00+01:00",
                                   "BATCHD_IDEMPOTENCY_KEY=envdag/extract/us/2026-03-29T00:30:00+01:00",
                                   "PATH=/usr/bin:/bin", "HOME=/var/lib/batchd", "LANG=C.UTF-8", "SHARED=from_task"));
  EXPECT_EQ(Stored(run, "extract", "us").idempotency_key, "envdag/extract/us/2026-03-29T00:30:00+01:00");
}

TEST_F(EngineTest, TasksWithoutEnvOfTheirOwnGetTheDagEnvAndOthersTheirOwnOnTop) {
  auto dag = AddDag(R"yaml(dag: envshare
env: {SHARED: from_dag}
tasks:
  - id: plain
    command: "true"
  - id: own
    command: "true"
    env: {SHARED: from_task, EXTRA: "1"}
)yaml");
  EngineOptions options;
  options.base_env = {"PATH=/usr/bin:/bin", "SHARED=from_base"};
  NewEngine(options);
  std::string run = Trigger(Request(dag, "2026-03-28T23:30:00Z"));
  ASSERT_EQ(runner_->started(), 2u);
  std::map<std::string, std::vector<std::string>> env_of;
  for (size_t i = 0; i < 2; ++i) {
    const auto& env = runner_->attempt(i).spec.env;
    std::string task;
    for (const auto& kv : env)
      if (kv.rfind("BATCHD_TASK=", 0) == 0) task = kv.substr(12);
    env_of[task] = env;
  }
  ASSERT_EQ(env_of.size(), 2u);
  EXPECT_THAT(env_of["plain"], Contains("SHARED=from_dag"));
  EXPECT_THAT(env_of["plain"], Not(Contains("EXTRA=1")));
  EXPECT_THAT(env_of["own"], Contains("SHARED=from_task"));
  EXPECT_THAT(env_of["own"], Contains("EXTRA=1"));
  EXPECT_THAT(env_of["own"], Contains("PATH=/usr/bin:/bin"));
  EXPECT_THAT(env_of["plain"], Contains("PATH=/usr/bin:/bin"));
}

TEST_F(EngineTest, AttemptEnvCarriesTheAttemptNumberOfRetries) {
  auto dag = AddDag(R"yaml(dag: envretry
tasks:
  - id: a
    command: "echo {{ attempt }}"
    retry: {retries: 1, delay: 10ms}
)yaml");
  NewEngine();
  Trigger(dag);
  Fail("a");
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; }));
  EXPECT_EQ(runner_->attempt(1).Env("BATCHD_ATTEMPT"), "2");
  EXPECT_EQ(runner_->attempt(1).spec.command, "echo '2'");  // values are quoted for the shell
}

TEST_F(EngineTest, RenderedCommandSubstitutesEveryVariable) {
  auto dag = AddDag(R"yaml(dag: render
timezone: Europe/Berlin
params: {region: eu, limit: "10"}
tasks:
  - id: extract
    command: "run --ds {{ ds }} --p {{partition}} --r {{ params.region }} --l {{ params.limit }} --a {{ attempt }} --t {{ task }} --d {{ dag }} --id {{ run_id }} --ld {{ logical_date }} --ts {{ ts }} --s {{ data_interval_start }} --e {{ data_interval_end }}"
    partitions: {values: [us]}
    working_dir: /tmp
    timeout: 5s
    kill_grace: 2s
)yaml");
  NewEngine();
  RunRequest req = Request(dag, "2026-03-28T23:30:00Z");
  req.interval_start = At("2026-03-27T23:30:00Z");
  req.params = {{"region", "apac"}};
  std::string run = Trigger(req);
  ASSERT_EQ(runner_->started(), 1u);
  const AttemptSpec& spec = runner_->attempt(0).spec;
  EXPECT_EQ(spec.command,
            "run --ds '2026-03-29' --p 'us' --r 'apac' --l '10' --a '1' --t 'extract' --d 'render' --id '" + run +
                "' --ld '2026-03-29T00:30:00+01:00' --ts '2026-03-28T23:30:00Z' --s '2026-03-28T00:30:00+01:00'"
                " --e '2026-03-29T00:30:00+01:00'");
  EXPECT_EQ(spec.working_dir, "/tmp");
  EXPECT_EQ(spec.timeout, Millis(5s));
  EXPECT_EQ(spec.kill_grace, Millis(2s));
  EXPECT_EQ(spec.log_path, engine_->LogPath(run, Stored(run, "extract", "us"), 1));
  // Shards of Engine::kLogShardInstances instances, by instance id.
  EXPECT_EQ(spec.log_path, dir_ + "/logs/" + run + "/" + std::to_string(Stored(run, "extract", "us").id / 1000) +
                               "/extract@us.1.log");
  EXPECT_TRUE(fs::is_directory(fs::path(spec.log_path).parent_path()));
  EXPECT_EQ(spec.attempt_id, static_cast<uint64_t>(Attempts(run, "extract", "us").at(0).id));
  EXPECT_EQ(StoredRun(run).params_json, R"({"region":"apac"})");
}

TEST_F(EngineTest, LogFileNamesEscapeUnsafePartitionNames) {
  auto dag = AddDag(R"yaml(dag: hostile
env: {PATH: /usr/bin:/bin}
tasks:
  - id: a
    command: "true"
    partitions: {command: "printf '../../etc\\n.hidden\\n'"}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_EQ(runner_->started(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    fs::path p(runner_->attempt(i).spec.log_path);
    // In the run's directory, in the instance's shard.
    EXPECT_EQ(p.parent_path().parent_path(), fs::path(dir_ + "/logs/" + run)) << p;
    EXPECT_EQ(p.parent_path().filename().string().find_first_not_of("0123456789"), std::string::npos) << p;
    EXPECT_TRUE(p.filename().string().starts_with("a@")) << p;
    EXPECT_EQ(p.filename().string().find('/'), std::string::npos);
  }
}

// --- partitions at run start --------------------------------------------------------------

TEST_F(EngineTest, PartitionsCommandRunsAtRunStartWithTheDagEnv) {
  auto dag = AddDag(R"yaml(dag: dynamic
env: {PARTS: "a b c"}
tasks:
  - id: t
    command: "true"
    partitions: {command: "for p in $PARTS; do echo $p; done"}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_THAT(StoredStates(run), ElementsAre("t[a]=running", "t[b]=running", "t[c]=running"));
}

TEST_F(EngineTest, PartitionsCommandSeesTheRunsParamsAsEnvironmentVariables) {
  auto dag = AddDag(R"yaml(dag: dynamic_params
params: {regions: "eu us", tier: gold}
tasks:
  - id: t
    command: "true"
    partitions: {command: "for p in $BATCHD_PARAM_REGIONS; do echo $p-$BATCHD_PARAM_TIER; done"}
)yaml");
  NewEngine();
  RunRequest req = Request(dag);
  req.params = {{"regions", "apac"}};  // a trigger-time override wins over the default
  std::string run = Trigger(req);
  EXPECT_THAT(StoredStates(run), ElementsAre("t[apac-gold]=running"));
}

TEST_F(EngineTest, TasksSharingAPartitionsCommandGetTheSamePartitions) {
  // `partitions: same` between two tasks is valid when they use the same command; the
  // run must then give both tasks the same partition set, even when the command's output
  // changes between invocations (a directory listing while files arrive). This command
  // prints p0 the first time it runs, p1 the second, ...
  const std::string counter = dir_ + "/counter";
  auto dag = AddDag(std::string(R"yaml(dag: shared_cmd
env: {COUNTER: ")yaml") + counter + R"yaml("}
tasks:
  - id: extract
    command: "true"
    partitions: {command: "n=$(cat \"$COUNTER\" 2>/dev/null || echo 0); echo $((n+1)) > \"$COUNTER\"; echo p$n"}
  - id: transform
    command: "true"
    partitions: {command: "n=$(cat \"$COUNTER\" 2>/dev/null || echo 0); echo $((n+1)) > \"$COUNTER\"; echo p$n"}
    depends_on:
      - task: extract
        partitions: same
)yaml");
  ASSERT_NE(dag, nullptr);
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_THAT(StoredStates(run), ElementsAre("extract[p0]=running", "transform[p0]=pending"));
  EXPECT_THAT(runner_->Running(), ElementsAre("extract[p0]#1"));
}

TEST_F(EngineTest, PartitionsCommandTemplateIsRenderedWithRunVariables) {
  // The loader accepts run variables (ds, logical_date, params...) in partitions.command;
  // they must be substituted before the command runs.
  auto dag = AddDag(R"yaml(dag: dyn_template
params: {prefix: eu}
tasks:
  - id: t
    command: "true"
    partitions: {command: "echo {{ params.prefix }}_{{ ds }}"}
)yaml");
  ASSERT_NE(dag, nullptr);
  NewEngine();
  std::string run = Trigger(dag, "2026-03-29T00:00:00Z");
  EXPECT_THAT(StoredStates(run), ElementsAre("t[eu_2026-03-29]=running"));
}

TEST_F(EngineTest, PartitionsCommandFailureFailsTheRunWithTheReason) {
  auto dag = AddDag(R"yaml(dag: broken_parts
tasks:
  - id: t
    command: "true"
    partitions: {command: "exit 3"}
)yaml");
  NewEngine();
  std::string run = Trigger(dag);
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_EQ(StoredRun(run).error, "task 't': partitions command failed with exit code 3");
  EXPECT_TRUE(StoredRun(run).ended_at.has_value());
  EXPECT_THAT(StoredInstances(run), IsEmpty());
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);
  EXPECT_EQ(runner_->started(), 0u);
}

TEST_F(EngineTest, ARunThatFailsAtStartDoesNotHoldUpTheNextQueuedRun) {
  // The first partitions command fails (and leaves a mark); the second succeeds. With
  // max_active_runs: 1 the second run must start as soon as the first has failed.
  const std::string mark = dir_ + "/mark";
  auto dag = AddDag(std::string(R"yaml(dag: start_fail
max_active_runs: 1
env: {MARK: ")yaml") + mark + R"yaml("}
tasks:
  - id: t
    command: "true"
    partitions: {command: "if [ -e \"$MARK\" ]; then echo ok; else : > \"$MARK\"; exit 1; fi"}
)yaml");
  ASSERT_NE(dag, nullptr);
  NewEngine();
  auto r1 = engine_->CreateRun(Request(dag, "2026-03-01T00:00:00Z"));
  auto r2 = engine_->CreateRun(Request(dag, "2026-03-02T00:00:00Z"));
  ASSERT_TRUE(r1.ok() && r2.ok());
  Drain();
  EXPECT_EQ(RunStateOf(r1->run.run_id), "failed");
  EXPECT_EQ(RunStateOf(r2->run.run_id), "running") << "the second run stayed queued after the first failed to start";
  EXPECT_THAT(runner_->Running(), ElementsAre("t[ok]#1"));
}

TEST_F(EngineTest, SlowPartitionsCommandDoesNotBlockTheLoopOrOtherRuns) {
  auto slow = AddDag(R"yaml(dag: slow_parts
tasks:
  - id: t
    command: "true"
    partitions: {command: "sleep 0.6; echo late"}
)yaml");
  auto quick = AddDag(R"yaml(dag: quick
tasks:
  - id: q
    command: "true"
)yaml");
  NewEngine();
  auto s = engine_->CreateRun(Request(slow, "2026-03-01T00:00:00Z"));
  auto q = engine_->CreateRun(Request(quick, "2026-03-01T00:00:00Z"));
  ASSERT_TRUE(s.ok() && q.ok());
  const auto t0 = std::chrono::steady_clock::now();
  // Not RunUntil: its Drain() waits for partitions commands, which is what is tested.
  while (runner_->InFlight() == 0 && std::chrono::steady_clock::now() - t0 < 400ms) {
    io_.restart();
    if (io_.poll() == 0) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(runner_->InFlight(), 1u) << "the quick run waited for the slow command";
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 300ms) << "the loop was blocked";
  EXPECT_THAT(runner_->Running(), ElementsAre("q[-]#1"));
  EXPECT_EQ(RunStateOf(s->run.run_id), "queued") << "still waiting for its partitions";
  EXPECT_EQ(engine_->StartingRunCount(), 1u);
  Drain();  // waits for the command
  EXPECT_EQ(RunStateOf(s->run.run_id), "running");
  EXPECT_THAT(StoredStates(s->run.run_id), ElementsAre("t[late]=running"));
}

TEST_F(EngineTest, RunCancelledWhileItsPartitionsCommandRunsNeverStarts) {
  auto dag = AddDag(R"yaml(dag: cancel_parts
tasks:
  - id: t
    command: "true"
    partitions: {command: "sleep 0.3; echo p"}
)yaml");
  NewEngine();
  auto created = engine_->CreateRun(Request(dag, "2026-03-01T00:00:00Z"));
  ASSERT_TRUE(created.ok());
  const std::string run = created->run.run_id;
  io_.restart();
  io_.poll();  // the pump hands the command to the expander
  ASSERT_EQ(engine_->StartingRunCount(), 1u);
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  Drain();
  EXPECT_EQ(RunStateOf(run), "cancelled");
  EXPECT_THAT(StoredInstances(run), IsEmpty());
  EXPECT_EQ(runner_->started(), 0u);
  EXPECT_EQ(engine_->StartingRunCount(), 0u);
}

TEST_F(EngineTest, DestroyingTheEngineKillsARunningPartitionsCommand) {
  const std::string pid_file = dir_ + "/cmd.pid";
  auto dag = AddDag(std::string(R"yaml(dag: stuck_parts
env: {PID_FILE: ")yaml") + pid_file + R"yaml("}
tasks:
  - id: t
    command: "true"
    partitions: {command: "echo $$ > \"$PID_FILE\"; exec sleep 30"}
)yaml");
  ASSERT_NE(dag, nullptr);
  NewEngine();
  ASSERT_TRUE(engine_->CreateRun(Request(dag, "2026-03-01T00:00:00Z")).ok());
  io_.restart();
  io_.poll();
  pid_t pid = 0;
  for (int i = 0; i < 200 && pid == 0; ++i) {
    std::this_thread::sleep_for(10ms);
    std::ifstream in(pid_file);
    int read_pid = 0;
    if (in >> read_pid) pid = read_pid;
  }
  ASSERT_GT(pid, 0) << "the command never started";
  const auto t0 = std::chrono::steady_clock::now();
  engine_.reset();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s) << "the destructor waited for the command";
  std::this_thread::sleep_for(50ms);
  EXPECT_NE(::kill(pid, 0), 0) << "the partitions command outlived the engine";
}

// --- observers ----------------------------------------------------------------------------

TEST_F(EngineTest, ObserversHearOfCommittedChangesInOrder) {
  auto dag = AddDag(R"yaml(dag: observed
tasks:
  - id: a
    command: "true"
    retry: {retries: 1, delay: 10ms}
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  RecordingObserver observer([this]() -> store::Store& { return *store_; });
  engine_->AddObserver(&observer);
  std::string run = Trigger(dag);
  Fail("a");
  ASSERT_TRUE(RunUntil([&] { return runner_->InFlight() == 1; }));
  Complete("a");
  Complete("b");
  EXPECT_THAT(observer.events, ElementsAre("created " + run, "run queued->running", "attempt a#1 failed",
                                           "attempt a#2 success", "attempt b#1 success", "run running->success",
                                           "finished success"));
  // Queued and dispatched in the same loop pass: reported once, as running.
  EXPECT_THAT(observer.StatesOf("b"), ElementsAre("running", "success"));
}

// --- Side effects wait for the outermost commit; faults stay in their run -------------

TEST_F(EngineTest, CancelRunInsideATransactionThatRollsBackKillsNothingAndChangesNothing) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_THAT(runner_->Running(), ElementsAre("a[-]#1", "c[-]#1"));
  ASSERT_TRUE(store_->Begin().ok());  // the API's transaction, with its audit row
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  EXPECT_THAT(runner_->cancelled(), IsEmpty()) << "killed before the outermost commit";
  store_->Rollback();  // e.g. the audit row could not be written
  Drain();
  EXPECT_THAT(runner_->cancelled(), IsEmpty());
  EXPECT_EQ(RunStateOf(run), "running");
  ASSERT_NE(engine_->FindActiveRun(run), nullptr);
  EXPECT_EQ(engine_->FindActiveRun(run)->run().state, RunState::kRunning);
  Complete("a");
  Complete("c");
  Complete("b");
  EXPECT_EQ(RunStateOf(run), "success");
}

TEST_F(EngineTest, CancelRunInsideATransactionKillsOnlyOnceItCommits) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(engine_->CancelRun(run).ok());
  EXPECT_THAT(runner_->cancelled(), IsEmpty());
  ASSERT_TRUE(store_->Commit().ok());
  EXPECT_EQ(runner_->cancelled().size(), 2u);
  EXPECT_EQ(RunStateOf(run), "cancelled");
}

TEST_F(EngineTest, RetryRunInsideATransactionThatRollsBackStartsNothing) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  Complete("c");
  ASSERT_EQ(RunStateOf(run), "failed");
  ASSERT_TRUE(store_->Begin().ok());
  auto reset = engine_->RetryRun(run, std::nullopt, std::nullopt);
  ASSERT_TRUE(reset.ok()) << reset.status().ToString();
  store_->Rollback();
  Drain();
  EXPECT_EQ(RunStateOf(run), "failed");
  EXPECT_EQ(engine_->ActiveRunCount(), 0u) << "the retried plan was installed without its commit";
  EXPECT_THAT(runner_->Running(), IsEmpty());
  EXPECT_THAT(StoredStates(run), ElementsAre("a[-]=failed", "b[-]=upstream_failed(upstream a failed)", "c[-]=success"));
}

TEST_F(EngineTest, RetryRunOfAnActiveRunRolledBackPlansItAgainFromTheStore) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  std::string run = Trigger(dag);
  Fail("a");
  ASSERT_THAT(runner_->Running(), ElementsAre("c[-]#1"));
  ASSERT_TRUE(store_->Begin().ok());
  ASSERT_TRUE(engine_->RetryRun(run, std::nullopt, std::nullopt).ok());
  store_->Rollback();
  Drain();
  EXPECT_THAT(runner_->Running(), ElementsAre("c[-]#1")) << "a was started again by a retry that rolled back";
  ExpectStoreMatchesMemory(run);
  Complete("c");
  EXPECT_EQ(RunStateOf(run), "failed");
}

TEST_F(EngineTest, CreateRunInsideATransactionThatRollsBackTellsNoObserverAndStartsNothing) {
  auto dag = AddDag(kRetryRunYaml);
  NewEngine();
  ASSERT_TRUE(store_->Begin().ok());
  auto created = engine_->CreateRun(Request(dag));
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  store_->Rollback();
  Drain();
  EXPECT_EQ(runner_->started(), 0u);
  EXPECT_EQ(engine_->ActiveRunCount(), 0u);
}

// A write that fails for one run (here: its attempt row vanished under the engine) fails
// that run with the reason; the engine and the other runs go on.
TEST_F(EngineTest, AStoreFaultOfOneRunFailsThatRunAndTheOthersGoOn) {
  auto dag = AddDag(R"yaml(dag: one_of_two
max_active_runs: 2
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
)yaml");
  NewEngine();
  std::string broken = Trigger(dag, "2026-03-28T00:00:00Z");
  std::string healthy = Trigger(dag, "2026-03-29T00:00:00Z");
  ASSERT_THAT(runner_->Running(), ElementsAre("a[-]#1", "a[-]#1"));
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((dir_ + "/batchd.db").c_str(), &db), SQLITE_OK);
    const std::string sql = "DELETE FROM attempts WHERE instance_id IN (SELECT id FROM task_instances WHERE run_id = '" +
                            broken + "')";
    EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }
  for (int i = 0; i < 2; ++i) runner_->Finish(*runner_->Oldest(), AttemptEnd::kSuccess, 0);
  Drain();
  EXPECT_EQ(RunStateOf(broken), "failed");
  EXPECT_THAT(StoredRun(broken).error, ::testing::StartsWith("internal error: cannot finish attempt "));
  EXPECT_EQ(engine_->FindActiveRun(broken), nullptr);
  EXPECT_EQ(StoredState(broken, "b"), "failed(internal_error)");
  EXPECT_EQ(engine_->store_fault(), std::nullopt);
  EXPECT_THAT(runner_->Running(), ElementsAre("b[-]#1"));
  Complete("b");
  EXPECT_EQ(RunStateOf(healthy), "success");
}

}  // namespace
}  // namespace batchd::engine
