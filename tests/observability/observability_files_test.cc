// Static checks of the observability files the project ships (docs/observability.md):
// the Grafana dashboard docs/grafana/batchd.json is an importable Grafana 10 dashboard
// whose every panel queries the selected data source and DAGs; the Prometheus rules in
// config/prometheus/batchd.rules.yml name only SPEC section 7 metrics and have the labels
// and annotations the runbooks rely on; docs/observability.md documents every metric and
// has the runbook section each alert links to. What the queries return from a real
// daemon is tested end to end in tests/e2e/prometheus_e2e_test.cc; promtool checks and
// unit-tests the rules (tests/CMakeLists.txt).

#include <cctype>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace {

using Json = nlohmann::json;

std::string Source(const std::string& rel) { return std::string(BATCHD_SOURCE_DIR) + "/" + rel; }

std::string Slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// SPEC section 7: every metric and whether it has a `dag` label.
const std::map<std::string, bool>& SpecMetrics() {
  static const std::map<std::string, bool> m = {
      {"batchd_runs_total", true},
      {"batchd_run_duration_seconds", true},
      {"batchd_run_schedule_delay_seconds", true},
      {"batchd_runs_active", true},
      {"batchd_task_attempts_total", true},
      {"batchd_task_retries_total", true},
      {"batchd_task_duration_seconds", true},
      {"batchd_task_cpu_seconds_total", true},
      {"batchd_partitions_total", true},
      {"batchd_dead_letters", true},
      {"batchd_idempotent_skips_total", true},
      {"batchd_duplicate_triggers_total", true},
      {"batchd_slo_misses_total", true},
      {"batchd_dag_last_success_timestamp_seconds", true},
      {"batchd_dag_freshness_slo_seconds", true},
      {"batchd_tasks_running", false},
      {"batchd_tasks_queued", false},
      {"batchd_executor_workers", false},
      {"batchd_pool_slots", false},
      {"batchd_pool_slots_used", false},
      {"batchd_build_info", false},
      {"process_resident_memory_bytes", false},
      {"process_cpu_seconds_total", false},
      {"process_start_time_seconds", false},
  };
  return m;
}
const std::set<std::string> kHistograms = {"batchd_run_duration_seconds", "batchd_run_schedule_delay_seconds",
                                           "batchd_task_duration_seconds"};

// The SPEC metric a series name belongs to (histogram suffixes taken off), or "".
std::string SpecMetricOf(const std::string& name) {
  if (SpecMetrics().count(name)) return name;
  for (const char* suffix : {"_bucket", "_count", "_sum"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      std::string base = name.substr(0, name.size() - s.size());
      if (kHistograms.count(base)) return base;
    }
  }
  return "";
}

struct Rule {
  std::string name;
  bool alert = false;
  YAML::Node node;
};

std::vector<Rule> LoadRules() {
  std::vector<Rule> rules;
  YAML::Node doc = YAML::LoadFile(Source("config/prometheus/batchd.rules.yml"));
  for (const auto& group : doc["groups"])
    for (const auto& r : group["rules"]) {
      Rule rule;
      rule.alert = static_cast<bool>(r["alert"]);
      rule.name = (rule.alert ? r["alert"] : r["record"]).as<std::string>();
      rule.node = YAML::Node(r);
      rules.push_back(rule);
    }
  return rules;
}

// Metric names an expression selects: identifiers that are neither functions, keywords,
// label names in a selector or by/on lists, nor durations.
std::vector<std::pair<std::string, size_t>> SelectedNames(const std::string& expr) {
  static const std::set<std::string> kWords = {
      "sum", "min", "max", "avg", "count", "by", "without", "on", "ignoring", "group_left", "group_right",
      "and", "or", "unless", "offset", "bool", "rate", "increase", "irate", "delta", "histogram_quantile",
      "clamp_min", "clamp_max", "time", "vector", "sort_desc", "sort", "round", "abs", "label_replace",
      "topk", "bottomk", "quantile", "stddev", "absent", "max_over_time", "min_over_time", "avg_over_time",
      "last_over_time", "inf", "nan", "timestamp", "scalar"};
  std::vector<std::pair<std::string, size_t>> out;
  int brace = 0, paren_list = 0;
  for (size_t i = 0; i < expr.size();) {
    char c = expr[i];
    if (c == '"') {  // a string: skip it
      for (++i; i < expr.size() && expr[i] != '"'; ++i)
        if (expr[i] == '\\') ++i;
      ++i;
      continue;
    }
    if (c == '[') {  // a range or subquery duration
      while (i < expr.size() && expr[i] != ']') ++i;
      continue;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {  // a number or duration
      while (i < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[i])) || expr[i] == '.')) ++i;
      continue;
    }
    if (c == '{') ++brace;
    if (c == '}') --brace;
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':' ||
        (c == '$' && i + 1 < expr.size())) {
      size_t start = i;
      while (i < expr.size() && (std::isalnum(static_cast<unsigned char>(expr[i])) || expr[i] == '_' ||
                                 expr[i] == ':' || expr[i] == '$'))
        ++i;
      std::string word = expr.substr(start, i - start);
      if (brace > 0 || word[0] == '$' || kWords.count(word)) {
        if (word == "by" || word == "on" || word == "without" || word == "ignoring" || word == "group_left" ||
            word == "group_right")
          paren_list = 1;  // the next (...) holds label names
        continue;
      }
      if (paren_list == 2) continue;  // a label name in by (...), on (...)
      out.emplace_back(word, i);
      continue;
    }
    if (c == '(' && paren_list == 1) paren_list = 2;
    if (c == ')' && paren_list == 2) paren_list = 0;
    ++i;
  }
  return out;
}

// The selector {...} right after position `end` of a name in `expr` ("" when none).
std::string SelectorAfter(const std::string& expr, size_t end) {
  if (end >= expr.size() || expr[end] != '{') return "";
  size_t close = expr.find('}', end);
  return close == std::string::npos ? "" : expr.substr(end, close - end + 1);
}

// GitHub's anchor of a Markdown heading: lower case, spaces to '-', punctuation dropped.
std::string Anchor(const std::string& heading) {
  std::string a;
  for (char c : heading) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-') a += static_cast<char>(std::tolower(c));
    else if (c == ' ') a += '-';
  }
  return a;
}

std::set<std::string> DocAnchors(const std::string& markdown) {
  std::set<std::string> anchors;
  std::istringstream lines(markdown);
  std::string line;
  bool fence = false;
  while (std::getline(lines, line)) {
    if (line.rfind("```", 0) == 0) fence = !fence;
    if (fence || line.empty() || line[0] != '#') continue;
    size_t text = line.find_first_not_of('#');
    if (text == std::string::npos) continue;
    anchors.insert(Anchor(line.substr(line.find_first_not_of(' ', text))));
  }
  return anchors;
}

// --- Grafana dashboard --------------------------------------------------------------

class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dash_ = Json::parse(Slurp(Source("docs/grafana/batchd.json")), nullptr, /*allow_exceptions=*/false);
    ASSERT_TRUE(dash_.is_object()) << "docs/grafana/batchd.json is not a JSON object";
  }
  // Every panel, rows included, in order (nested row panels too).
  std::vector<Json> Panels() const {
    std::vector<Json> out;
    for (const auto& p : dash_["panels"]) {
      out.push_back(p);
      for (const auto& q : p.value("panels", Json::array())) out.push_back(q);
    }
    return out;
  }
  Json dash_;
};

TEST_F(DashboardTest, IsAGrafana10DashboardWithItsVariables) {
  EXPECT_GE(dash_.value("schemaVersion", 0), 38);
  EXPECT_EQ(dash_.value("uid", ""), "batchd");
  EXPECT_FALSE(dash_.value("title", "").empty());
  EXPECT_TRUE(dash_["id"].is_null()) << "an exported dashboard has id null, so import creates it";
  ASSERT_TRUE(dash_["templating"]["list"].is_array());
  std::map<std::string, Json> vars;
  for (const auto& v : dash_["templating"]["list"]) vars[v.value("name", "")] = v;
  ASSERT_TRUE(vars.count("datasource"));
  EXPECT_EQ(vars["datasource"]["type"], "datasource");
  EXPECT_EQ(vars["datasource"]["query"], "prometheus");
  ASSERT_TRUE(vars.count("dag"));
  const Json& dag = vars["dag"];
  EXPECT_EQ(dag["type"], "query");
  EXPECT_EQ(dag["datasource"]["uid"], "${datasource}");
  EXPECT_EQ(dag["definition"], "label_values(batchd_runs_total, dag)");
  EXPECT_EQ(dag["query"]["query"], "label_values(batchd_runs_total, dag)");
  EXPECT_EQ(dag["multi"], true);
  EXPECT_EQ(dag["includeAll"], true);
  EXPECT_EQ(dag["allValue"], ".*");
}

TEST_F(DashboardTest, RowsAreExecutiveOnCallDebug) {
  std::vector<std::string> rows;
  for (const auto& p : dash_["panels"])
    if (p.value("type", "") == "row") rows.push_back(p.value("title", ""));
  EXPECT_EQ(rows, (std::vector<std::string>{"Executive", "On-call", "Debug"}));
  // Each row is followed by panels before the next one.
  std::string current;
  std::map<std::string, int> per_row;
  for (const auto& p : dash_["panels"]) {
    if (p.value("type", "") == "row") current = p.value("title", "");
    else per_row[current]++;
  }
  for (const auto& r : rows) EXPECT_GE(per_row[r], 3) << "row " << r;
  EXPECT_EQ(per_row[""], 0) << "panels before the first row";
}

TEST_F(DashboardTest, EveryPanelQueriesTheChosenDataSourceAndDags) {
  std::set<int> ids;
  std::set<std::string> spec_used;
  for (const auto& p : Panels()) {
    const std::string title = p.value("title", "");
    ASSERT_TRUE(p["id"].is_number_integer()) << title;
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate panel id in " << title;
    ASSERT_TRUE(p["gridPos"].is_object()) << title;
    EXPECT_LE(p["gridPos"].value("x", 0) + p["gridPos"].value("w", 0), 24) << title;
    if (p.value("type", "") == "row") continue;
    EXPECT_EQ(p["datasource"]["uid"], "${datasource}") << title;
    EXPECT_FALSE(p.value("description", "").empty()) << title;
    ASSERT_TRUE(p["targets"].is_array() && !p["targets"].empty()) << title << " has no targets";
    std::set<std::string> refs;
    for (const auto& t : p["targets"]) {
      EXPECT_EQ(t["datasource"]["uid"], "${datasource}") << title;
      EXPECT_TRUE(refs.insert(t.value("refId", "")).second) << title << ": duplicate refId";
      const std::string expr = t.value("expr", "");
      ASSERT_FALSE(expr.empty()) << title << " has a target without expr";
      for (const auto& [name, end] : SelectedNames(expr)) {
        std::string spec = SpecMetricOf(name);
        bool recorded = name.find(':') != std::string::npos;
        EXPECT_TRUE(!spec.empty() || recorded) << title << ": " << name << " is not a SPEC section 7 metric";
        if (!spec.empty()) spec_used.insert(spec);
        bool has_dag = (!spec.empty() && SpecMetrics().at(spec)) || name.rfind("dag", 0) == 0;
        if (has_dag) {
          EXPECT_NE(SelectorAfter(expr, end).find("dag=~\"$dag\""), std::string::npos)
              << title << ": " << name << " is not filtered by dag=~\"$dag\" in " << expr;
        }
      }
    }
  }
  // What the rows promise (on-call: queue, running, dead letters, retries; debug: task
  // duration, CPU, pools).
  for (const char* m : {"batchd_tasks_queued", "batchd_tasks_running", "batchd_dead_letters", "batchd_task_retries_total",
                        "batchd_task_duration_seconds", "batchd_task_cpu_seconds_total", "batchd_pool_slots",
                        "batchd_pool_slots_used", "batchd_dag_freshness_slo_seconds", "batchd_slo_misses_total"})
    EXPECT_TRUE(spec_used.count(m)) << "no panel shows " << m;
}

// --- Prometheus rules -------------------------------------------------------------------

TEST(PrometheusRulesFile, AlertsHaveSeverityAndRunbookAnnotations) {
  const std::string doc = Slurp(Source("docs/observability.md"));
  ASSERT_FALSE(doc.empty());
  const std::set<std::string> anchors = DocAnchors(doc);
  std::set<std::string> alerts;
  for (const auto& r : LoadRules()) {
    if (!r.alert) continue;
    alerts.insert(r.name);
    const std::string severity = r.node["labels"]["severity"].as<std::string>("");
    EXPECT_TRUE(severity == "warning" || severity == "critical") << r.name << ": severity '" << severity << "'";
    for (const char* a : {"summary", "description", "runbook"})
      EXPECT_FALSE(r.node["annotations"][a].as<std::string>("").empty()) << r.name << " has no " << a;
    std::string lower;
    for (char c : r.name) lower += static_cast<char>(std::tolower(c));
    EXPECT_EQ(r.node["annotations"]["runbook"].as<std::string>(""), "docs/observability.md#" + lower) << r.name;
    EXPECT_TRUE(anchors.count(lower)) << "docs/observability.md has no section #" << lower << " for " << r.name;
  }
  EXPECT_EQ(alerts, (std::set<std::string>{"BatchdRunFailed", "BatchdDagStale", "BatchdDeadLetters",
                                           "BatchdDurationSloMissed", "BatchdSchedulerLag", "BatchdDown"}));
}

TEST(PrometheusRulesFile, RecordingRulesFollowTheNamingConventionAndUseSpecMetrics) {
  static const std::regex kRecordName(R"(^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$)");
  std::set<std::string> recorded;
  for (const auto& r : LoadRules()) {
    if (!r.alert) {
      EXPECT_TRUE(std::regex_match(r.name, kRecordName)) << r.name;
      EXPECT_TRUE(recorded.insert(r.name).second) << "recorded twice: " << r.name;
    }
    const std::string expr = r.node["expr"].as<std::string>();
    for (const auto& [name, end] : SelectedNames(expr)) {
      (void)end;
      bool known = !SpecMetricOf(name).empty() || recorded.count(name) || name == "up";
      EXPECT_TRUE(known) << r.name << ": " << name << " is neither a SPEC section 7 metric nor recorded above";
    }
  }
  for (const char* want : {"dag:batchd_run_success_ratio:rate1h", "dag:batchd_run_duration_seconds:p95_rate1h",
                           "dag:batchd_freshness_age_seconds:now"})
    EXPECT_TRUE(recorded.count(want)) << want;
}

// --- docs ------------------------------------------------------------------------------

TEST(ObservabilityDoc, DocumentsEveryMetricAndIsLinkedFromTheReadme) {
  const std::string doc = Slurp(Source("docs/observability.md"));
  ASSERT_FALSE(doc.empty());
  for (const auto& [metric, has_dag] : SpecMetrics()) {
    (void)has_dag;
    EXPECT_NE(doc.find("`" + metric + "`"), std::string::npos) << "docs/observability.md does not document " << metric;
  }
  for (const char* needle : {"config/prometheus/prometheus.yml", "config/prometheus/batchd.rules.yml",
                             "docs/grafana/batchd.json", "log_format: json", "max_duration", "freshness"})
    EXPECT_NE(doc.find(needle), std::string::npos) << needle;
  EXPECT_NE(Slurp(Source("README.md")).find("(docs/observability.md)"), std::string::npos);
}

}  // namespace
