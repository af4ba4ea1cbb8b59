// File triggers: the Scheduler with a real Store and Engine in a temporary directory, real
// files in a watched directory, a fake clock and a runner that succeeds every attempt.
// Polls happen when the test pokes the scheduler; the clock moves only when the test says.

#include <utility>  // Boost 1.74 Asio in C++20 mode needs it first

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "dag/loader.h"
#include "engine/dag_versions.h"
#include "engine/engine.h"
#include "executor/runner.h"
#include "scheduler/dag_registry.h"
#include "scheduler/file_trigger.h"
#include "scheduler/scheduler.h"
#include "store/store.h"

namespace batchd::scheduler {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class FakeClock final : public Clock {
 public:
  SysMillis Now() const override { return now_; }
  void Advance(Millis d) { now_ += d; }

 private:
  SysMillis now_ = SysMillis(std::chrono::milliseconds(1'764'000'000'000));
};

// Every attempt succeeds once the test lets the loop run (never from inside Start).
class SucceedingRunner final : public executor::TaskRunner {
 public:
  void Start(executor::AttemptSpec spec, DoneCallback done) override {
    pending_.push_back({std::move(spec), std::move(done)});
    running_ = std::max(running_, pending_.size());
  }
  void Cancel(uint64_t) override {}
  int Capacity() const override { return 64; }

  // Finishes what was started; false when nothing was.
  bool FinishAll() {
    if (pending_.empty()) return false;
    auto batch = std::move(pending_);
    pending_.clear();
    for (auto& [spec, done] : batch) {
      executor::AttemptResult r;
      r.attempt_id = spec.attempt_id;
      r.end = executor::AttemptEnd::kSuccess;
      r.exit_code = 0;
      for (const auto& kv : spec.env)
        if (kv.rfind("BATCHD_IDEMPOTENCY_KEY=", 0) == 0) keys.push_back(kv.substr(23));
      commands.push_back(spec.command);
      done(std::move(r));
    }
    return true;
  }

  std::vector<std::string> keys;      // BATCHD_IDEMPOTENCY_KEY of every attempt, in start order
  std::vector<std::string> commands;  // rendered commands, in start order
  size_t max_started_together() const { return running_; }

 private:
  std::vector<std::pair<executor::AttemptSpec, DoneCallback>> pending_;
  size_t running_ = 0;
};

class FileTriggerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spdlog::set_level(spdlog::level::critical);
    char tmpl[] = "/tmp/batchd-file-trigger-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    in_ = dir_ + "/in";
    fs::create_directories(in_);
    auto s = store::Store::Open(dir_ + "/data");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    versions_ = std::make_unique<engine::DagVersionCache>(*store_);
    engine_ = std::make_unique<engine::Engine>(
        io_, *store_, runner_, clock_, engine::EngineOptions{},
        [this](const std::string& name, const std::string& hash) { return versions_->Resolve(name, hash); });
    registry_ = std::make_unique<DagRegistry>(*store_, *versions_, clock_);
    StartScheduler();
  }

  void TearDown() override {
    scheduler_.reset();
    engine_.reset();
    io_.restart();
    io_.poll();
    store_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  // A new scheduler, as after a daemon restart: it remembers nothing of earlier polls.
  void StartScheduler() {
    if (scheduler_) scheduler_->Stop();
    SchedulerOptions options;
    options.tick = 1h;  // the timer never fires in a test; pokes poll
    options.file_settle = kSettle;
    scheduler_ = std::make_unique<Scheduler>(io_, *engine_, *registry_, clock_, options);
    scheduler_->Start();
    Run();
  }

  void Register(const std::string& yaml) {
    dag::LoadResult r = dag::LoadDagString(yaml, "test.yaml");
    for (const auto& d : r.errors) ADD_FAILURE() << d.ToString();
    ASSERT_TRUE(r.dag);
    auto registered = registry_->Register(r.dag, "submit");
    ASSERT_TRUE(registered.ok()) << registered.status().ToString();
  }
  void RegisterIngest(int max_active_runs = 16, const std::string& key = "") {
    Register("dag: ingest\nmax_active_runs: " + std::to_string(max_active_runs) + "\ntriggers:\n  - file: " + in_ +
             "/*.csv\ntasks:\n  - id: load\n    command: cat {{ params.trigger_file }}\n" +
             (key.empty() ? "" : "    idempotency_key: \"" + key + "\"\n"));
  }

  // Lets the engine run (and every attempt succeed) until nothing is left to do.
  void Run() {
    for (int i = 0; i < 100000; ++i) {
      io_.restart();
      if (io_.poll() == 0 && !runner_.FinishAll()) return;
    }
    ADD_FAILURE() << "the loop never became idle";
  }
  // One poll now, then one a settle interval later: what was there at both fires.
  void PollTwice() {
    Poll();
    clock_.Advance(kSettle);
    Poll();
  }
  void Poll() {
    scheduler_->Poke();
    Run();
  }

  // Writes `path` with `content` and sets its mtime to `mtime_ns` since the epoch.
  static void WriteFile(const std::string& path, const std::string& content, int64_t mtime_ns = 1'764'000'000'000'000'000) {
    { std::ofstream(path, std::ios::binary | std::ios::trunc) << content; }
    const struct timespec times[2] = {{mtime_ns / 1'000'000'000, mtime_ns % 1'000'000'000},
                                      {mtime_ns / 1'000'000'000, mtime_ns % 1'000'000'000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  }

  std::vector<store::RunRecord> Runs() {
    auto runs = store_->ListRuns({"ingest", std::nullopt, -1});
    EXPECT_TRUE(runs.ok());
    return runs.ok() ? *runs : std::vector<store::RunRecord>{};
  }
  std::vector<std::string> RunKeys() {
    std::vector<std::string> keys;
    for (const auto& r : Runs()) keys.push_back(r.run_key);
    std::sort(keys.begin(), keys.end());
    return keys;
  }
  std::vector<store::TriggerFile> Ledger() {
    auto files = store_->ListTriggerFiles("ingest");
    EXPECT_TRUE(files.ok());
    return files.ok() ? *files : std::vector<store::TriggerFile>{};
  }
  // "state(reason)" of every instance of every run.
  std::multiset<std::string> InstanceStates() {
    std::multiset<std::string> out;
    for (const auto& r : Runs()) {
      auto instances = store_->ListInstances(r.run_id);  // kept: `*` of a temporary dangles
      for (const auto& i : *instances) {
        out.insert(std::string(ToString(i.state)) + (i.reason.empty() ? "" : "(" + i.reason + ")"));
      }
    }
    return out;
  }

  static constexpr Millis kSettle = 2s;
  boost::asio::io_context io_;
  std::string dir_, in_;
  FakeClock clock_;
  SucceedingRunner runner_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<engine::DagVersionCache> versions_;
  std::unique_ptr<engine::Engine> engine_;
  std::unique_ptr<DagRegistry> registry_;
  std::unique_ptr<Scheduler> scheduler_;
};

constexpr int64_t kMtime = 1'764'000'000'000'000'000;

TEST_F(FileTriggerTest, TwoFilesInTheSameSecondBothRunWithDistinctKeys) {
  RegisterIngest();
  WriteFile(in_ + "/a.csv", "a\n", kMtime + 100);
  WriteFile(in_ + "/b.csv", "b\n", kMtime + 200);
  PollTwice();

  EXPECT_THAT(RunKeys(), ElementsAre("ingest@file:" + in_ + "/a.csv:2:1764000000000000100",
                                     "ingest@file:" + in_ + "/b.csv:2:1764000000000000200"));
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].logical_date, runs[1].logical_date) << "seen in the same second";
  EXPECT_EQ(InstanceStates(), (std::multiset<std::string>{"success", "success"})) << "neither skipped";
  std::set<std::string> keys(runner_.keys.begin(), runner_.keys.end());
  EXPECT_EQ(keys, (std::set<std::string>{
                      "ingest/load/-/2025-11-24T16:00:02+00:00/ingest@file:" + in_ + "/a.csv:2:1764000000000000100",
                      "ingest/load/-/2025-11-24T16:00:02+00:00/ingest@file:" + in_ + "/b.csv:2:1764000000000000200"}));
  EXPECT_EQ(Ledger().size(), 2u);
}

TEST_F(FileTriggerTest, AKeyTheDagSpellsOutIsKept) {
  RegisterIngest(16, "{{ dag }}/{{ params.trigger_file }}");
  WriteFile(in_ + "/a.csv", "a\n");
  PollTwice();
  EXPECT_THAT(runner_.keys, ElementsAre("ingest/" + in_ + "/a.csv"));
}

TEST_F(FileTriggerTest, UnchangedFileDoesNotFireAgainAfterItsRunsArePrunedOrARestart) {
  RegisterIngest();
  WriteFile(in_ + "/a.csv", "a\n");
  PollTwice();
  ASSERT_EQ(Runs().size(), 1u);
  ASSERT_EQ(runner_.keys.size(), 1u);

  auto pruned = store_->PruneRunsBefore(clock_.Now() + 24h);
  ASSERT_TRUE(pruned.ok()) << pruned.status().ToString();
  ASSERT_EQ(*pruned, 1);
  PollTwice();
  StartScheduler();  // remembers nothing: the ledger decides
  PollTwice();
  clock_.Advance(1h);
  PollTwice();
  EXPECT_THAT(Runs(), IsEmpty());
  EXPECT_EQ(runner_.keys.size(), 1u);
  EXPECT_EQ(Ledger().size(), 1u);
}

TEST_F(FileTriggerTest, RewrittenFileFiresAgain) {
  RegisterIngest();
  WriteFile(in_ + "/a.csv", "first\n", kMtime);
  PollTwice();
  WriteFile(in_ + "/a.csv", "second\n", kMtime + 5'000'000'000);  // new content
  PollTwice();
  WriteFile(in_ + "/a.csv", "second\n", kMtime + 9'000'000'000);  // touched: same size, new mtime
  PollTwice();
  EXPECT_THAT(RunKeys(), ElementsAre("ingest@file:" + in_ + "/a.csv:6:1764000000000000000",
                                     "ingest@file:" + in_ + "/a.csv:7:1764000005000000000",
                                     "ingest@file:" + in_ + "/a.csv:7:1764000009000000000"));
  EXPECT_EQ(InstanceStates(), (std::multiset<std::string>{"success", "success", "success"}));
}

TEST_F(FileTriggerTest, AFileStillBeingWrittenFiresOnceItStaysUnchangedForOnePoll) {
  RegisterIngest();
  WriteFile(in_ + "/a.csv", "par", kMtime);
  Poll();
  clock_.Advance(kSettle);
  WriteFile(in_ + "/a.csv", "partial", kMtime + 1'000'000);
  Poll();  // changed since the last poll: not yet
  clock_.Advance(kSettle - 1ms);
  Poll();  // unchanged, but not for a whole settle interval
  EXPECT_THAT(Runs(), IsEmpty());
  clock_.Advance(1ms);
  Poll();
  EXPECT_THAT(RunKeys(), ElementsAre("ingest@file:" + in_ + "/a.csv:7:1764000000001000000"));
}

TEST_F(FileTriggerTest, HiddenFilesAndDirectoriesDoNotFire) {
  RegisterIngest();
  WriteFile(in_ + "/.a.csv.part", "x");
  WriteFile(in_ + "/.b.csv", "x");
  fs::create_directories(in_ + "/dir.csv");
  PollTwice();
  EXPECT_THAT(Runs(), IsEmpty());
}

TEST_F(FileTriggerTest, AFileNameThatIsNotUtf8FiresOnceWithItsExactBytes) {
  RegisterIngest();
  const std::string path = in_ + "/caf\xe9 100%.csv";
  WriteFile(path, "x\n");
  PollTwice();
  StartScheduler();
  PollTwice();
  EXPECT_THAT(RunKeys(), ElementsAre("ingest@file:" + in_ + "/caf%E9 100%25.csv:2:1764000000000000000"));
  auto ledger = Ledger();
  ASSERT_EQ(ledger.size(), 1u);
  EXPECT_EQ(ledger[0].path, path);
  EXPECT_EQ(InstanceStates(), (std::multiset<std::string>{"success"}));
  ASSERT_EQ(runner_.commands.size(), 1u);
  EXPECT_THAT(runner_.commands[0], HasSubstr("caf\xe9 100%.csv")) << "the task gets the exact bytes";
}

TEST_F(FileTriggerTest, AFileDeletedBeforeItsRunStartsStillRunsOnce) {
  RegisterIngest();
  WriteFile(in_ + "/a.csv", "a\n");
  Poll();
  clock_.Advance(kSettle);
  scheduler_->Poke();  // the run is created; it has not started
  fs::remove(in_ + "/a.csv");
  Run();
  PollTwice();
  EXPECT_EQ(Runs().size(), 1u);
  EXPECT_EQ(InstanceStates(), (std::multiset<std::string>{"success"}));
}

TEST_F(FileTriggerTest, AThousandFilesAtOnceEachRunOnceBehindMaxActiveRuns) {
  RegisterIngest(/*max_active_runs=*/4);
  for (int i = 0; i < 1000; ++i) WriteFile(in_ + "/f" + std::to_string(i) + ".csv", "x\n", kMtime + i);
  PollTwice();
  PollTwice();
  EXPECT_EQ(Runs().size(), 1000u);
  EXPECT_EQ(Ledger().size(), 1000u);
  const std::vector<std::string> all_success(1000, "success");
  EXPECT_EQ(InstanceStates(), std::multiset<std::string>(all_success.begin(), all_success.end()));
  EXPECT_EQ(std::set<std::string>(runner_.keys.begin(), runner_.keys.end()).size(), 1000u);
  EXPECT_LE(runner_.max_started_together(), 4u);
}

TEST_F(FileTriggerTest, APausedDagsFilesFireWhenItIsUnpaused) {
  RegisterIngest();
  ASSERT_TRUE(registry_->SetPaused("ingest", true).ok());
  WriteFile(in_ + "/a.csv", "a\n");
  PollTwice();
  EXPECT_THAT(Runs(), IsEmpty());
  ASSERT_TRUE(registry_->SetPaused("ingest", false).ok());
  PollTwice();
  EXPECT_EQ(Runs().size(), 1u);
}

TEST_F(FileTriggerTest, AFileTwoGlobsMatchFiresOnce) {
  Register("dag: ingest\ntriggers:\n  - file: " + in_ + "/*.csv\n  - file: " + in_ +
           "/a.*\ntasks:\n  - id: load\n    command: cat {{ params.trigger_file }}\n");
  WriteFile(in_ + "/a.csv", "a\n");
  PollTwice();
  PollTwice();
  EXPECT_EQ(Runs().size(), 1u);
  EXPECT_EQ(Ledger().size(), 1u);
}

TEST(EscapeKeyBytesTest, EscapesWhatIsNotPrintableUtf8AndThePercentSign) {
  EXPECT_EQ(EscapeKeyBytes("/in/a b.csv"), "/in/a b.csv");
  EXPECT_EQ(EscapeKeyBytes("/in/caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84"), "/in/caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\x84");
  EXPECT_EQ(EscapeKeyBytes("100%"), "100%25");
  EXPECT_EQ(EscapeKeyBytes("a\nb\tc\x7f"), "a%0Ab%09c%7F");
  EXPECT_EQ(EscapeKeyBytes("caf\xe9"), "caf%E9");                     // Latin-1
  EXPECT_EQ(EscapeKeyBytes("\xc3"), "%C3");                           // cut short
  EXPECT_EQ(EscapeKeyBytes("\xc0\xaf"), "%C0%AF");                    // overlong '/'
  EXPECT_EQ(EscapeKeyBytes("\xed\xa0\x80"), "%ED%A0%80");             // a surrogate
  EXPECT_EQ(EscapeKeyBytes("\xf4\x90\x80\x80"), "%F4%90%80%80");      // beyond U+10FFFF
  EXPECT_EQ(EscapeKeyBytes(std::string("a\0b", 3)), "a%00b");
  // One-to-one: the escaped form of a name never equals another name's.
  EXPECT_NE(EscapeKeyBytes("%E9"), EscapeKeyBytes("\xe9"));
}

}  // namespace
}  // namespace batchd::scheduler
