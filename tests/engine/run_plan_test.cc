// RunPlan: one run's instance graph, driven by hand. DAGs are inline YAML; instances come
// from MakeInstances with fake ids, as the engine would get them from the store.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/time.h"
#include "dag/loader.h"
#include "engine/run_plan.h"

namespace batchd::engine {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;
using namespace std::chrono_literals;

dag::DagPtr MustLoad(std::string_view yaml) {
  dag::LoadResult r = dag::LoadDagString(yaml, "d.yaml");
  for (const auto& d : r.errors) ADD_FAILURE() << d.ToString();
  return r.dag;
}

SysSeconds At(std::string_view iso) {
  auto t = ParseInstant(iso, *LookupZone("UTC"));
  EXPECT_TRUE(t.ok()) << iso;
  return t.ok() ? *t : SysSeconds{};
}

store::RunRecord MakeRun(const dag::Dag& dag, std::string params_json = "{}") {
  store::RunRecord run;
  run.run_id = "run1";
  run.dag = dag.name;
  run.dag_hash = dag.content_hash;
  run.run_key = dag.name + "@x";
  run.trigger = "manual";
  run.state = RunState::kRunning;
  run.logical_date = At("2026-03-28T23:30:00Z");
  run.interval_start = At("2026-03-27T23:30:00Z");
  run.interval_end = At("2026-03-28T23:30:00Z");
  run.params_json = std::move(params_json);
  return run;
}

// The partitions of every task whose partitions are static (values/range/none).
std::map<std::string, std::vector<std::string>> StaticPartitions(const dag::Dag& dag) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& t : dag.tasks) out[t.id] = dag::StaticPartitionNames(t.partitions);
  return out;
}

// A plan with ids 101, 102, ... in MakeInstances order, propagated once as the engine
// does at start.
std::unique_ptr<RunPlan> MakePlan(const dag::DagPtr& dag, std::string params_json = "{}") {
  store::RunRecord run = MakeRun(*dag, std::move(params_json));
  auto instances = MakeInstances(*dag, run, StaticPartitions(*dag));
  for (size_t i = 0; i < instances.size(); ++i) instances[i].id = 101 + static_cast<int64_t>(i);
  auto plan = std::make_unique<RunPlan>(dag, run, std::move(instances));
  plan->Propagate();
  return plan;
}

size_t Idx(const RunPlan& plan, const std::string& task, const std::string& partition = "-") {
  for (size_t i = 0; i < plan.size(); ++i)
    if (plan.instance(i).task == task && plan.instance(i).partition == partition) return i;
  ADD_FAILURE() << "no instance " << task << "[" << partition << "]";
  return 0;
}

std::string StateOf(const RunPlan& plan, const std::string& task, const std::string& partition = "-") {
  const auto& r = plan.instance(Idx(plan, task, partition));
  std::string s(ToString(r.state));
  if (!r.reason.empty()) s += "(" + r.reason + ")";
  return s;
}

// Every instance as "task[partition]=state(reason)", in index order.
std::vector<std::string> States(const RunPlan& plan) {
  std::vector<std::string> out;
  for (size_t i = 0; i < plan.size(); ++i) {
    const auto& r = plan.instance(i);
    std::string s = r.task + "[" + r.partition + "]=" + std::string(ToString(r.state));
    if (!r.reason.empty()) s += "(" + r.reason + ")";
    out.push_back(s);
  }
  return out;
}

// Runs a queued instance to `end` as the engine would (queued -> running -> end) and
// propagates.
void Finish(RunPlan& plan, const std::string& task, const std::string& partition, InstanceState end,
            std::string reason = "") {
  size_t i = Idx(plan, task, partition);
  ASSERT_EQ(plan.instance(i).state, InstanceState::kQueued) << task << "[" << partition << "]";
  plan.Transition(i, InstanceState::kRunning);
  plan.Transition(i, end, std::move(reason));
  plan.Propagate();
}
void Succeed(RunPlan& plan, const std::string& task, const std::string& partition = "-") {
  Finish(plan, task, partition, InstanceState::kSuccess);
}
void Fail(RunPlan& plan, const std::string& task, const std::string& partition = "-") {
  Finish(plan, task, partition, InstanceState::kFailed);
}

std::vector<std::string> QueuedNames(const RunPlan& plan) {
  std::vector<std::string> out;
  for (size_t i : plan.Queued()) out.push_back(plan.instance(i).task + "[" + plan.instance(i).partition + "]");
  return out;
}

// --- MakeInstances ------------------------------------------------------------------------

TEST(MakeInstancesTest, OneInstancePerTaskAndPartitionInFileOrder) {
  auto dag = MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {values: [us, eu]}
  - id: b
    command: "true"
  - id: c
    command: "true"
    partitions: {range: [0, 3]}
)yaml");
  ASSERT_NE(dag, nullptr);
  auto run = MakeRun(*dag);
  auto instances = MakeInstances(*dag, run, StaticPartitions(*dag));
  std::vector<std::string> names;
  for (const auto& r : instances) {
    names.push_back(r.task + "[" + r.partition + "]");
    EXPECT_EQ(r.run_id, "run1");
    EXPECT_EQ(r.state, InstanceState::kPending);
    EXPECT_EQ(r.attempts, 0);
    EXPECT_EQ(r.id, 0);
  }
  EXPECT_THAT(names, ElementsAre("a[us]", "a[eu]", "b[-]", "c[0]", "c[1]", "c[2]"));
}

TEST(MakeInstancesTest, TaskMissingFromThePartitionMapGetsTheDashPartition) {
  auto dag = MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto instances = MakeInstances(*dag, MakeRun(*dag), {});
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0].partition, "-");
}

TEST(MakeInstancesTest, DefaultIdempotencyKeyIsDagTaskPartitionLogicalDate) {
  auto dag = MustLoad(R"yaml(dag: billing
timezone: Europe/Berlin
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us, eu]}
  - id: publish
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto instances = MakeInstances(*dag, MakeRun(*dag), StaticPartitions(*dag));
  ASSERT_EQ(instances.size(), 3u);
  // 2026-03-28T23:30Z is 00:30 on the 29th in Berlin (CET, +01:00).
  EXPECT_EQ(instances[0].idempotency_key, "billing/extract/us/2026-03-29T00:30:00+01:00");
  EXPECT_EQ(instances[1].idempotency_key, "billing/extract/eu/2026-03-29T00:30:00+01:00");
  EXPECT_EQ(instances[2].idempotency_key, "billing/publish/-/2026-03-29T00:30:00+01:00");
}

TEST(MakeInstancesTest, CustomIdempotencyKeyTemplateSeesRunVarsAndParamOverrides) {
  auto dag = MustLoad(R"yaml(dag: billing
timezone: Europe/Berlin
params: {region: eu}
tasks:
  - id: extract
    command: "true"
    partitions: {values: [p1]}
    idempotency_key: "{{ds}}:{{ params.region }}:{{ partition }}:{{ task }}:{{ attempt }}"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto plain = MakeInstances(*dag, MakeRun(*dag), StaticPartitions(*dag));
  ASSERT_EQ(plain.size(), 1u);
  EXPECT_EQ(plain[0].idempotency_key, "2026-03-29:eu:p1:extract:1");
  auto overridden = MakeInstances(*dag, MakeRun(*dag, R"({"region":"us"})"), StaticPartitions(*dag));
  EXPECT_EQ(overridden[0].idempotency_key, "2026-03-29:us:p1:extract:1");
}

TEST(MakeInstancesTest, IdempotencyKeysAreNotShellQuoted) {
  auto dag = MustLoad(R"yaml(dag: backup
params: {trigger_file: none}
tasks:
  - id: a
    command: "true"
    idempotency_key: "{{ dag }}/{{ params.trigger_file }}"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto instances = MakeInstances(*dag, MakeRun(*dag, R"({"trigger_file":"/in/x$(touch pwned) it's.csv"})"),
                                 StaticPartitions(*dag));
  ASSERT_EQ(instances.size(), 1u);
  EXPECT_EQ(instances[0].idempotency_key, "backup//in/x$(touch pwned) it's.csv");
}

// --- params in the environment ----------------------------------------------------------

TEST(ParamEnvironmentTest, UpperCasesNamesAndReplacesOtherBytes) {
  EXPECT_THAT(ParamEnvironment({{"region", "eu"}, {"trigger_file", "/in/a b.csv"}, {"my-param.x", "1"},
                                {"Ab9", "$(x) 'y'\n"}}),
              ElementsAre("BATCHD_PARAM_AB9=$(x) 'y'\n", "BATCHD_PARAM_MY_PARAM_X=1", "BATCHD_PARAM_REGION=eu",
                          "BATCHD_PARAM_TRIGGER_FILE=/in/a b.csv"));
  EXPECT_THAT(ParamEnvironment({}), IsEmpty());
  EXPECT_THAT(ParamEnvironment({{"\xc3\xa9t\xc3\xa9", "v"}}), ElementsAre("BATCHD_PARAM___T__=v"));
  EXPECT_THAT(ParamEnvironment({{"n", std::string("a\0b", 3)}}), ElementsAre("BATCHD_PARAM_N=ab"));
}

TEST(ParamEnvironmentTest, TheLaterNameWinsWhenTwoMapToOneVariable) {
  EXPECT_THAT(ParamEnvironment({{"a-b", "dash"}, {"a_b", "underscore"}}), ElementsAre("BATCHD_PARAM_A_B=underscore"));
}

TEST(RunPlanTest, TaskEnvironmentHoldsEveryParamWithTriggerOverrides) {
  auto dag = MustLoad(R"yaml(dag: d
params: {region: eu, keep: "7"}
env: {LANG: C}
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    env: {X: y}
)yaml");
  ASSERT_NE(dag, nullptr);
  auto plan = MakePlan(dag, R"j({"region":"us $(touch pwned)","extra":"e"})j");
  std::vector<std::string> base = {"PATH=/bin", "BATCHD_PARAM_STALE=1", "BATCHD_PARAM_KEEP=inherited"};
  EXPECT_THAT(plan->TaskEnvironment(0, base),
              ElementsAre("BATCHD_PARAM_EXTRA=e", "BATCHD_PARAM_KEEP=7", "BATCHD_PARAM_REGION=us $(touch pwned)",
                          "LANG=C", "PATH=/bin"));
  EXPECT_THAT(plan->TaskEnvironment(1, base),
              ElementsAre("BATCHD_PARAM_EXTRA=e", "BATCHD_PARAM_KEEP=7", "BATCHD_PARAM_REGION=us $(touch pwned)",
                          "LANG=C", "PATH=/bin", "X=y"));
}

// --- template variables -------------------------------------------------------------------

TEST(RunTemplateVarsTest, DatesAreRenderedInTheDagsZone) {
  auto dag = MustLoad(R"yaml(dag: billing
timezone: Europe/Berlin
tasks:
  - id: a
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  store::RunRecord run = MakeRun(*dag);
  run.logical_date = At("2026-03-28T23:30:00Z");     // 00:30 CET on the 29th
  run.interval_start = At("2026-03-27T23:30:00Z");
  run.interval_end = At("2026-03-29T01:30:00Z");     // after the spring-forward: CEST
  auto vars = RunTemplateVars(*dag, run);
  EXPECT_EQ(vars["dag"], "billing");
  EXPECT_EQ(vars["run_id"], "run1");
  EXPECT_EQ(vars["logical_date"], "2026-03-29T00:30:00+01:00");
  EXPECT_EQ(vars["ds"], "2026-03-29");
  EXPECT_EQ(vars["ts"], "2026-03-28T23:30:00Z");
  EXPECT_EQ(vars["data_interval_start"], "2026-03-28T00:30:00+01:00");
  EXPECT_EQ(vars["data_interval_end"], "2026-03-29T03:30:00+02:00");
  // Per-instance variables are not run variables.
  EXPECT_EQ(vars.count("task"), 0u);
  EXPECT_EQ(vars.count("partition"), 0u);
  EXPECT_EQ(vars.count("attempt"), 0u);
}

TEST(RunTemplateVarsTest, UtcIsTheDefaultZone) {
  auto dag = MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto vars = RunTemplateVars(*dag, MakeRun(*dag));
  EXPECT_EQ(vars["logical_date"], "2026-03-28T23:30:00+00:00");
  EXPECT_EQ(vars["ds"], "2026-03-28");
  EXPECT_EQ(vars["data_interval_start"], "2026-03-27T23:30:00+00:00");
  EXPECT_EQ(vars["data_interval_end"], "2026-03-28T23:30:00+00:00");
}

TEST(RunTemplateVarsTest, RunParamsOverrideDagParamsAndAddNewOnes) {
  auto dag = MustLoad(R"yaml(dag: d
params: {region: eu, limit: 10}
tasks:
  - id: a
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto vars = RunTemplateVars(*dag, MakeRun(*dag, R"({"region":"us","trigger_file":"/in/x.csv","n":5})"));
  EXPECT_EQ(vars["params.region"], "us");
  EXPECT_EQ(vars["params.limit"], "10");
  EXPECT_EQ(vars["params.trigger_file"], "/in/x.csv");
  EXPECT_EQ(vars["params.n"], "5");
}

TEST(RunTemplateVarsTest, MalformedParamsJsonKeepsTheDagDefaults) {
  auto dag = MustLoad(R"yaml(dag: d
params: {region: eu}
tasks:
  - id: a
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto vars = RunTemplateVars(*dag, MakeRun(*dag, "{not json"));
  EXPECT_EQ(vars["params.region"], "eu");
}

TEST(RunPlanTest, VarsAreTheRunTemplateVars) {
  auto dag = MustLoad(R"yaml(dag: d
timezone: Asia/Tokyo
params: {k: v}
tasks:
  - id: a
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  auto plan = MakePlan(dag, R"({"k":"w"})");
  EXPECT_EQ(plan->vars(), RunTemplateVars(*dag, plan->run()));
  EXPECT_EQ(plan->vars().at("ds"), "2026-03-29");  // 08:30 in Tokyo
  EXPECT_EQ(plan->vars().at("params.k"), "w");
}

// --- partition edges ----------------------------------------------------------------------

constexpr char kSameYaml[] = R"yaml(dag: d
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us, eu, apac]}
  - id: transform
    command: "true"
    partitions: {values: [us, eu, apac]}
    depends_on:
      - task: extract
        partitions: same
)yaml";

TEST(RunPlanTest, SamePartitionEdgesLinkEqualNames) {
  auto plan = MakePlan(MustLoad(kSameYaml));
  EXPECT_THAT(QueuedNames(*plan), ElementsAre("extract[us]", "extract[eu]", "extract[apac]"));
  Succeed(*plan, "extract", "eu");
  EXPECT_EQ(StateOf(*plan, "transform", "eu"), "queued");
  EXPECT_EQ(StateOf(*plan, "transform", "us"), "pending");
  EXPECT_EQ(StateOf(*plan, "transform", "apac"), "pending");
  Succeed(*plan, "extract", "apac");
  EXPECT_EQ(StateOf(*plan, "transform", "apac"), "queued");
  EXPECT_EQ(StateOf(*plan, "transform", "us"), "pending");
}

TEST(RunPlanTest, SamePartitionFailureOnlyAffectsItsOwnPartition) {
  auto plan = MakePlan(MustLoad(kSameYaml));
  Fail(*plan, "extract", "us");
  Succeed(*plan, "extract", "eu");
  EXPECT_EQ(StateOf(*plan, "transform", "us"), "upstream_failed(upstream extract[us] failed)");
  EXPECT_EQ(StateOf(*plan, "transform", "eu"), "queued");
  EXPECT_EQ(StateOf(*plan, "transform", "apac"), "pending");
}

TEST(RunPlanTest, SamePartitionEdgeWithoutAMatchingUpstreamPartitionDoesNotDropTheDependency) {
  // Two tasks may share a partitions command (validation accepts `same` then), but each
  // run expands it per task, so the sets can differ at run time. A downstream partition
  // without a partner must not lose its dependency and start before its upstream task.
  auto dag = MustLoad(kSameYaml);
  ASSERT_NE(dag, nullptr);
  store::RunRecord run = MakeRun(*dag);
  auto instances = MakeInstances(*dag, run, {{"extract", {"us", "eu"}}, {"transform", {"us", "eu", "apac"}}});
  for (size_t i = 0; i < instances.size(); ++i) instances[i].id = 1 + static_cast<int64_t>(i);
  RunPlan plan(dag, run, instances);
  plan.Propagate();
  EXPECT_EQ(StateOf(plan, "transform", "us"), "pending");
  EXPECT_NE(StateOf(plan, "transform", "apac"), "queued")
      << "transform[apac] has no extract[apac] and was queued before any extract partition ran";
}

TEST(RunPlanTest, AllPartitionsEdgesWaitForEveryUpstreamPartition) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us, eu]}
  - id: transform
    command: "true"
    partitions: {values: [x, y]}
    depends_on: [extract]
)yaml"));
  Succeed(*plan, "extract", "us");
  EXPECT_EQ(StateOf(*plan, "transform", "x"), "pending");
  EXPECT_EQ(StateOf(*plan, "transform", "y"), "pending");
  Succeed(*plan, "extract", "eu");
  EXPECT_EQ(StateOf(*plan, "transform", "x"), "queued");
  EXPECT_EQ(StateOf(*plan, "transform", "y"), "queued");
}

TEST(RunPlanTest, AllPartitionsEdgeFailsEveryDownstreamPartitionOnOneFailure) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us, eu]}
  - id: transform
    command: "true"
    partitions: {values: [us, eu]}
    depends_on:
      - task: extract
        partitions: all
)yaml"));
  Fail(*plan, "extract", "us");
  // Decided at once, without waiting for extract[eu].
  EXPECT_EQ(StateOf(*plan, "transform", "us"), "upstream_failed(upstream extract[us] failed)");
  EXPECT_EQ(StateOf(*plan, "transform", "eu"), "upstream_failed(upstream extract[us] failed)");
  EXPECT_EQ(StateOf(*plan, "extract", "eu"), "queued");
}

TEST(RunPlanTest, FanInWaitsForEveryPartitionOfEveryUpstreamTask) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {range: [0, 3]}
  - id: b
    command: "true"
  - id: c
    command: "true"
    partitions: {values: [x, y]}
  - id: publish
    command: "true"
    depends_on: [a, b, c]
)yaml"));
  EXPECT_THAT(QueuedNames(*plan), ElementsAre("a[0]", "a[1]", "a[2]", "b[-]", "c[x]", "c[y]"));
  const std::vector<std::pair<std::string, std::string>> order = {
      {"a", "0"}, {"c", "y"}, {"b", "-"}, {"a", "2"}, {"c", "x"}, {"a", "1"}};
  for (size_t k = 0; k < order.size(); ++k) {
    EXPECT_EQ(StateOf(*plan, "publish"), "pending") << "after " << k << " upstreams";
    Succeed(*plan, order[k].first, order[k].second);
  }
  EXPECT_EQ(StateOf(*plan, "publish"), "queued");
}

// Deciding the fan-in costs O(1) per upstream ending (the counts are kept by Transition):
// at 100,000 upstream partitions a rescan of its upstream per ending would be 10^10 steps
// and this test would not end.
TEST(RunPlanTest, WideFanInIsDecidedInLinearTime) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: wide
    command: "true"
    partitions: {range: [0, 100000]}
  - id: all
    command: "true"
    depends_on: [wide]
  - id: done
    command: "true"
    depends_on: [wide]
    trigger_rule: all_done
  - id: any_failed
    command: "true"
    depends_on: [wide]
    trigger_rule: one_failed
)yaml"));
  const size_t first = Idx(*plan, "wide", "0");
  for (size_t k = 0; k < 100000; ++k) {
    const size_t i = first + k;
    plan->Transition(i, InstanceState::kRunning);
    plan->Transition(i, k == 99998 ? InstanceState::kFailed : InstanceState::kSuccess);
    plan->Propagate();
    if (k == 99997) {
      EXPECT_EQ(StateOf(*plan, "all"), "pending");
      EXPECT_EQ(StateOf(*plan, "any_failed"), "pending");
    }
  }
  EXPECT_EQ(StateOf(*plan, "all"), "upstream_failed(upstream wide[99998] failed)");
  EXPECT_EQ(StateOf(*plan, "done"), "queued");
  EXPECT_EQ(StateOf(*plan, "any_failed"), "queued");
  // A retry of the failed partition puts the decided ones back; its success decides them
  // from the counts as they are now.
  EXPECT_EQ(plan->ResetFailed(std::string("wide"), std::string("99998")), 2);
  EXPECT_EQ(StateOf(*plan, "all"), "pending");
  plan->Propagate();
  Succeed(*plan, "wide", "99998");
  EXPECT_EQ(StateOf(*plan, "all"), "queued");
}

// --- cascades -----------------------------------------------------------------------------

constexpr const char* kMarkDag = R"yaml(dag: d
tasks:
  - id: a
    command: "true"
    partitions: {values: [p, q]}
  - id: b
    command: "true"
    depends_on: [a]
  - id: c
    command: "true"
    depends_on: [b]
  - id: after
    command: "true"
    depends_on: [b]
    trigger_rule: one_failed
)yaml";

TEST(RunPlanTest, MarkingAFailedInstanceSuccessReopensWhatTheRulesDecidedDownstream) {
  auto plan = MakePlan(MustLoad(kMarkDag));
  Succeed(*plan, "a", "p");
  Fail(*plan, "a", "q");
  Succeed(*plan, "after");  // one_failed: ran because b is upstream_failed
  EXPECT_THAT(States(*plan), ElementsAre("a[p]=success", "a[q]=failed", "b[-]=upstream_failed(upstream a[q] failed)",
                                         "c[-]=upstream_failed(upstream a[q] failed)", "after[-]=success"));
  ASSERT_TRUE(plan->AllTerminal());
  (void)plan->TakeChanged();
  plan->Mark(Idx(*plan, "a", "q"), InstanceState::kSuccess, "marked success: by hand", SysMillis{});
  plan->Propagate();
  EXPECT_THAT(States(*plan), ElementsAre("a[p]=success", "a[q]=success(marked success: by hand)", "b[-]=queued",
                                         "c[-]=pending", "after[-]=success"))
      << "what ran downstream keeps its outcome";
  EXPECT_EQ(plan->TakeChanged().size(), 3u) << "a[q], b and c are persisted";
  Succeed(*plan, "b");
  Succeed(*plan, "c");
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kSuccess);
}

TEST(RunPlanTest, MarkingAnInstanceFailedDecidesARuleSkipAgain) {
  auto plan = MakePlan(MustLoad(kMarkDag));
  Succeed(*plan, "a", "p");
  Succeed(*plan, "a", "q");
  Succeed(*plan, "b");
  Succeed(*plan, "c");
  ASSERT_EQ(StateOf(*plan, "after"), "skipped(trigger_rule)");
  plan->Mark(Idx(*plan, "b"), InstanceState::kFailed, "marked failed: bad data", SysMillis{});
  plan->Propagate();
  EXPECT_THAT(States(*plan), ElementsAre("a[p]=success", "a[q]=success", "b[-]=failed(marked failed: bad data)",
                                         "c[-]=success", "after[-]=queued"));
  plan->Mark(Idx(*plan, "after"), InstanceState::kSkipped, "marked skipped: not today", SysMillis{});
  plan->Propagate();
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kFailed);
}

TEST(RunPlanTest, ClearedInstancesRunAgainWithTheirRetriesAfreshAndTheirForceFlag) {
  auto plan = MakePlan(MustLoad(kMarkDag));
  Succeed(*plan, "a", "p");
  Succeed(*plan, "a", "q");
  Fail(*plan, "b");
  ASSERT_EQ(StateOf(*plan, "c"), "upstream_failed(upstream b failed)");
  size_t q = Idx(*plan, "a", "q");
  plan->instance(q).attempts = 3;
  plan->Clear(q, /*force=*/true);
  plan->Propagate();
  EXPECT_EQ(StateOf(*plan, "a", "q"), "queued");
  EXPECT_EQ(plan->instance(q).retry_base, 3);
  EXPECT_TRUE(plan->instance(q).force);
  EXPECT_FALSE(plan->key_checked(q));
  EXPECT_EQ(StateOf(*plan, "b"), "failed") << "what ran downstream keeps its outcome";
  plan->Clear(Idx(*plan, "b"), /*force=*/false);
  plan->Propagate();
  EXPECT_EQ(StateOf(*plan, "b"), "pending") << "waits for a[q] again";
  EXPECT_EQ(StateOf(*plan, "c"), "pending") << "its upstream_failed was decided by b";
  Succeed(*plan, "a", "q");
  EXPECT_EQ(StateOf(*plan, "b"), "queued");
}

TEST(RunPlanTest, UpstreamFailedCascadesThroughTheWholeChain) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
  - id: c
    command: "true"
    depends_on: [b]
    partitions: {values: [p, q]}
  - id: d
    command: "true"
    depends_on: [c]
  - id: side
    command: "true"
)yaml"));
  Fail(*plan, "a");
  // Every instance of the cascade names the failure it comes from.
  EXPECT_THAT(States(*plan), ElementsAre("a[-]=failed", "b[-]=upstream_failed(upstream a failed)",
                                         "c[p]=upstream_failed(upstream a failed)",
                                         "c[q]=upstream_failed(upstream a failed)",
                                         "d[-]=upstream_failed(upstream a failed)", "side[-]=queued"));
  EXPECT_FALSE(plan->AllTerminal());
  Succeed(*plan, "side");
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kFailed);
}

TEST(RunPlanTest, TriggerRuleSkipCascadesDownstream) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: on_failure
    command: "true"
    depends_on: [a]
    trigger_rule: one_failed
  - id: after_alert
    command: "true"
    depends_on: [on_failure]
  - id: after_alert_2
    command: "true"
    depends_on: [after_alert]
  - id: report
    command: "true"
    depends_on: [after_alert]
    trigger_rule: all_done
)yaml"));
  Succeed(*plan, "a");
  EXPECT_EQ(StateOf(*plan, "on_failure"), "skipped(trigger_rule)");
  EXPECT_EQ(StateOf(*plan, "after_alert"), "skipped(trigger_rule)");
  EXPECT_EQ(StateOf(*plan, "after_alert_2"), "skipped(trigger_rule)");
  EXPECT_EQ(StateOf(*plan, "report"), "queued");  // all_done runs after a skip
  Succeed(*plan, "report");
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kSuccess);
}

TEST(RunPlanTest, OneFailedCleanupTaskRunsWhenAnUpstreamFails) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: load
    command: "true"
    partitions: {values: [us, eu]}
  - id: publish
    command: "true"
    depends_on: [load]
  - id: cleanup
    command: "true"
    depends_on: [load]
    trigger_rule: one_failed
)yaml"));
  Succeed(*plan, "load", "us");
  EXPECT_EQ(StateOf(*plan, "cleanup"), "pending");
  Fail(*plan, "load", "eu");
  EXPECT_EQ(StateOf(*plan, "cleanup"), "queued");
  EXPECT_EQ(StateOf(*plan, "publish"), "upstream_failed(upstream load[eu] failed)");
  Succeed(*plan, "cleanup");
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kFailed);  // the cleanup succeeding does not hide the failure
}

TEST(RunPlanTest, OneFailedCleanupIsSkippedWhenEverythingSucceeds) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: load
    command: "true"
  - id: cleanup
    command: "true"
    depends_on: [load]
    trigger_rule: one_failed
)yaml"));
  Succeed(*plan, "load");
  EXPECT_EQ(StateOf(*plan, "cleanup"), "skipped(trigger_rule)");
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kSuccess);
}

TEST(RunPlanTest, AlreadySucceededSkipCountsAsSuccessDownstream) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
  - id: only_if_a_failed
    command: "true"
    depends_on: [a]
    trigger_rule: all_failed
)yaml"));
  size_t a = Idx(*plan, "a");
  ASSERT_EQ(plan->instance(a).state, InstanceState::kQueued);
  plan->Transition(a, InstanceState::kSkipped, "already_succeeded");
  plan->Propagate();
  EXPECT_EQ(StateOf(*plan, "b"), "queued");
  EXPECT_EQ(StateOf(*plan, "only_if_a_failed"), "skipped(trigger_rule)");
}

TEST(RunPlanTest, TriggerRuleSkipDoesNotCountAsSuccessDownstream) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
)yaml"));
  size_t a = Idx(*plan, "a");
  plan->Transition(a, InstanceState::kSkipped, "trigger_rule");
  plan->Propagate();
  EXPECT_EQ(StateOf(*plan, "b"), "skipped(trigger_rule)");
}

TEST(RunPlanTest, OneSuccessRunsAfterTheFirstSuccessfulPartition) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: mirror
    command: "true"
    partitions: {values: [m1, m2, m3]}
  - id: use
    command: "true"
    depends_on: [mirror]
    trigger_rule: one_success
)yaml"));
  Fail(*plan, "mirror", "m1");
  EXPECT_EQ(StateOf(*plan, "use"), "pending");
  Succeed(*plan, "mirror", "m3");
  EXPECT_EQ(StateOf(*plan, "use"), "queued");
}

TEST(RunPlanTest, NoneFailedRunsAfterSkipsButNotAfterFailures) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
  - id: c
    command: "true"
  - id: tolerant
    command: "true"
    depends_on: [a, b]
    trigger_rule: none_failed
  - id: strict
    command: "true"
    depends_on: [a, b, c]
    trigger_rule: none_failed
)yaml"));
  plan->Transition(Idx(*plan, "a"), InstanceState::kSkipped, "trigger_rule");
  plan->Propagate();
  Succeed(*plan, "b");
  EXPECT_EQ(StateOf(*plan, "tolerant"), "queued");
  Fail(*plan, "c");
  EXPECT_EQ(StateOf(*plan, "strict"), "upstream_failed(upstream c failed)");
}

TEST(RunPlanTest, ConstructedFromPersistedStatesItResumesWhereItWas) {
  auto dag = MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
  - id: c
    command: "true"
    depends_on: [b]
)yaml");
  ASSERT_NE(dag, nullptr);
  auto run = MakeRun(*dag);
  auto instances = MakeInstances(*dag, run, StaticPartitions(*dag));
  for (size_t i = 0; i < instances.size(); ++i) instances[i].id = 7 + static_cast<int64_t>(i);
  instances[0].state = InstanceState::kSuccess;
  RunPlan plan(dag, run, instances);
  EXPECT_EQ(plan.CountIn(InstanceState::kSuccess), 1);
  EXPECT_EQ(plan.CountIn(InstanceState::kPending), 2);
  plan.Propagate();
  EXPECT_THAT(States(plan), ElementsAre("a[-]=success", "b[-]=queued", "c[-]=pending"));
  EXPECT_EQ(plan.IndexOf(8), 1u);
  EXPECT_EQ(plan.IndexOf(9999), std::nullopt);
}

// --- bookkeeping --------------------------------------------------------------------------

TEST(RunPlanTest, CountsFollowEveryTransition) {
  auto plan = MakePlan(MustLoad(kSameYaml));
  EXPECT_EQ(plan->CountIn(InstanceState::kQueued), 3);
  EXPECT_EQ(plan->CountIn(InstanceState::kPending), 3);
  size_t i = Idx(*plan, "extract", "us");
  plan->Transition(i, InstanceState::kRunning);
  EXPECT_EQ(plan->CountIn(InstanceState::kQueued), 2);
  EXPECT_EQ(plan->CountIn(InstanceState::kRunning), 1);
  plan->Transition(i, InstanceState::kRetryWait);
  EXPECT_EQ(plan->CountIn(InstanceState::kRunning), 0);
  EXPECT_EQ(plan->CountIn(InstanceState::kRetryWait), 1);
  EXPECT_FALSE(plan->AllTerminal());
  plan->Transition(i, InstanceState::kQueued);
  EXPECT_EQ(plan->CountIn(InstanceState::kQueued), 3);
  int total = 0;
  for (int s = 0; s <= static_cast<int>(InstanceState::kCancelled); ++s)
    total += plan->CountIn(static_cast<InstanceState>(s));
  EXPECT_EQ(total, static_cast<int>(plan->size()));
}

TEST(RunPlanTest, QueuedListsQueuedInstancesInIndexOrder) {
  auto plan = MakePlan(MustLoad(kSameYaml));
  EXPECT_THAT(plan->Queued(), ElementsAre(0u, 1u, 2u));
  Succeed(*plan, "extract", "apac");
  Succeed(*plan, "extract", "us");
  EXPECT_THAT(plan->Queued(), ElementsAre(1u, 3u, 5u));
}

TEST(RunPlanTest, TakeChangedReturnsEachChangedInstanceOnce) {
  auto plan = MakePlan(MustLoad(kSameYaml));
  // Propagate at start queued the three extract partitions.
  EXPECT_THAT(plan->TakeChanged(), UnorderedElementsAre(0u, 1u, 2u));
  EXPECT_THAT(plan->TakeChanged(), IsEmpty());
  size_t us = Idx(*plan, "extract", "us");
  plan->Transition(us, InstanceState::kRunning);
  plan->Transition(us, InstanceState::kRetryWait);
  plan->Transition(us, InstanceState::kQueued);
  plan->Transition(us, InstanceState::kRunning);
  plan->Transition(us, InstanceState::kSuccess);
  plan->Propagate();
  EXPECT_THAT(plan->TakeChanged(), UnorderedElementsAre(us, Idx(*plan, "transform", "us")));
  EXPECT_THAT(plan->TakeChanged(), IsEmpty());
  // A transition to the same state and reason is not a change.
  plan->Transition(us, InstanceState::kSuccess);
  EXPECT_THAT(plan->TakeChanged(), IsEmpty());
  // The same index changes again after being taken.
  plan->Transition(Idx(*plan, "transform", "us"), InstanceState::kRunning);
  EXPECT_THAT(plan->TakeChanged(), ElementsAre(Idx(*plan, "transform", "us")));
}

TEST(RunPlanTest, KeyCheckedStartsFalseAndIsSettable) {
  auto plan = MakePlan(MustLoad(kSameYaml));
  for (size_t i = 0; i < plan->size(); ++i) EXPECT_FALSE(plan->key_checked(i));
  plan->set_key_checked(1, true);
  EXPECT_TRUE(plan->key_checked(1));
  plan->set_key_checked(1, false);
  EXPECT_FALSE(plan->key_checked(1));
}

// --- Outcome ------------------------------------------------------------------------------

TEST(RunPlanTest, OutcomeIsSuccessWhenAllSucceededOrWereSkipped) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
  - id: c
    command: "true"
)yaml"));
  Succeed(*plan, "a");
  plan->Transition(Idx(*plan, "b"), InstanceState::kSkipped, "already_succeeded");
  plan->Transition(Idx(*plan, "c"), InstanceState::kSkipped, "trigger_rule");
  ASSERT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kSuccess);
}

TEST(RunPlanTest, OutcomeIsFailedWhenAnythingFailedEvenIfCancelled) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
)yaml"));
  Fail(*plan, "a");
  plan->Transition(Idx(*plan, "b"), InstanceState::kCancelled);
  ASSERT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kFailed);
}

TEST(RunPlanTest, OutcomeIsFailedForUpstreamFailedAlone) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
)yaml"));
  plan->Transition(0, InstanceState::kUpstreamFailed);
  EXPECT_EQ(plan->Outcome(), RunState::kFailed);
}

TEST(RunPlanTest, OutcomeIsCancelledWhenSomethingWasCancelledAndNothingFailed) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
)yaml"));
  Succeed(*plan, "a");
  plan->Transition(Idx(*plan, "b"), InstanceState::kCancelled);
  ASSERT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kCancelled);
}

// --- ResetFailed --------------------------------------------------------------------------

constexpr char kResetYaml[] = R"yaml(dag: d
tasks:
  - id: extract
    command: "true"
    partitions: {values: [us, eu, apac]}
  - id: transform
    command: "true"
    partitions: {values: [us, eu, apac]}
    depends_on:
      - task: extract
        partitions: same
  - id: publish
    command: "true"
    depends_on: [transform]
  - id: cleanup
    command: "true"
    depends_on: [extract]
    trigger_rule: one_failed
  - id: unrelated
    command: "true"
)yaml";

// extract[us] failed; extract[eu] ok and transform[eu] ok; extract[apac] ok and
// transform[apac] failed; publish upstream_failed; cleanup ran; unrelated ok.
std::unique_ptr<RunPlan> FailedRun() {
  auto plan = MakePlan(MustLoad(kResetYaml));
  Fail(*plan, "extract", "us");
  Succeed(*plan, "extract", "eu");
  Succeed(*plan, "extract", "apac");
  Succeed(*plan, "transform", "eu");
  Fail(*plan, "transform", "apac");
  Succeed(*plan, "cleanup");
  Succeed(*plan, "unrelated");
  return plan;
}

TEST(RunPlanTest, FailedRunFixtureIsWhatTheResetTestsExpect) {
  auto plan = FailedRun();
  EXPECT_THAT(States(*plan),
              ElementsAre("extract[us]=failed", "extract[eu]=success", "extract[apac]=success",
                          "transform[us]=upstream_failed(upstream extract[us] failed)", "transform[eu]=success", "transform[apac]=failed",
                          "publish[-]=upstream_failed(upstream extract[us] failed)", "cleanup[-]=success", "unrelated[-]=success"));
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kFailed);
}

TEST(RunPlanTest, ResetFailedResetsFailedAndUpstreamFailedOnly) {
  auto plan = FailedRun();
  plan->TakeChanged();
  for (size_t i = 0; i < plan->size(); ++i) {
    plan->instance(i).ended_at = SysMillis(1000ms);
    if (plan->instance(i).state == InstanceState::kFailed) plan->instance(i).next_attempt_at = SysMillis(5000ms);
  }
  EXPECT_EQ(plan->ResetFailed(std::nullopt, std::nullopt), 4);
  EXPECT_THAT(States(*plan),
              ElementsAre("extract[us]=pending", "extract[eu]=success", "extract[apac]=success",
                          "transform[us]=pending", "transform[eu]=success", "transform[apac]=pending",
                          "publish[-]=pending", "cleanup[-]=success", "unrelated[-]=success"));
  for (size_t i = 0; i < plan->size(); ++i) {
    if (plan->instance(i).state != InstanceState::kPending) continue;
    EXPECT_EQ(plan->instance(i).ended_at, std::nullopt) << i;
    EXPECT_EQ(plan->instance(i).next_attempt_at, std::nullopt) << i;
  }
  EXPECT_THAT(plan->TakeChanged(), UnorderedElementsAre(Idx(*plan, "extract", "us"), Idx(*plan, "transform", "us"),
                                                        Idx(*plan, "transform", "apac"), Idx(*plan, "publish")));
  EXPECT_FALSE(plan->AllTerminal());
  plan->Propagate();
  EXPECT_THAT(QueuedNames(*plan), ElementsAre("extract[us]", "transform[apac]"));
  Succeed(*plan, "extract", "us");
  Succeed(*plan, "transform", "apac");
  Succeed(*plan, "transform", "us");
  Succeed(*plan, "publish");
  EXPECT_TRUE(plan->AllTerminal());
  EXPECT_EQ(plan->Outcome(), RunState::kSuccess);
}

TEST(RunPlanTest, ResetFailedFilteredByTaskResetsItsDownstreamToo) {
  auto plan = FailedRun();
  EXPECT_EQ(plan->ResetFailed(std::string("extract"), std::nullopt), 3);
  EXPECT_THAT(States(*plan),
              ElementsAre("extract[us]=pending", "extract[eu]=success", "extract[apac]=success",
                          "transform[us]=pending", "transform[eu]=success", "transform[apac]=failed",
                          "publish[-]=pending", "cleanup[-]=success", "unrelated[-]=success"));
  plan->Propagate();
  // publish still has a failed upstream (transform[apac]) and goes back to upstream_failed.
  EXPECT_EQ(StateOf(*plan, "publish"), "upstream_failed(upstream transform[apac] failed)");
  EXPECT_EQ(StateOf(*plan, "extract", "us"), "queued");
}

TEST(RunPlanTest, ResetFailedFilteredByTaskAndPartition) {
  auto plan = FailedRun();
  EXPECT_EQ(plan->ResetFailed(std::string("transform"), std::string("apac")), 2);
  EXPECT_THAT(States(*plan),
              ElementsAre("extract[us]=failed", "extract[eu]=success", "extract[apac]=success",
                          "transform[us]=upstream_failed(upstream extract[us] failed)", "transform[eu]=success", "transform[apac]=pending",
                          "publish[-]=pending", "cleanup[-]=success", "unrelated[-]=success"));
}

TEST(RunPlanTest, ResetFailedFilteredByPartitionOnly) {
  auto plan = FailedRun();
  EXPECT_EQ(plan->ResetFailed(std::nullopt, std::string("us")), 3);
  EXPECT_EQ(StateOf(*plan, "extract", "us"), "pending");
  EXPECT_EQ(StateOf(*plan, "transform", "us"), "pending");
  EXPECT_EQ(StateOf(*plan, "transform", "apac"), "failed");
  EXPECT_EQ(StateOf(*plan, "publish"), "pending");  // downstream of transform[us]
}

TEST(RunPlanTest, ResetFailedWithNothingMatchingChangesNothing) {
  auto plan = FailedRun();
  plan->TakeChanged();
  EXPECT_EQ(plan->ResetFailed(std::string("extract"), std::string("eu")), 0);
  EXPECT_EQ(plan->ResetFailed(std::string("unrelated"), std::nullopt), 0);
  EXPECT_EQ(plan->ResetFailed(std::string("nope"), std::nullopt), 0);
  EXPECT_THAT(plan->TakeChanged(), IsEmpty());
  EXPECT_TRUE(plan->AllTerminal());
}

TEST(RunPlanTest, ResetFailedLeavesTriggerRuleSkipsAndSuccessesAlone) {
  auto plan = MakePlan(MustLoad(R"yaml(dag: d
tasks:
  - id: a
    command: "true"
  - id: b
    command: "true"
    depends_on: [a]
  - id: on_ok
    command: "true"
    depends_on: [a]
    trigger_rule: all_failed
)yaml"));
  Fail(*plan, "a");
  EXPECT_EQ(StateOf(*plan, "on_ok"), "queued");
  Succeed(*plan, "on_ok");
  EXPECT_EQ(plan->ResetFailed(std::nullopt, std::nullopt), 2);
  EXPECT_EQ(StateOf(*plan, "on_ok"), "success");
  EXPECT_EQ(StateOf(*plan, "a"), "pending");
  EXPECT_EQ(StateOf(*plan, "b"), "pending");
}

}  // namespace
}  // namespace batchd::engine
