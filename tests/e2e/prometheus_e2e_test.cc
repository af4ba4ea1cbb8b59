// End-to-end test of batchd's Prometheus integration (docs/observability.md): the real
// daemon serves /metrics on a loopback port, a real `prometheus` scrapes it every second
// with the shipped config (config/prometheus/prometheus.yml, its target and intervals
// replaced) and evaluates the shipped rules (config/prometheus/batchd.rules.yml), while
// `batchctl` drives a scenario with a fixed outcome: successful runs, a retry, a dead
// letter, a duplicate trigger, an idempotent skip, a duration SLO miss and freshness SLO
// misses. Then every expression of the rules file and every panel query of the Grafana
// dashboard (docs/grafana/batchd.json) goes through Prometheus's HTTP API: each must parse
// and return data, and the values the scenario fixes must be exact. `promtool check
// metrics` must accept a scrape of /metrics.
//
// The rules count failed runs and SLO misses as "value now minus value a window ago, from
// 0 for a series born in the window when batchd was scraped at its start". So that a
// Prometheus that lives for seconds can show that, the test backfills the history of a
// Prometheus that had been scraping this (idle) batchd for the past 75 minutes: `up` = 1,
// written into the TSDB with `promtool tsdb create-blocks-from openmetrics` before start.
//
// prometheus and promtool come from Debian's `prometheus` package (scripts/deps.sh).

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

namespace fs = std::filesystem;

const std::string kRules = std::string(BATCHD_SOURCE_DIR) + "/config/prometheus/batchd.rules.yml";
const std::string kPromConfig = std::string(BATCHD_SOURCE_DIR) + "/config/prometheus/prometheus.yml";
const std::string kDashboard = std::string(BATCHD_SOURCE_DIR) + "/docs/grafana/batchd.json";

// The program's absolute path from $PATH, "" when it is not there.
std::string FindProgram(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// One answer of Prometheus's /api/v1/query.
struct PromAnswer {
  bool ok = false;      // status "success"
  std::string error;    // errorType: error, or what went wrong on the way
  Json result = Json::array();  // data.result (a vector: [{metric, value: [t, "v"]}])

  // The value of the only sample whose labels include `labels`; NaN when there is none
  // or more than one.
  double Value(const std::map<std::string, std::string>& labels = {}) const {
    double v = NAN;
    int matches = 0;
    for (const auto& s : result) {
      bool match = true;
      for (const auto& [k, want] : labels)
        if (!s["metric"].contains(k) || s["metric"][k] != want) match = false;
      if (!match) continue;
      ++matches;
      v = std::stod(s["value"][1].get<std::string>());
    }
    return matches == 1 ? v : NAN;
  }
};

class PrometheusTest : public DaemonTest {
 protected:
  void TearDown() override {
    if (prometheus_ && prometheus_->Running()) {
      prometheus_->Signal(SIGTERM);
      prometheus_->Wait(milliseconds(10000));
    }
    DaemonTest::TearDown();
  }

  // Starts prometheus with `config` in tmp()/prometheus (its TSDB in tmp()/tsdb, which may
  // already hold backfilled blocks) and waits until it is ready.
  bool StartPrometheus(const std::string& config, const std::string& working_dir) {
    prom_port_ = FreeTcpPort();
    std::vector<std::string> argv = {prometheus_bin_,
                                     "--config.file=" + config,
                                     "--storage.tsdb.path=" + tmp() / "tsdb",
                                     "--web.listen-address=127.0.0.1:" + std::to_string(prom_port_),
                                     "--log.level=warn"};
    // The config's relative rule_files resolve against the config file's directory; the
    // working directory only matters for the shell command the docs show.
    std::string cmd = "cd '" + working_dir + "' && exec";
    for (const auto& a : argv) cmd += " '" + a + "'";
    prometheus_ = std::make_unique<Process>(std::vector<std::string>{"/bin/sh", "-c", cmd});
    bool ready = WaitFor(
        [&] {
          if (!prometheus_->Running()) return true;
          ProcResult r = RunProcess({curl_bin_, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                                     "http://127.0.0.1:" + std::to_string(prom_port_) + "/-/ready"},
                                    milliseconds(5000));
          return r.out == "200";
        },
        milliseconds(30000 * kSlowdown), milliseconds(100));
    if (!ready || !prometheus_->Running()) {
      ADD_FAILURE() << "prometheus did not become ready: " << prometheus_->Stderr();
      return false;
    }
    return true;
  }

  // GET /api/v1/<path> with form parameters (curl -G --data-urlencode).
  Json PromApi(const std::string& path, const std::vector<std::string>& params) {
    std::vector<std::string> argv = {curl_bin_, "-sS", "--max-time", "20", "-G"};
    for (const auto& p : params) {
      argv.push_back("--data-urlencode");
      argv.push_back(p);
    }
    argv.push_back("http://127.0.0.1:" + std::to_string(prom_port_) + "/api/v1/" + path);
    ProcResult r = RunProcess(argv, milliseconds(30000));
    Json j = Json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (r.exit_code != 0 || j.is_discarded()) return Json{{"status", "error"}, {"error", r.Describe()}};
    return j;
  }

  PromAnswer PromQuery(const std::string& expr) {
    Json j = PromApi("query", {"query=" + expr});
    PromAnswer a;
    a.ok = j.value("status", "") == "success";
    if (!a.ok) {
      a.error = j.value("errorType", "") + ": " + j.value("error", j.dump());
      return a;
    }
    if (j["data"].value("resultType", "") != "vector") {
      a.ok = false;
      a.error = "result type " + j["data"].value("resultType", "") + ", not vector";
      return a;
    }
    a.result = j["data"]["result"];
    return a;
  }

  // Polls until `expr` has the value `want` (a single sample), for waits on scrapes and
  // rule evaluations.
  ::testing::AssertionResult WaitPromValue(const std::string& expr, double want,
                                           milliseconds timeout = milliseconds(20000 * kSlowdown)) {
    PromAnswer last;
    if (WaitFor([&] { return (last = PromQuery(expr)).Value() == want; }, timeout, milliseconds(250)))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "Prometheus: `" << expr << "` is not " << want << " after "
                                         << timeout.count() << " ms; last answer: "
                                         << (last.ok ? last.result.dump() : last.error)
                                         << "\n--- batchd /metrics ---\n"
                                         << Scrape();
  }

  std::string Scrape() {
    RawReply r = RawTcpRequest(daemon_port_, HttpRequestText("GET", "/metrics"));
    return r.body;
  }

  std::string prometheus_bin_ = FindProgram("prometheus");
  std::string promtool_bin_ = FindProgram("promtool");
  std::string curl_bin_ = FindProgram("curl");
  std::unique_ptr<Process> prometheus_;
  int prom_port_ = 0;
  int daemon_port_ = 0;
};

// Every `expr` of the rules file: {name, expr, is_alert}.
struct Rule {
  std::string name;
  std::string expr;
  bool alert = false;
};

std::vector<Rule> LoadRules() {
  std::vector<Rule> rules;
  YAML::Node doc = YAML::LoadFile(kRules);
  for (const auto& group : doc["groups"])
    for (const auto& r : group["rules"]) {
      Rule rule;
      rule.alert = static_cast<bool>(r["alert"]);
      rule.name = rule.alert ? r["alert"].as<std::string>() : r["record"].as<std::string>();
      rule.expr = r["expr"].as<std::string>();
      rules.push_back(rule);
    }
  return rules;
}

// Every panel target of the dashboard: {panel title, expr}.
std::vector<std::pair<std::string, std::string>> LoadDashboardQueries() {
  std::vector<std::pair<std::string, std::string>> out;
  Json d = Json::parse(ReadFile(kDashboard).value_or("null"), nullptr, false);
  if (!d.is_object()) {
    ADD_FAILURE() << kDashboard << " is not a JSON object";
    return out;
  }
  std::function<void(const Json&)> walk = [&](const Json& panels) {
    for (const auto& p : panels) {
      if (p.contains("panels")) walk(p["panels"]);
      for (const auto& t : p.value("targets", Json::array())) out.emplace_back(p.value("title", ""), t.value("expr", ""));
    }
  };
  walk(d["panels"]);
  return out;
}

// A panel query as Grafana sends it, with the dashboard's variables at fixed values.
std::string Grafanize(std::string expr) {
  const std::vector<std::pair<std::string, std::string>> vars = {
      {"${dag}", ".*"},         {"[[dag]]", ".*"},         {"$dag", ".*"},
      {"$__rate_interval", "1m"}, {"${__rate_interval}", "1m"}, {"$__range", "1h"},
      {"${__range}", "1h"},     {"$__interval", "15s"},    {"${__interval}", "15s"}};
  for (const auto& [from, to] : vars)
    for (size_t pos = expr.find(from); pos != std::string::npos; pos = expr.find(from, pos + to.size()))
      expr.replace(pos, from.size(), to);
  return expr;
}

// The expression without a trailing comparison with a number ("x > 60" -> "x").
std::string WithoutThreshold(const std::string& expr) {
  static const std::regex kThreshold(R"(^([\s\S]*?)\s*(==|!=|>=|<=|>|<)\s*-?[0-9.]+\s*$)");
  std::smatch m;
  return std::regex_match(expr, m, kThreshold) ? m[1].str() : expr;
}

std::string Dag(const std::string& name, const std::string& rest) { return "dag: " + name + "\n" + rest; }

// ------------------------------------------------------------------------------------

TEST_F(PrometheusTest, RulesAndDashboardQueriesReturnTheScenariosNumbers) {
  ASSERT_FALSE(prometheus_bin_.empty()) << "prometheus is not installed (bash scripts/deps.sh)";
  ASSERT_FALSE(promtool_bin_.empty()) << "promtool is not installed (bash scripts/deps.sh)";
  ASSERT_FALSE(curl_bin_.empty()) << "curl is not installed (bash scripts/deps.sh)";
  const auto wall_start = std::chrono::steady_clock::now();

  daemon_port_ = FreeTcpPort();
  DaemonOptions opts;
  opts.http = "127.0.0.1:" + std::to_string(daemon_port_);
  opts.config_yaml = "scheduler_tick: 500ms\npools:\n  warehouse: 2\n";
  ASSERT_TRUE(StartDaemon(opts));
  const double daemon_started = RealNow();
  const std::string instance = "127.0.0.1:" + std::to_string(daemon_port_);

  // --- Prometheus: the shipped config, scraping this daemon every second -------------
  YAML::Node config = YAML::LoadFile(kPromConfig);
  ASSERT_EQ(config["scrape_configs"][0]["job_name"].as<std::string>(), "batchd");
  ASSERT_EQ(config["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>(), "127.0.0.1:9464");
  config["global"]["scrape_interval"] = "1s";
  config["global"]["evaluation_interval"] = "1s";
  config["rule_files"] = std::vector<std::string>{kRules};
  config["scrape_configs"][0]["static_configs"][0]["targets"] = std::vector<std::string>{instance};
  YAML::Emitter emitter;
  emitter << config;
  const std::string prom_config = tmp() / "prometheus.yml";
  WriteFile(prom_config, emitter.c_str());

  // 75 minutes of history of an idle, healthy batchd: up = 1 every minute until a minute ago.
  {
    const long now = static_cast<long>(RealNow());
    std::string om = "# TYPE up gauge\n";
    for (long t = now - 75 * 60; t <= now - 60; t += 60)
      om += "up{instance=\"" + instance + "\",job=\"batchd\"} 1 " + std::to_string(t) + "\n";
    om += "# EOF\n";
    WriteFile(tmp() / "up.om", om);
    ProcResult r = RunProcess({promtool_bin_, "tsdb", "create-blocks-from", "openmetrics", tmp() / "up.om", tmp() / "tsdb"},
                              milliseconds(60000));
    ASSERT_EQ(r.exit_code, 0) << "promtool tsdb create-blocks-from: " << r.Describe();
  }

  // --- The scenario's DAGs (manual only) ---------------------------------------------
  const int fresh_slo = 2 * kSlowdown;  // seconds: longer than submit + trigger + run
  const std::vector<std::pair<std::string, std::string>> dags = {
      {"prom_ok", "tasks:\n  - id: work\n    command: echo ok\n"},
      {"prom_retry",
       "tasks:\n  - id: flaky\n    retry: {retries: 2, delay: 100ms, backoff: fixed}\n"
       "    command: '[ \"$BATCHD_ATTEMPT\" != 1 ]'\n"},
      {"prom_dead",
       "tasks:\n  - id: load\n    pool: warehouse\n    partitions: {values: [a, b, c]}\n"
       "    retry: {retries: 1, delay: 100ms, backoff: fixed}\n"
       "    command: '[ \"$BATCHD_PARTITION\" != b ]'\n"},
      {"prom_slow", "slo: {max_duration: 1s}\ntasks:\n  - id: nap\n    command: sleep 3\n"},
      {"prom_fresh", "slo: {freshness: " + std::to_string(fresh_slo) + "s}\ntasks:\n  - id: work\n    command: echo ok\n"},
      {"prom_never", "slo: {freshness: 1s}\ntasks:\n  - id: work\n    command: echo never run\n"},
  };
  std::vector<std::string> submit = {"submit"};
  for (const auto& [name, body] : dags) submit.push_back(WriteDag(name + ".yaml", Dag(name, body)));
  ProcResult submitted = Ctl(submit);
  ASSERT_EQ(submitted.exit_code, 0) << submitted.Describe();

  // Runs that end by themselves meanwhile.
  const std::string slow = Trigger("prom_slow");
  const std::string retry = Trigger("prom_retry");
  const std::string dead = Trigger("prom_dead");
  const std::string fresh = Trigger("prom_fresh");

  ASSERT_TRUE(StartPrometheus(prom_config, tmp().path()));

  // A success; once Prometheus has seen it (the histograms' series exist), the same date
  // again (a duplicate trigger: nothing created), the same date under another run key (an
  // idempotent skip: the task's key already succeeded) and another date (a second success
  // that executes).
  ProcResult ok1 = Ctl({"trigger", "prom_ok", "--date", "2026-01-01", "--wait"});
  ASSERT_EQ(ok1.exit_code, 0) << ok1.Describe();
  ASSERT_TRUE(WaitPromValue("batchd_run_duration_seconds_count{dag=\"prom_ok\"}", 1));
  ASSERT_TRUE(WaitPromValue("batchd_run_schedule_delay_seconds_count{dag=\"prom_ok\"}", 1));
  ASSERT_TRUE(WaitPromValue("batchd_task_duration_seconds_count{dag=\"prom_ok\"}", 1));
  OrderedJson dup = CtlJson({"trigger", "prom_ok", "--date", "2026-01-01"});
  EXPECT_EQ(dup.value("created", true), false) << dup.dump();
  ProcResult skip = Ctl({"trigger", "prom_ok", "--date", "2026-01-01", "--key", "prom_ok-again", "--wait"});
  ASSERT_EQ(skip.exit_code, 0) << skip.Describe();
  ProcResult ok2 = Ctl({"trigger", "prom_ok", "--date", "2026-01-02", "--wait"});
  ASSERT_EQ(ok2.exit_code, 0) << ok2.Describe();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances i JOIN runs r ON r.run_id = i.run_id WHERE r.dag = 'prom_ok' "
                  "AND i.state = 'skipped' AND i.reason = 'already_succeeded'"),
            1);

  ASSERT_TRUE(WaitRunState(retry, "success"));
  ASSERT_TRUE(WaitRunState(dead, "failed"));
  ASSERT_TRUE(WaitRunState(fresh, "success"));
  ASSERT_TRUE(WaitRunState(slow, "success", milliseconds(20000 * kSlowdown)));
  EXPECT_EQ(AttemptOutcomes(retry, "flaky"), (std::vector<std::string>{"failed", "success"}));
  EXPECT_EQ(AttemptOutcomes(dead, "load", "b"), (std::vector<std::string>{"failed", "failed"}));
  ProcResult failed = Ctl({"failed", "prom_dead"});
  EXPECT_EQ(failed.exit_code, 0) << failed.Describe();
  EXPECT_NE(failed.out.find(dead), std::string::npos) << failed.out;

  // --- Prometheus has scraped the end state and evaluated the rules on it -------------
  // prom_fresh goes stale fresh_slo seconds after its success; prom_never fresh_slo after
  // its submit: one freshness miss each.
  ASSERT_TRUE(WaitPromValue("batchd_slo_misses_total{dag=\"prom_fresh\",kind=\"freshness\"}", 1));
  ASSERT_TRUE(WaitPromValue("batchd_slo_misses_total{dag=\"prom_never\",kind=\"freshness\"}", 1));
  ASSERT_TRUE(WaitPromValue("sum(batchd_runs_total)", 7));
  ASSERT_TRUE(WaitPromValue("sum(batchd_tasks_running) + sum(batchd_tasks_queued) + sum(batchd_runs_active)", 0));
  ASSERT_TRUE(WaitPromValue("dag_state:batchd_runs:increase15m{dag=\"prom_dead\",state=\"failed\"}", 1));
  // The rules evaluated on a scrape that saw the last run end (and so every observation).
  ASSERT_TRUE(WaitPromValue("dag_state:batchd_runs:increase15m{dag=\"prom_ok\",state=\"success\"}", 3));
  ASSERT_TRUE(WaitPromValue("count(ALERTS{alertname=\"BatchdRunFailed\",alertstate=\"firing\"})", 1));
  ASSERT_TRUE(WaitPromValue("count(ALERTS{alertname=\"BatchdDeadLetters\",alertstate=\"firing\"})", 1));
  ASSERT_TRUE(WaitPromValue("count(ALERTS{alertname=\"BatchdDurationSloMissed\",alertstate=\"firing\"})", 1));
  // `for: 1m`: pending, or firing when the scenario took longer than that (sanitizers).
  ASSERT_TRUE(WaitPromValue("count(ALERTS{alertname=\"BatchdDagStale\"})", 2));

  // --- Exact values of the scenario ---------------------------------------------------
  struct Expect {
    std::string expr;
    double value;
  };
  const std::vector<Expect> exact = {
      {"batchd_runs_total{dag=\"prom_ok\",trigger=\"manual\",state=\"success\"}", 3},
      {"batchd_runs_total{dag=\"prom_retry\",trigger=\"manual\",state=\"success\"}", 1},
      {"batchd_runs_total{dag=\"prom_dead\",trigger=\"manual\",state=\"failed\"}", 1},
      {"batchd_runs_total{dag=\"prom_slow\",trigger=\"manual\",state=\"success\"}", 1},
      {"batchd_runs_total{dag=\"prom_fresh\",trigger=\"manual\",state=\"success\"}", 1},
      {"count(batchd_runs_total)", 5},
      {"batchd_duplicate_triggers_total{dag=\"prom_ok\"}", 1},
      {"sum(batchd_duplicate_triggers_total)", 1},
      {"batchd_idempotent_skips_total{dag=\"prom_ok\",task=\"work\"}", 1},
      {"sum(batchd_idempotent_skips_total)", 1},
      {"batchd_task_retries_total{dag=\"prom_retry\",task=\"flaky\"}", 1},
      {"batchd_task_retries_total{dag=\"prom_dead\",task=\"load\"}", 1},
      {"sum(batchd_task_retries_total)", 2},
      {"batchd_task_attempts_total{dag=\"prom_retry\",task=\"flaky\",outcome=\"failed\"}", 1},
      {"batchd_task_attempts_total{dag=\"prom_retry\",task=\"flaky\",outcome=\"success\"}", 1},
      {"batchd_task_attempts_total{dag=\"prom_dead\",task=\"load\",outcome=\"failed\"}", 2},
      {"batchd_task_attempts_total{dag=\"prom_dead\",task=\"load\",outcome=\"success\"}", 2},
      {"batchd_task_attempts_total{dag=\"prom_ok\",task=\"work\",outcome=\"success\"}", 2},
      {"batchd_partitions_total{dag=\"prom_dead\",task=\"load\",state=\"success\"}", 2},
      {"batchd_partitions_total{dag=\"prom_dead\",task=\"load\",state=\"failed\"}", 1},
      {"batchd_partitions_total{dag=\"prom_ok\",task=\"work\",state=\"success\"}", 2},
      {"batchd_partitions_total{dag=\"prom_ok\",task=\"work\",state=\"skipped\"}", 1},
      {"batchd_dead_letters{dag=\"prom_dead\",task=\"load\"}", 1},
      {"sum(batchd_dead_letters)", 1},
      {"batchd_slo_misses_total{dag=\"prom_slow\",kind=\"duration\"}", 1},
      {"sum(batchd_slo_misses_total{kind=\"duration\"})", 1},
      {"sum(batchd_slo_misses_total{kind=\"freshness\"})", 2},
      {"batchd_dag_freshness_slo_seconds{dag=\"prom_fresh\"}", static_cast<double>(fresh_slo)},
      {"batchd_dag_freshness_slo_seconds{dag=\"prom_never\"}", 1},
      {"count(batchd_dag_freshness_slo_seconds)", 2},
      {"count(batchd_dag_last_success_timestamp_seconds)", 4},
      {"batchd_run_duration_seconds_count{dag=\"prom_slow\"}", 1},
      {"batchd_run_duration_seconds_count{dag=\"prom_ok\"}", 3},
      {"batchd_run_schedule_delay_seconds_count{dag=\"prom_ok\"}", 2},
      {"batchd_task_duration_seconds_count{dag=\"prom_dead\",task=\"load\"}", 4},
      {"batchd_pool_slots{pool=\"warehouse\"}", 2},
      {"batchd_pool_slots_used{pool=\"warehouse\"}", 0},
      {"batchd_executor_workers", 4},
      {"batchd_build_info", 1},
      {"batchd_tasks_running", 0},
      {"batchd_tasks_queued", 0},
      {"sum(batchd_runs_active)", 0},
      {"count(batchd_runs_active)", 6},
      {"up{job=\"batchd\"}", 1},
      // Rules.
      {"dag_state:batchd_runs:increase15m{dag=\"prom_ok\",state=\"success\"}", 3},
      {"dag_state:batchd_runs:increase1h{dag=\"prom_dead\",state=\"failed\"}", 1},
      {"dag:batchd_run_success_ratio:rate1h{dag=\"prom_ok\"}", 1},
      {"dag:batchd_run_success_ratio:rate1h{dag=\"prom_dead\"}", 0},
      {"count(dag:batchd_run_success_ratio:rate1h)", 5},
      {"dag_kind:batchd_slo_misses:increase15m{dag=\"prom_slow\",kind=\"duration\"}", 1},
      {"dag_kind:batchd_slo_misses:increase15m{dag=\"prom_never\",kind=\"freshness\"}", 1},
      // Alerts: those without `for` fire at once.
      {"ALERTS{alertname=\"BatchdRunFailed\",alertstate=\"firing\",dag=\"prom_dead\",severity=\"warning\"}", 1},
      {"count(ALERTS{alertname=\"BatchdRunFailed\"})", 1},
      {"ALERTS{alertname=\"BatchdDeadLetters\",alertstate=\"firing\",dag=\"prom_dead\",task=\"load\"}", 1},
      {"count(ALERTS{alertname=\"BatchdDeadLetters\"})", 1},
      {"ALERTS{alertname=\"BatchdDurationSloMissed\",alertstate=\"firing\",dag=\"prom_slow\"}", 1},
      {"count(ALERTS{alertname=\"BatchdDagStale\",dag=\"prom_fresh\",severity=\"critical\"})", 1},
      {"count(ALERTS{alertname=\"BatchdDagStale\",dag=\"prom_never\",severity=\"critical\"})", 1},
      {"count(ALERTS{alertname=~\"BatchdSchedulerLag|BatchdDown\"}) or vector(0)", 0},
  };
  for (const auto& e : exact) {
    PromAnswer a = PromQuery(e.expr);
    ASSERT_TRUE(a.ok) << e.expr << ": " << a.error;
    EXPECT_EQ(a.Value(), e.value) << e.expr << " -> " << a.result.dump();
  }
  // The alerts' annotations as Prometheus rendered them from this daemon's series.
  {
    Json j = PromApi("alerts", {});
    ASSERT_EQ(j.value("status", ""), "success") << j.dump();
    std::map<std::string, Json> by_name;
    for (const auto& a : j["data"]["alerts"]) by_name[a["labels"].value("alertname", "")] = a;
    ASSERT_TRUE(by_name.count("BatchdRunFailed")) << j.dump();
    EXPECT_EQ(by_name["BatchdRunFailed"]["annotations"].value("description", ""),
              "1 run(s) of DAG prom_dead on " + instance + " ended failed in the last 15 minutes.");
    EXPECT_EQ(by_name["BatchdRunFailed"]["annotations"].value("runbook", ""), "docs/observability.md#batchdrunfailed");
    ASSERT_TRUE(by_name.count("BatchdDeadLetters")) << j.dump();
    EXPECT_EQ(by_name["BatchdDeadLetters"]["annotations"].value("summary", ""), "batchd: dead letters in prom_dead.load");
    EXPECT_EQ(by_name["BatchdDeadLetters"]["annotations"].value("description", ""),
              "1 instance(s) of task load of DAG prom_dead on " + instance +
                  " failed after their last retry and have not been retried since.");
    ASSERT_TRUE(by_name.count("BatchdDurationSloMissed")) << j.dump();
    EXPECT_EQ(by_name["BatchdDurationSloMissed"]["annotations"].value("description", ""),
              "1 run(s) of DAG prom_slow on " + instance + " ran longer than its slo.max_duration in the last 15 minutes.");
  }

  // Times: the last success is a Unix time since the daemon started; the age of
  // prom_fresh is past its SLO; run durations are what the tasks slept.
  {
    const double now = RealNow();
    PromAnswer last = PromQuery("batchd_dag_last_success_timestamp_seconds{dag=\"prom_ok\"}");
    EXPECT_GE(last.Value(), daemon_started - 1) << last.result.dump();
    EXPECT_LE(last.Value(), now + 1) << last.result.dump();
    PromAnswer age = PromQuery("dag:batchd_freshness_age_seconds:now{dag=\"prom_fresh\"}");
    EXPECT_GT(age.Value(), fresh_slo) << age.result.dump();
    EXPECT_LT(age.Value(), now - daemon_started + 5) << age.result.dump();
    PromAnswer slow_sum = PromQuery("batchd_run_duration_seconds_sum{dag=\"prom_slow\"}");
    EXPECT_GE(slow_sum.Value(), 3) << slow_sum.result.dump();
    EXPECT_LT(slow_sum.Value(), 3 + 10 * kSlowdown) << slow_sum.result.dump();
    PromAnswer delay = PromQuery("dag:batchd_run_schedule_delay_seconds:p95_rate1h{dag=\"prom_ok\"}");
    EXPECT_GE(delay.Value(), 0) << delay.result.dump();
    EXPECT_LT(delay.Value(), 60) << delay.result.dump();
  }

  // --- Every expression of the rules file parses and returns data ----------------------
  const std::vector<Rule> rules = LoadRules();
  std::set<std::string> alerts;
  // Alerts the scenario makes true; the others must be false now (and their expression
  // without its threshold must return data).
  const std::set<std::string> true_now = {"BatchdRunFailed", "BatchdDagStale", "BatchdDeadLetters",
                                          "BatchdDurationSloMissed"};
  for (const auto& rule : rules) {
    PromAnswer a = PromQuery(rule.expr);
    ASSERT_TRUE(a.ok) << rule.name << ": " << a.error << "\n" << rule.expr;
    if (!rule.alert || true_now.count(rule.name)) {
      EXPECT_FALSE(a.result.empty()) << rule.name << " returned no data:\n" << rule.expr;
    } else {
      EXPECT_TRUE(a.result.empty()) << rule.name << " is true in a scenario without its condition: " << a.result.dump();
      const std::string base = WithoutThreshold(rule.expr);
      ASSERT_NE(base, rule.expr) << rule.name << ": no threshold to take away";
      PromAnswer b = PromQuery(base);
      ASSERT_TRUE(b.ok) << rule.name << " without threshold: " << b.error << "\n" << base;
      EXPECT_FALSE(b.result.empty()) << rule.name << " without threshold returned no data:\n" << base;
    }
    if (rule.alert) alerts.insert(rule.name);
  }
  EXPECT_EQ(alerts, (std::set<std::string>{"BatchdRunFailed", "BatchdDagStale", "BatchdDeadLetters",
                                           "BatchdDurationSloMissed", "BatchdSchedulerLag", "BatchdDown"}));
  // Prometheus itself loaded every rule and evaluated each without error.
  {
    Json j = PromApi("rules", {});
    ASSERT_EQ(j.value("status", ""), "success") << j.dump();
    size_t loaded = 0;
    for (const auto& g : j["data"]["groups"])
      for (const auto& r : g["rules"]) {
        ++loaded;
        EXPECT_EQ(r.value("health", ""), "ok") << r.dump();
      }
    EXPECT_EQ(loaded, rules.size());
  }

  // --- Every panel query of the dashboard parses and returns data -----------------------
  const auto queries = LoadDashboardQueries();
  EXPECT_GE(queries.size(), 20u);
  for (const auto& [title, expr] : queries) {
    ASSERT_FALSE(expr.empty()) << "panel '" << title << "' has a target without expr";
    const std::string q = Grafanize(expr);
    PromAnswer a = PromQuery(q);
    ASSERT_TRUE(a.ok) << "panel '" << title << "': " << a.error << "\n" << q;
    EXPECT_FALSE(a.result.empty()) << "panel '" << title << "' returned no data:\n" << q;
  }
  // The dag variable: label_values(batchd_runs_total, dag).
  {
    Json j = PromApi("label/dag/values", {"match[]=batchd_runs_total"});
    ASSERT_EQ(j.value("status", ""), "success") << j.dump();
    std::set<std::string> values(j["data"].begin(), j["data"].end());
    EXPECT_EQ(values, (std::set<std::string>{"prom_dead", "prom_fresh", "prom_ok", "prom_retry", "prom_slow"}));
  }

  // --- The example queries of docs/observability.md parse --------------------------------
  {
    const std::string doc = ReadFile(std::string(BATCHD_SOURCE_DIR) + "/docs/observability.md").value_or("");
    std::vector<std::string> examples;
    std::istringstream lines(doc);
    std::string line, current;
    bool in_block = false;
    auto flush = [&] {
      if (!current.empty()) examples.push_back(current);
      current.clear();
    };
    while (std::getline(lines, line)) {
      if (!in_block && line == "```promql") {
        in_block = true;
      } else if (in_block && line == "```") {
        flush();
        in_block = false;
      } else if (in_block) {
        if (line.empty() || line[0] == '#') flush();
        else current += line + "\n";
      }
    }
    EXPECT_GE(examples.size(), 15u);
    for (const auto& q : examples) {
      PromAnswer a = PromQuery(q);
      EXPECT_TRUE(a.ok) << "docs/observability.md example: " << a.error << "\n" << q;
    }
  }

  // --- promtool check metrics accepts the exposition --------------------------------------
  {
    const std::string body = Scrape();
    ASSERT_NE(body.find("batchd_runs_total"), std::string::npos) << body;
    WriteFile(tmp() / "metrics.txt", body);
    ProcResult r = RunProcess({"/bin/sh", "-c", "'" + promtool_bin_ + "' check metrics < '" + (tmp() / "metrics.txt") + "'"});
    EXPECT_EQ(r.exit_code, 0) << r.Describe();
    EXPECT_EQ(r.out + r.err, "") << "promtool check metrics:\n" << r.out << r.err;
    // SPEC 7: labels are only dag, task, state, outcome, trigger, pool, kind (and le,
    // version of the histograms and build info).
    static const std::regex kLabel(R"(([a-zA-Z_][a-zA-Z0-9_]*)=")");
    const std::set<std::string> allowed = {"dag", "task", "state", "outcome", "trigger", "pool", "kind", "le", "version"};
    std::istringstream lines(body);
    std::string line;
    while (std::getline(lines, line)) {
      if (line.empty() || line[0] == '#') continue;
      auto brace = line.find('{');
      if (brace == std::string::npos) continue;
      std::string labels = line.substr(brace, line.find('}') - brace);
      for (std::sregex_iterator it(labels.begin(), labels.end(), kLabel), end; it != end; ++it)
        EXPECT_TRUE(allowed.count((*it)[1].str())) << "label " << (*it)[1].str() << " in: " << line;
    }
  }

  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  EXPECT_LT(wall, 40.0 * kSlowdown) << "the scenario took " << wall << " s";
}

// The shipped config as the docs run it (prometheus --config.file=config/prometheus/
// prometheus.yml from the source directory): it loads, and its relative rule_files finds
// every rule of batchd.rules.yml.
TEST_F(PrometheusTest, ShippedConfigLoadsTheRules) {
  ASSERT_FALSE(prometheus_bin_.empty()) << "prometheus is not installed (bash scripts/deps.sh)";
  ASSERT_FALSE(curl_bin_.empty()) << "curl is not installed (bash scripts/deps.sh)";
  ASSERT_TRUE(StartPrometheus("config/prometheus/prometheus.yml", BATCHD_SOURCE_DIR));
  Json j = PromApi("rules", {});
  ASSERT_EQ(j.value("status", ""), "success") << j.dump();
  std::set<std::string> names;
  for (const auto& g : j["data"]["groups"])
    for (const auto& r : g["rules"]) names.insert(r.value("name", ""));
  std::set<std::string> want;
  for (const auto& r : LoadRules()) want.insert(r.name);
  EXPECT_EQ(names, want);
  // The configuration as loaded: the batchd job and its target.
  Json status = PromApi("status/config", {});
  ASSERT_EQ(status.value("status", ""), "success") << status.dump();
  YAML::Node loaded = YAML::Load(status["data"].value("yaml", ""));
  ASSERT_EQ(loaded["scrape_configs"].size(), 1u) << status.dump();
  EXPECT_EQ(loaded["scrape_configs"][0]["job_name"].as<std::string>(""), "batchd");
  EXPECT_EQ(loaded["scrape_configs"][0]["metrics_path"].as<std::string>(""), "/metrics");
  EXPECT_EQ(loaded["scrape_configs"][0]["static_configs"][0]["targets"][0].as<std::string>(""), "127.0.0.1:9464");
}

}  // namespace
}  // namespace batchd::e2e
