// LoadDagString / LoadDagFile: every key of SPEC section 3 is parsed, defaults are
// merged, and every error names file:line:column with a message asserted word for word.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "common/hash.h"
#include "common/time.h"
#include "dag/loader.h"

namespace batchd::dag {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using namespace std::chrono_literals;

// Every diagnostic as "d.yaml:line:column: message".
std::vector<std::string> Errors(std::string_view yaml) {
  LoadResult r = LoadDagString(yaml, "d.yaml");
  std::vector<std::string> out;
  for (const Diagnostic& d : r.errors) out.push_back(d.ToString());
  if (r.ok() == (r.dag == nullptr)) out.push_back("BROKEN: dag set iff no errors");
  return out;
}

DagPtr MustLoad(std::string_view yaml) {
  LoadResult r = LoadDagString(yaml, "d.yaml");
  for (const Diagnostic& d : r.errors) ADD_FAILURE() << d.ToString();
  return r.dag;
}

SysSeconds Utc(std::string_view iso) {
  auto utc = LookupZone("UTC");
  auto t = ParseInstant(iso, *utc);
  EXPECT_TRUE(t.ok()) << iso;
  return t.ok() ? *t : SysSeconds{};
}

// --- parsing ---------------------------------------------------------------------------

TEST(LoaderTest, ParsesEveryTopLevelKey) {
  DagPtr dag = MustLoad(R"yaml(dag: nightly_billing
description: Reconcile usage and charges
schedule: "30 2 * * *"
timezone: Europe/Berlin
start_date: 2026-01-01
end_date: 2026-12-31T18:00
catchup: true
max_active_runs: 3
max_active_tasks: 5
paused: yes
params: {region: eu, limit: 10, empty: }
env: {LANG: C.UTF-8, RETRIES: 3}
slo:
  max_duration: 2h
  freshness: 26h
triggers:
  - after_dag: ingest
  - file: /data/in/*.csv
tasks:
  - id: extract
    command: ./extract.sh {{ params.trigger_file }}
)yaml");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->name, "nightly_billing");
  EXPECT_EQ(dag->description, "Reconcile usage and charges");
  EXPECT_EQ(dag->schedule, "30 2 * * *");
  EXPECT_EQ(dag->timezone, "Europe/Berlin");
  EXPECT_EQ(dag->start_date, Utc("2025-12-31T23:00:00Z"));  // midnight in Berlin (CET)
  EXPECT_EQ(dag->end_date, Utc("2026-12-31T17:00:00Z"));
  EXPECT_TRUE(dag->catchup);
  EXPECT_EQ(dag->max_active_runs, 3);
  EXPECT_EQ(dag->max_active_tasks, 5);
  EXPECT_TRUE(dag->paused);
  EXPECT_EQ(dag->params, (std::map<std::string, std::string>{{"region", "eu"}, {"limit", "10"}, {"empty", ""}}));
  EXPECT_EQ(dag->env, (std::map<std::string, std::string>{{"LANG", "C.UTF-8"}, {"RETRIES", "3"}}));
  EXPECT_EQ(dag->slo.max_duration, Millis(2h));
  EXPECT_EQ(dag->slo.freshness, Millis(26h));
  ASSERT_EQ(dag->triggers.size(), 2u);
  EXPECT_EQ(dag->triggers[0].kind, Trigger::Kind::kAfterDag);
  EXPECT_EQ(dag->triggers[0].value, "ingest");
  EXPECT_EQ(dag->triggers[0].location.line, 17);
  EXPECT_EQ(dag->triggers[0].location.column, 5);
  EXPECT_EQ(dag->triggers[1].kind, Trigger::Kind::kFile);
  EXPECT_EQ(dag->triggers[1].value, "/data/in/*.csv");
  ASSERT_EQ(dag->tasks.size(), 1u);
  EXPECT_EQ(dag->tasks[0].location.line, 20);
  EXPECT_EQ(dag->tasks[0].location.column, 5);
}

TEST(LoaderTest, UsesDocumentedDefaultsWhenKeysAreOmitted) {
  DagPtr dag = MustLoad(R"yaml(dag: minimal
tasks:
  - id: only
    command: "true"
)yaml");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->description, "");
  EXPECT_EQ(dag->schedule, std::nullopt);
  EXPECT_EQ(dag->timezone, "UTC");
  EXPECT_EQ(dag->start_date, std::nullopt);
  EXPECT_EQ(dag->end_date, std::nullopt);
  EXPECT_FALSE(dag->catchup);
  EXPECT_EQ(dag->max_active_runs, 1);
  EXPECT_EQ(dag->max_active_tasks, 16);
  EXPECT_FALSE(dag->paused);
  EXPECT_TRUE(dag->params.empty());
  EXPECT_TRUE(dag->env.empty());
  EXPECT_EQ(dag->slo.max_duration, std::nullopt);
  EXPECT_EQ(dag->slo.freshness, std::nullopt);
  EXPECT_TRUE(dag->triggers.empty());
  const Task& t = dag->tasks[0];
  EXPECT_EQ(t.id, "only");
  EXPECT_EQ(t.command, "true");
  EXPECT_TRUE(t.depends_on.empty());
  EXPECT_EQ(t.trigger_rule, TriggerRule::kAllSuccess);
  EXPECT_EQ(t.partitions.kind, Partitions::Kind::kNone);
  EXPECT_EQ(t.working_dir, "");
  EXPECT_EQ(t.pool, "");
  EXPECT_EQ(t.priority, 0);
  EXPECT_EQ(t.timeout, std::nullopt);
  EXPECT_EQ(t.kill_grace, Millis(10s));
  EXPECT_EQ(t.retry.retries, 0);
  EXPECT_EQ(t.retry.delay, Millis(10s));
  EXPECT_EQ(t.retry.backoff, Backoff::kExponential);
  EXPECT_EQ(t.retry.factor, 2.0);
  EXPECT_EQ(t.retry.max_delay, Millis(10min));
  EXPECT_FALSE(t.retry.jitter);
  EXPECT_TRUE(t.retry.retry_on_exit_codes.empty());
  EXPECT_TRUE(t.env.empty());
  EXPECT_EQ(t.idempotency_key, "{{ dag }}/{{ task }}/{{ partition }}/{{ logical_date }}");
}

TEST(LoaderTest, ParsesEveryTaskKey) {
  DagPtr dag = MustLoad(R"yaml(dag: d
params: {region: eu}
tasks:
  - id: extract
    command: echo extract
  - id: transform
    description: Turn it around
    command: |
      ./transform.sh {{ partition }}
      echo done
    depends_on:
      - extract
      - task: extract_more
        partitions: all
    trigger_rule: none_failed
    partitions: {values: [us, eu, apac]}
    working_dir: /srv/billing
    pool: warehouse
    priority: -3
    timeout: 90
    kill_grace: 500ms
    retry: {retries: 4, delay: 1m, backoff: fixed, factor: 1.5, max_delay: 1h, jitter: on, retry_on_exit_codes: [1, 75]}
    env: {MODE: fast}
    idempotency_key: "{{ dag }}:{{ partition }}:{{ params.region }}"
  - id: extract_more
    command: echo more
    partitions: {range: [0, 16]}
  - id: listed
    command: echo {{ partition }}
    partitions: {command: ls /data}
)yaml");
  ASSERT_NE(dag, nullptr);
  const Task* t = dag->FindTask("transform");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->description, "Turn it around");
  EXPECT_EQ(t->command, "./transform.sh {{ partition }}\necho done\n");
  ASSERT_EQ(t->depends_on.size(), 2u);
  EXPECT_EQ(t->depends_on[0].task, "extract");
  EXPECT_FALSE(t->depends_on[0].same_partition);
  EXPECT_EQ(t->depends_on[0].location.line, 12);
  EXPECT_EQ(t->depends_on[0].location.column, 9);
  EXPECT_EQ(t->depends_on[1].task, "extract_more");
  EXPECT_FALSE(t->depends_on[1].same_partition);
  EXPECT_EQ(t->trigger_rule, TriggerRule::kNoneFailed);
  EXPECT_EQ(t->partitions.kind, Partitions::Kind::kValues);
  EXPECT_EQ(t->partitions.values, (std::vector<std::string>{"us", "eu", "apac"}));
  EXPECT_EQ(t->working_dir, "/srv/billing");
  EXPECT_EQ(t->pool, "warehouse");
  EXPECT_EQ(t->priority, -3);
  EXPECT_EQ(t->timeout, Millis(90s));
  EXPECT_EQ(t->kill_grace, Millis(500ms));
  EXPECT_EQ(t->retry.retries, 4);
  EXPECT_EQ(t->retry.delay, Millis(1min));
  EXPECT_EQ(t->retry.backoff, Backoff::kFixed);
  EXPECT_EQ(t->retry.factor, 1.5);
  EXPECT_EQ(t->retry.max_delay, Millis(1h));
  EXPECT_TRUE(t->retry.jitter);
  EXPECT_EQ(t->retry.retry_on_exit_codes, (std::vector<int>{1, 75}));
  EXPECT_EQ(t->env, (std::map<std::string, std::string>{{"MODE", "fast"}}));
  EXPECT_EQ(t->idempotency_key, "{{ dag }}:{{ partition }}:{{ params.region }}");
  EXPECT_EQ(t->location.line, 6);

  const Task* more = dag->FindTask("extract_more");
  EXPECT_EQ(more->partitions.kind, Partitions::Kind::kRange);
  EXPECT_EQ(more->partitions.range_begin, 0);
  EXPECT_EQ(more->partitions.range_end, 16);
  const Task* listed = dag->FindTask("listed");
  EXPECT_EQ(listed->partitions.kind, Partitions::Kind::kCommand);
  EXPECT_EQ(listed->partitions.command, "ls /data");
}

TEST(LoaderTest, ParsesEveryTriggerRule) {
  DagPtr dag = MustLoad(R"yaml(dag: d
tasks:
  - {id: a, command: x, trigger_rule: all_success}
  - {id: b, command: x, trigger_rule: all_done}
  - {id: c, command: x, trigger_rule: one_success}
  - {id: d, command: x, trigger_rule: one_failed}
  - {id: e, command: x, trigger_rule: none_failed}
  - {id: f, command: x, trigger_rule: all_failed}
)yaml");
  ASSERT_NE(dag, nullptr);
  std::vector<TriggerRule> rules;
  for (const Task& t : dag->tasks) rules.push_back(t.trigger_rule);
  EXPECT_THAT(rules, ElementsAre(TriggerRule::kAllSuccess, TriggerRule::kAllDone, TriggerRule::kOneSuccess,
                                 TriggerRule::kOneFailed, TriggerRule::kNoneFailed, TriggerRule::kAllFailed));
}

TEST(LoaderTest, ParsesDependsOnShortAndLongFormsMixed) {
  DagPtr dag = MustLoad(R"yaml(dag: d
tasks:
  - {id: a, command: x, partitions: {values: [p1, p2]}}
  - {id: b, command: x}
  - id: c
    command: x
    partitions: {values: [p2, p1]}
    depends_on: [b, {task: a, partitions: same}]
)yaml");
  ASSERT_NE(dag, nullptr);
  const Task* c = dag->FindTask("c");
  ASSERT_EQ(c->depends_on.size(), 2u);
  EXPECT_EQ(c->depends_on[0].task, "b");
  EXPECT_FALSE(c->depends_on[0].same_partition);
  EXPECT_EQ(c->depends_on[1].task, "a");
  EXPECT_TRUE(c->depends_on[1].same_partition);
}

TEST(LoaderTest, AppliesDefaultsToEveryTaskUnlessItOverrides) {
  DagPtr dag = MustLoad(R"yaml(dag: d
defaults:
  timeout: 30m
  kill_grace: 20s
  working_dir: /srv
  pool: warehouse
  priority: 7
  env: {A: "1", B: "2"}
  retry: {retries: 3, delay: 10s, backoff: exponential, factor: 3, max_delay: 5m, jitter: true, retry_on_exit_codes: [2]}
tasks:
  - id: inherits
    command: x
  - id: overrides
    command: x
    timeout: 1m
    kill_grace: 0
    working_dir: /tmp
    pool: other
    priority: 1
    env: {B: two, C: "3"}
    retry: {retries: 0}
  - id: no_timeout
    command: x
    timeout: null
)yaml");
  ASSERT_NE(dag, nullptr);
  const Task& a = dag->tasks[0];
  EXPECT_EQ(a.timeout, Millis(30min));
  EXPECT_EQ(a.kill_grace, Millis(20s));
  EXPECT_EQ(a.working_dir, "/srv");
  EXPECT_EQ(a.pool, "warehouse");
  EXPECT_EQ(a.priority, 7);
  EXPECT_EQ(a.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "2"}}));
  EXPECT_EQ(a.retry.retries, 3);
  EXPECT_EQ(a.retry.factor, 3.0);
  EXPECT_EQ(a.retry.retry_on_exit_codes, std::vector<int>{2});

  const Task& b = dag->tasks[1];
  EXPECT_EQ(b.timeout, Millis(1min));
  EXPECT_EQ(b.kill_grace, Millis(0));
  EXPECT_EQ(b.working_dir, "/tmp");
  EXPECT_EQ(b.pool, "other");
  EXPECT_EQ(b.priority, 1);
  EXPECT_EQ(b.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "two"}, {"C", "3"}}));
  EXPECT_EQ(dag->tasks[2].timeout, std::nullopt);
}

TEST(LoaderTest, TaskRetryMergesFieldByFieldOverDefaultRetry) {
  DagPtr dag = MustLoad(R"yaml(dag: d
defaults:
  retry: {retries: 3, delay: 10s, backoff: exponential, factor: 2, max_delay: 10m, jitter: true}
tasks:
  - id: publish
    command: x
    retry: {retries: 0}
  - id: slower
    command: x
    retry: {delay: 1m, retry_on_exit_codes: [75]}
)yaml");
  ASSERT_NE(dag, nullptr);
  const RetryPolicy& p = dag->tasks[0].retry;
  EXPECT_EQ(p.retries, 0);
  EXPECT_EQ(p.delay, Millis(10s));
  EXPECT_EQ(p.backoff, Backoff::kExponential);
  EXPECT_EQ(p.factor, 2.0);
  EXPECT_EQ(p.max_delay, Millis(10min));
  EXPECT_TRUE(p.jitter);
  const RetryPolicy& s = dag->tasks[1].retry;
  EXPECT_EQ(s.retries, 3);
  EXPECT_EQ(s.delay, Millis(1min));
  EXPECT_TRUE(s.jitter);
  EXPECT_EQ(s.retry_on_exit_codes, std::vector<int>{75});
}

TEST(LoaderTest, NullScheduleMeansManualOnly) {
  DagPtr dag = MustLoad("dag: d\nschedule: null\ntasks: [{id: a, command: x}]\n");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->schedule, std::nullopt);
  dag = MustLoad("dag: d\nschedule: \"@daily\"\ntasks: [{id: a, command: x}]\n");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->schedule, "@daily");
}

TEST(LoaderTest, AcceptsBooleanSpellings) {
  for (const char* word : {"true", "True", "TRUE", "yes", "on"}) {
    DagPtr dag = MustLoad(std::string("dag: d\ncatchup: ") + word + "\ntasks: [{id: a, command: x}]\n");
    ASSERT_NE(dag, nullptr) << word;
    EXPECT_TRUE(dag->catchup) << word;
  }
  for (const char* word : {"false", "False", "no", "off"}) {
    DagPtr dag = MustLoad(std::string("dag: d\ncatchup: ") + word + "\ntasks: [{id: a, command: x}]\n");
    ASSERT_NE(dag, nullptr) << word;
    EXPECT_FALSE(dag->catchup) << word;
  }
}

TEST(LoaderTest, KeepsSourceAndContentHash) {
  const std::string text = "dag: d\ntasks: [{id: a, command: x}]\n";
  LoadResult r = LoadDagString(text, "dags/d.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.dag->source, text);
  EXPECT_EQ(r.dag->source_path, "dags/d.yaml");
  EXPECT_EQ(r.dag->content_hash, Sha256Hex(text));
  EXPECT_EQ(r.dag->content_hash.size(), 64u);
  LoadResult changed = LoadDagString(text + "# comment\n", "dags/d.yaml");
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed.dag->content_hash, r.dag->content_hash);
}

TEST(LoaderTest, SupportsAnchorsAliasesAndMergeKeys) {
  DagPtr dag = MustLoad(R"yaml(dag: d
x-common: &common
  command: echo shared
  retry: &fast {retries: 5, delay: 1s}
tasks:
  - <<: *common
    id: a
  - <<: *common
    id: b
    command: echo own
  - id: c
    command: echo c
    retry: *fast
)yaml");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->tasks[0].command, "echo shared");
  EXPECT_EQ(dag->tasks[0].retry.retries, 5);
  EXPECT_EQ(dag->tasks[1].command, "echo own");
  EXPECT_EQ(dag->tasks[2].retry.delay, Millis(1s));
}

TEST(LoaderTest, AcceptsByteOrderMarkAndCrLfLineEnds) {
  DagPtr dag = MustLoad("\xEF\xBB\xBF" "dag: d\r\ntasks:\r\n  - id: a\r\n    command: echo\r\n");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->tasks[0].command, "echo");
  EXPECT_THAT(Errors("\xEF\xBB\xBF" "dag: d\ntasks: [{id: a, command: '{{ x }}'}]\n"),
              ElementsAre("d.yaml:2:27: unknown template variable 'x' in command of task 'a'"));
}

// --- whole-file errors -------------------------------------------------------------------

TEST(LoaderTest, ReportsEmptyFile) {
  EXPECT_THAT(Errors(""), ElementsAre("d.yaml:1:1: file is empty"));
  EXPECT_THAT(Errors("  \n\n"), ElementsAre("d.yaml:1:1: file is empty"));
  EXPECT_THAT(Errors("# just a comment\n"), ElementsAre("d.yaml:1:1: file is empty"));
  EXPECT_THAT(Errors("---\n"), ElementsAre("d.yaml:1:1: file is empty"));
}

TEST(LoaderTest, ReportsTopLevelThatIsNotAMapping) {
  EXPECT_THAT(Errors("- a\n- b\n"),
              ElementsAre("d.yaml:1:1: the top level must be a mapping of DAG keys (dag, tasks, ...), got a list"));
  EXPECT_THAT(Errors("hello\n"),
              ElementsAre("d.yaml:1:1: the top level must be a mapping of DAG keys (dag, tasks, ...), got 'hello'"));
}

TEST(LoaderTest, ReportsYamlSyntaxErrorWithPosition) {
  EXPECT_THAT(Errors("dag: [x\ntasks: y\n"),
              ElementsAre("d.yaml:2:6: YAML syntax error: end of sequence flow not found"));
  EXPECT_THAT(Errors("dag: x\ntasks:\n  - id: a\n   command: y\n"),
              ElementsAre("d.yaml:4:4: YAML syntax error: end of sequence not found"));
  EXPECT_THAT(Errors("dag: x\ntasks: [a, b}\n"), ElementsAre("d.yaml:2:13: YAML syntax error: illegal flow end"));
  EXPECT_THAT(Errors("dag: x\n  bad: indent\n"), ElementsAre("d.yaml:2:6: YAML syntax error: illegal map value"));
}

// yaml-cpp takes a quoted scalar cut off by the end of the file as complete: a DAG file
// truncated while it was copied in would run a shortened command.
TEST(LoaderTest, AQuotedStringTheEndOfTheFileCutsOffIsAnError) {
  EXPECT_THAT(Errors("dag: x\ntasks:\n  - id: a\n    command: \"unterminated\n"),
              ElementsAre("d.yaml:4:14: YAML syntax error: unterminated quoted string (no closing \" before the "
                          "end of the file)"));
  EXPECT_THAT(Errors("dag: x\ntasks:\n  - id: a\n    command: 'cut off\n"),
              ElementsAre("d.yaml:4:14: YAML syntax error: unterminated quoted string (no closing ' before the "
                          "end of the file)"));
  // Escaped quotes inside are not the end.
  EXPECT_THAT(Errors("dag: x\ntasks:\n  - id: a\n    command: \"a \\\" b\"\n  - id: b\n    command: 'it''s'\n"),
              IsEmpty());
}

TEST(LoaderTest, NamesTabIndentation) {
  EXPECT_THAT(Errors("dag: x\ntasks:\n\t- id: a\n"),
              ElementsAre("d.yaml:3:2: YAML syntax error: illegal block entry "
                          "(line 3 is indented with a tab; YAML allows only spaces)"));
}

TEST(LoaderTest, ReportsInvalidUtf8AndControlCharacters) {
  EXPECT_THAT(Errors("dag: x\ndescription: caf\xE9\n"),
              ElementsAre("d.yaml:2:17: invalid UTF-8 byte 0xe9 (a DAG file must be UTF-8 text)"));
  EXPECT_THAT(Errors("dag: x\xC0\xAF\n"),  // overlong encoding of '/'
              ElementsAre("d.yaml:1:7: invalid UTF-8 byte 0xc0 (a DAG file must be UTF-8 text)"));
  EXPECT_THAT(Errors(std::string("dag: x\ntasks: [\0]\n", 17)),
              ElementsAre("d.yaml:2:9: control character 0x00 is not allowed in a DAG file"));
  // Multi-byte UTF-8 is fine.
  DagPtr dag = MustLoad("dag: d\ndescription: \"Café ☕ 𝄞\"\ntasks: [{id: a, command: echo é}]\n");
  ASSERT_NE(dag, nullptr);
  EXPECT_EQ(dag->description, "Café ☕ 𝄞");
}

TEST(LoaderTest, ReportsSecondYamlDocument) {
  EXPECT_THAT(Errors("dag: x\ntasks: [{id: a, command: x}]\n---\ndag: y\n"),
              ElementsAre("d.yaml:3:1: a DAG file must contain a single YAML document, but a second one starts here"));
  // A trailing document marker alone is harmless.
  EXPECT_NE(MustLoad("dag: x\ntasks: [{id: a, command: x}]\n---\n"), nullptr);
}

TEST(LoaderTest, ReportsRecursiveAndUndefinedAliases) {
  EXPECT_THAT(Errors("dag: &a [*a]\n"),
              ElementsAre("d.yaml:1:10: alias '*a' refers to a node that contains it (recursive alias)"));
  EXPECT_THAT(Errors("dag: *nope\n"),
              ElementsAre("d.yaml:1:6: YAML syntax error: the referenced anchor is not defined"));
}

TEST(LoaderTest, ReportsTooDeepNesting) {
  std::string deep = "dag: x\ntasks: " + std::string(100, '[') + "x" + std::string(100, ']') + "\n";
  EXPECT_THAT(Errors(deep), ElementsAre("d.yaml:2:71: YAML nesting is too deep (more than 64 levels)"));
}

TEST(LoaderTest, RefusesTooLargeTextBeforeParsing) {
  std::string big(kMaxDagFileBytes + 1, '#');
  EXPECT_THAT(Errors(big), ElementsAre("d.yaml: file is too large: 4194305 bytes (the limit is 4194304 bytes)"));
}

class TempFile {
 public:
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/batchd_dag_test_XXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_, std::ios::binary) << content;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(LoaderTest, LoadsFileFromDisk) {
  TempFile file("dag: d\ntasks: [{id: a, command: x}]\n");
  LoadResult r = LoadDagFile(file.path());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.dag->source_path, file.path());
  EXPECT_EQ(r.dag->name, "d");
}

TEST(LoaderTest, ReportsUnreadableFilesAtLineZero) {
  LoadResult missing = LoadDagFile("/nonexistent/dir/x.yaml");
  ASSERT_EQ(missing.errors.size(), 1u);
  EXPECT_EQ(missing.errors[0].ToString(), "/nonexistent/dir/x.yaml: cannot open file: No such file or directory");
  EXPECT_EQ(missing.errors[0].line, 0);
  LoadResult dir = LoadDagFile("/tmp");
  ASSERT_EQ(dir.errors.size(), 1u);
  EXPECT_EQ(dir.errors[0].message, "cannot read file: it is a directory");
}

TEST(LoaderTest, RefusesTooLargeFileWithoutReadingIt) {
  TempFile file("");
  std::filesystem::resize_file(file.path(), 50u * 1024 * 1024);  // sparse: cheap
  LoadResult r = LoadDagFile(file.path());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].message, "file is too large: 52428800 bytes (the limit is 4194304 bytes)");
}

TEST(LoaderTest, DiagnosticToStringOmitsPositionAtLineZero) {
  EXPECT_EQ((Diagnostic{"a.yaml", 3, 7, "boom"}).ToString(), "a.yaml:3:7: boom");
  EXPECT_EQ((Diagnostic{"a.yaml", 0, 0, "boom"}).ToString(), "a.yaml: boom");
}

// --- keys -------------------------------------------------------------------------------

TEST(LoaderTest, ReportsUnknownKeyWithSuggestion) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: extract
    command: x
    comand: y
)yaml"),
              ElementsAre("d.yaml:5:5: unknown key 'comand' in task 'extract' (did you mean 'command'?)"));
}

TEST(LoaderTest, ReportsUnknownKeysAtEveryLevel) {
  EXPECT_THAT(Errors(R"yaml(dag: d
scheduel: "@daily"
colour: blue
defaults:
  timeot: 5m
  retry: {retires: 2}
slo: {freshnes: 1h}
triggers:
  - {after_dag: up, when: now}
tasks:
  - id: a
    command: x
    retry: {dealy: 1s}
    partitions: {value: [a]}
    depends_on: [{task: b, partition: same}]
  - id: b
    command: x
)yaml"),
              ElementsAre("d.yaml:2:1: unknown key 'scheduel' (did you mean 'schedule'?)",
                          "d.yaml:3:1: unknown key 'colour'",
                          "d.yaml:5:3: unknown key 'timeot' in defaults (did you mean 'timeout'?)",
                          "d.yaml:6:11: unknown key 'retires' in defaults.retry (did you mean 'retries'?)",
                          "d.yaml:7:7: unknown key 'freshnes' in slo (did you mean 'freshness'?)",
                          "d.yaml:9:21: unknown key 'when' in triggers",
                          "d.yaml:13:13: unknown key 'dealy' in retry of task 'a' (did you mean 'delay'?)",
                          "d.yaml:14:17: partitions in task 'a' must have exactly one of values, range or command",
                          "d.yaml:14:18: unknown key 'value' in partitions of task 'a' (did you mean 'values'?)",
                          "d.yaml:15:28: unknown key 'partition' in depends_on of task 'a' (did you mean 'partitions'?)"));
}

TEST(LoaderTest, IgnoresExtensionKeysAtTopLevelOnly) {
  EXPECT_NE(MustLoad("dag: d\nx-note: {goes: here, anything: [1, 2]}\ntasks: [{id: a, command: x}]\n"), nullptr);
  EXPECT_THAT(Errors("dag: d\ntasks: [{id: a, command: x, x-note: 1}]\n"),
              ElementsAre("d.yaml:2:29: unknown key 'x-note' in task 'a'"));
}

TEST(LoaderTest, ReportsDuplicateYamlKeys) {
  EXPECT_THAT(Errors(R"yaml(dag: x
dag: y
tasks:
  - id: a
    command: echo
    retry: {retries: 1, retries: 2}
    command: again
)yaml"),
              ElementsAre("d.yaml:2:1: duplicate key 'dag' (first defined at line 1)",
                          "d.yaml:6:25: duplicate key 'retries' in retry of task 'a' (first defined at line 6)",
                          "d.yaml:7:5: duplicate key 'command' in task 'a' (first defined at line 5)"));
}

TEST(LoaderTest, ReportsNonStringKeys) {
  EXPECT_THAT(Errors("dag: x\n? [a]\n: b\ntasks: [{id: a, command: x}]\n"),
              ElementsAre("d.yaml:2:3: a key must be a string, got a list"));
  EXPECT_THAT(Errors("dag: x\ntasks:\n  - {id: a, command: x, {b: c}: d}\n"),
              ElementsAre("d.yaml:3:25: a key in task 'a' must be a string, got a mapping"));
}

TEST(LoaderTest, ReportsMissingRequiredKeys) {
  EXPECT_THAT(Errors("description: nothing else\n"),
              ElementsAre("d.yaml:1:1: missing required key 'dag'", "d.yaml:1:1: missing required key 'tasks'"));
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: extract
    description: no command
  - command: echo no id
)yaml"),
              ElementsAre("d.yaml:3:5: missing required key 'command' in task 'extract'",
                          "d.yaml:5:5: missing required key 'id' in task #2"));
  EXPECT_THAT(Errors("dag: d\ntasks: []\n"), ElementsAre("d.yaml:2:8: tasks must list at least one task"));
  EXPECT_THAT(Errors("dag: d\ntasks:\n  - {id: a, command: \"  \"}\n"),
              ElementsAre("d.yaml:3:22: command in task 'a' must not be empty"));
}

TEST(LoaderTest, ReportsMissingTaskInDependencyMapping) {
  EXPECT_THAT(Errors("dag: d\ntasks:\n  - {id: a, command: x, depends_on: [{partitions: all}]}\n"),
              ElementsAre("d.yaml:3:38: missing required key 'task' in depends_on of task 'a'"));
}

// --- values -----------------------------------------------------------------------------

TEST(LoaderTest, ReportsWrongTypes) {
  EXPECT_THAT(Errors(R"yaml(dag: [d]
description: {a: b}
params: [a]
env: x
defaults: [timeout]
slo: 5
triggers: {after_dag: x}
tasks:
  - id: a
    command: [echo, x]
    depends_on: b
    partitions: [a, b]
    retry: 3
    env: [A]
  - just a string
)yaml"),
              ElementsAre("d.yaml:1:6: dag must be a string, got a list",
                          "d.yaml:2:14: description must be a string, got a mapping",
                          "d.yaml:3:9: params must be a mapping, got a list",
                          "d.yaml:4:6: env must be a mapping, got 'x'",
                          "d.yaml:5:11: defaults must be a mapping, got a list",
                          "d.yaml:6:6: slo must be a mapping, got '5'",
                          "d.yaml:7:11: triggers must be a list, got a mapping",
                          "d.yaml:10:14: command in task 'a' must be a string, got a list",
                          "d.yaml:11:17: depends_on in task 'a' must be a list, got 'b'",
                          "d.yaml:12:17: partitions in task 'a' must be a mapping, got a list",
                          "d.yaml:13:12: retry in task 'a' must be a mapping, got '3'",
                          "d.yaml:14:10: env in task 'a' must be a mapping, got a list",
                          "d.yaml:15:5: task #2 must be a mapping with at least id and command, got 'just a string'"));
  EXPECT_THAT(Errors("dag: d\ntasks: {a: 1}\n"), ElementsAre("d.yaml:2:8: tasks must be a list, got a mapping"));
}

TEST(LoaderTest, ReportsBadIntegersBooleansAndNumbers) {
  EXPECT_THAT(Errors(R"yaml(dag: d
max_active_runs: abc
max_active_tasks: 1.5
catchup: maybe
paused: 1
tasks:
  - id: a
    command: x
    priority: high
    retry: {retries: two, factor: fast, jitter: 2}
)yaml"),
              ElementsAre("d.yaml:2:18: max_active_runs must be an integer, got 'abc'",
                          "d.yaml:3:19: max_active_tasks must be an integer, got '1.5'",
                          "d.yaml:4:10: catchup must be true or false, got 'maybe'",
                          "d.yaml:5:9: paused must be true or false, got '1'",
                          "d.yaml:9:15: priority in task 'a' must be an integer, got 'high'",
                          "d.yaml:10:22: retry.retries in task 'a' must be an integer, got 'two'",
                          "d.yaml:10:35: retry.factor in task 'a' must be a number, got 'fast'",
                          "d.yaml:10:49: retry.jitter in task 'a' must be true or false, got '2'"));
}

TEST(LoaderTest, ReportsOutOfRangeValues) {
  EXPECT_THAT(Errors(R"yaml(dag: d
max_active_runs: 0
max_active_tasks: -1
defaults:
  priority: 99999999999
  retry: {retries: -1, factor: 0.5, retry_on_exit_codes: [1, 256, x]}
tasks:
  - {id: a, command: x}
)yaml"),
              ElementsAre("d.yaml:2:18: max_active_runs must be >= 1, got 0",
                          "d.yaml:3:19: max_active_tasks must be >= 1, got -1",
                          "d.yaml:5:13: defaults.priority must be <= 2147483647, got 99999999999",
                          "d.yaml:6:20: defaults.retry.retries must be >= 0, got -1",
                          "d.yaml:6:32: defaults.retry.factor must be >= 1, got '0.5'",
                          "d.yaml:6:62: defaults.retry.retry_on_exit_codes must contain exit codes 0-255, got '256'",
                          "d.yaml:6:67: defaults.retry.retry_on_exit_codes must contain exit codes 0-255, got 'x'"));
}

TEST(LoaderTest, ReportsBadDurations) {
  EXPECT_THAT(Errors(R"yaml(dag: d
slo: {max_duration: 0, freshness: soon}
defaults: {timeout: [1]}
tasks:
  - {id: a, command: x, timeout: 5x, retry: {delay: -1s}}
)yaml"),
              ElementsAre("d.yaml:2:21: slo.max_duration must be greater than 0",
                          "d.yaml:2:35: slo.freshness: invalid duration 'soon': expected a number with a unit ms, s, m, "
                          "h or d (e.g. 500ms, 10s, 5m, 2h, 1d), or a bare number of seconds",
                          "d.yaml:3:21: defaults.timeout must be a duration such as 30s, 5m or 2h, got a list",
                          "d.yaml:5:34: timeout in task 'a': invalid duration '5x': expected a number with a unit ms, s, "
                          "m, h or d (e.g. 500ms, 10s, 5m, 2h, 1d), or a bare number of seconds",
                          "d.yaml:5:53: retry.delay in task 'a': invalid duration '-1s': expected a number with a unit "
                          "ms, s, m, h or d (e.g. 500ms, 10s, 5m, 2h, 1d), or a bare number of seconds"));
}

TEST(LoaderTest, ReportsBadEnumValuesWithSuggestion) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: a
    command: x
    trigger_rule: all_sucess
    retry: {backoff: exponental}
  - id: b
    command: x
    depends_on: [{task: a, partitions: some}]
)yaml"),
              ElementsAre("d.yaml:5:19: trigger_rule in task 'a' must be one of all_success, all_done, one_success, "
                          "one_failed, none_failed, all_failed, got 'all_sucess' (did you mean 'all_success'?)",
                          "d.yaml:6:22: retry.backoff in task 'a' must be fixed or exponential, got 'exponental' "
                          "(did you mean 'exponential'?)",
                          "d.yaml:9:40: depends_on.partitions in task 'b' must be same or all, got 'some'"));
}

TEST(LoaderTest, ReportsBadCronWithCronMessage) {
  EXPECT_THAT(Errors("dag: d\nschedule: \"61 * * * *\"\ntasks: [{id: a, command: x}]\n"),
              ElementsAre("d.yaml:2:11: invalid cron expression '61 * * * *': minute 61 is out of range 0-59"));
}

TEST(LoaderTest, ReportsUnknownTimeZone) {
  EXPECT_THAT(Errors("dag: d\ntimezone: Mars/Olympus_Mons\ntasks: [{id: a, command: x}]\n"),
              ElementsAre("d.yaml:2:11: unknown time zone 'Mars/Olympus_Mons'"));
}

TEST(LoaderTest, ReportsBadDatesAndEndBeforeStart) {
  EXPECT_THAT(Errors("dag: d\nstart_date: 2026-02-30\ntasks: [{id: a, command: x}]\n"),
              ElementsAre("d.yaml:2:13: start_date: invalid time '2026-02-30': there is no day 30 in February 2026"));
  EXPECT_THAT(Errors("dag: d\nstart_date: 2026-05-01\nend_date: 2026-01-01\ntasks: [{id: a, command: x}]\n"),
              ElementsAre("d.yaml:3:11: end_date '2026-01-01' is before start_date '2026-05-01'"));
}

TEST(LoaderTest, ReportsInvalidNames) {
  EXPECT_THAT(Errors(R"yaml(dag: "my dag"
params: {"bad key": 1}
triggers:
  - after_dag: ../../etc
defaults: {pool: "a/b"}
tasks:
  - id: "extract data"
    command: x
  - id: ".."
    command: x
    pool: p
    partitions: {values: [us, "e u", ""]}
  - id: "a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a123456789a12345678"
    command: x
)yaml"),
              ElementsAre("d.yaml:1:6: invalid dag name 'my dag': names must be 1-128 characters from [A-Za-z0-9_.-]",
                          "d.yaml:2:10: invalid param name 'bad key': names must be 1-128 characters from [A-Za-z0-9_.-]",
                          "d.yaml:4:16: invalid after_dag name '../../etc': names must be 1-128 characters from "
                          "[A-Za-z0-9_.-]",
                          "d.yaml:5:18: invalid pool name 'a/b': names must be 1-128 characters from [A-Za-z0-9_.-]",
                          "d.yaml:7:9: invalid task id 'extract data': names must be 1-128 characters from "
                          "[A-Za-z0-9_.-]",
                          "d.yaml:9:9: invalid task id '..': '.' and '..' are not allowed as names",
                          "d.yaml:12:31: invalid partition value 'e u': names must be 1-128 characters from "
                          "[A-Za-z0-9_.-]",
                          "d.yaml:12:38: invalid partition value '': names must be 1-128 characters from [A-Za-z0-9_.-]",
                          "d.yaml:13:9: invalid task id 'a123456789a123456789a123456789a123456789a123456789a123456789...': "
                          "names must be 1-128 characters from [A-Za-z0-9_.-]"));
}

TEST(LoaderTest, InvalidTaskIdDoesNotCascadeIntoUnknownDependencies) {
  EXPECT_THAT(Errors("dag: d\ntasks:\n  - {id: \"a b\", command: x}\n  - {id: c, command: x, depends_on: [a b]}\n"),
              ElementsAre("d.yaml:3:10: invalid task id 'a b': names must be 1-128 characters from [A-Za-z0-9_.-]"));
}

TEST(LoaderTest, ReportsBadEnvironmentNames) {
  EXPECT_THAT(Errors(R"yaml(dag: d
env: {1X: a, BATCHD_DAG: b, OK: [1]}
tasks:
  - {id: a, command: x, env: {"A-B": c}}
)yaml"),
              ElementsAre("d.yaml:2:7: invalid environment variable name '1X' in env: names must match "
                          "[A-Za-z_][A-Za-z0-9_]*",
                          "d.yaml:2:14: environment variable 'BATCHD_DAG' in env is reserved: names starting with "
                          "BATCHD_ are set by batchd",
                          "d.yaml:2:33: env.OK must be a string, got a list",
                          "d.yaml:4:31: invalid environment variable name 'A-B' in env of task 'a': names must match "
                          "[A-Za-z_][A-Za-z0-9_]*"));
}

TEST(LoaderTest, ReportsTriggerErrors) {
  EXPECT_THAT(Errors(R"yaml(dag: self
triggers:
  - after_dag: self
  - file: in/*.csv
  - {}
  - {after_dag: a, file: /x}
  - 5
tasks: [{id: a, command: x}]
)yaml"),
              ElementsAre("d.yaml:3:16: after_dag trigger on the DAG itself ('self') would start runs forever",
                          "d.yaml:4:11: triggers.file must be an absolute path, got 'in/*.csv'",
                          "d.yaml:5:5: each trigger must have exactly one of after_dag or file",
                          "d.yaml:6:20: each trigger must have exactly one of after_dag or file",
                          "d.yaml:7:5: each trigger must be a mapping such as {after_dag: NAME} or {file: GLOB}, got '5'"));
}

TEST(LoaderTest, ReportsPartitionErrors) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - {id: a, command: x, partitions: {values: [a, a]}}
  - {id: b, command: x, partitions: {range: [5, 5]}}
  - {id: c, command: x, partitions: {range: [0, 2000000]}}
  - {id: d, command: x, partitions: {values: [a], command: ls}}
  - {id: e, command: x, partitions: {values: []}}
  - {id: f, command: x, partitions: {range: [1]}}
  - {id: g, command: x, partitions: {range: [a, 2]}}
  - {id: h, command: x, partitions: {}}
  - {id: i, command: x, partitions: {command: ""}}
)yaml"),
              ElementsAre("d.yaml:3:50: duplicate partition value 'a' in partitions of task 'a'",
                          "d.yaml:4:45: partitions.range in task 'b' must have begin < end, got [5, 5]",
                          "d.yaml:5:45: partitions.range in task 'c' has 2000000 partitions (the limit is 1000000)",
                          "d.yaml:6:51: partitions in task 'd' must have exactly one of values, range or command",
                          "d.yaml:7:46: partitions.values in task 'e' must not be empty",
                          "d.yaml:8:45: partitions.range in task 'f' must be a list of two integers [begin, end], got "
                          "a list",
                          "d.yaml:9:46: partitions.range in task 'g' must be an integer, got 'a'",
                          "d.yaml:10:37: partitions in task 'h' must have exactly one of values, range or command",
                          "d.yaml:11:47: partitions.command in task 'i' must not be empty"));
}

// --- graph ------------------------------------------------------------------------------

TEST(LoaderTest, ReportsDuplicateTaskIdWithFirstDefinitionLine) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: extract
    command: x
  - id: load
    command: x
  - id: extract
    command: y
)yaml"),
              ElementsAre("d.yaml:7:9: duplicate task id 'extract' (first defined at line 3)"));
}

TEST(LoaderTest, ReportsUnknownDependencyWithSuggestion) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - {id: extract, command: x}
  - {id: load, command: x, depends_on: [extrct, {task: nothing_like_it}]}
)yaml"),
              ElementsAre("d.yaml:4:41: task 'load' depends on unknown task 'extrct' (did you mean 'extract'?)",
                          "d.yaml:4:56: task 'load' depends on unknown task 'nothing_like_it'"));
}

TEST(LoaderTest, ReportsRepeatedDependency) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - {id: a, command: x}
  - {id: b, command: x, depends_on: [a, {task: a}]}
)yaml"),
              ElementsAre("d.yaml:4:48: task 'b' lists 'a' in depends_on more than once"));
}

TEST(LoaderTest, ReportsDependencyCycleInPathOrder) {
  // a runs after c, b after a, c after b: starting at a (first in the file), data flows
  // a -> b -> c -> a.
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - {id: a, command: x, depends_on: [c]}
  - {id: b, command: x, depends_on: [a]}
  - {id: c, command: x, depends_on: [b]}
)yaml"),
              ElementsAre("d.yaml:3:10: dependency cycle: a -> b -> c -> a"));
}

TEST(LoaderTest, ReportsSelfDependencyAsCycle) {
  EXPECT_THAT(Errors("dag: d\ntasks:\n  - {id: a, command: x, depends_on: [a]}\n"),
              ElementsAre("d.yaml:3:10: dependency cycle: a -> a"));
}

TEST(LoaderTest, ReportsOneErrorPerCycle) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - {id: start, command: x}
  - {id: p, command: x, depends_on: [start, q]}
  - {id: q, command: x, depends_on: [p]}
  - {id: r, command: x, depends_on: [s]}
  - {id: s, command: x, depends_on: [r, t]}
  - {id: t, command: x, depends_on: [s]}
  - {id: end, command: x, depends_on: [q, t]}
)yaml"),
              ElementsAre("d.yaml:4:10: dependency cycle: p -> q -> p", "d.yaml:6:10: dependency cycle: r -> s -> r"));
}

TEST(LoaderTest, ReportsPartitionsSameBetweenDifferentSets) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - {id: values3, command: x, partitions: {values: [us, eu, apac]}}
  - {id: values2, command: x, partitions: {values: [us, eu]}}
  - {id: range, command: x, partitions: {range: [0, 3]}}
  - {id: cmd, command: x, partitions: {command: ls /a}}
  - {id: none, command: x}
  - id: t1
    command: x
    partitions: {values: [us, eu]}
    depends_on: [{task: values3, partitions: same}]
  - id: t2
    command: x
    partitions: {command: ls /b}
    depends_on: [{task: cmd, partitions: same}]
  - id: t3
    command: x
    depends_on: [{task: range, partitions: same}]
)yaml"),
              ElementsAre("d.yaml:11:25: task 't1' uses partitions: same on 'values3', but their partitions differ "
                          "(t1: values [us, eu]; values3: values [us, eu, apac])",
                          "d.yaml:15:25: task 't2' uses partitions: same on 'cmd', but their partitions differ "
                          "(t2: command 'ls /b'; cmd: command 'ls /a')",
                          "d.yaml:18:25: task 't3' uses partitions: same on 'range', but their partitions differ "
                          "(t3: no partitions; range: range [0, 3])"));
}

TEST(LoaderTest, AcceptsPartitionsSameBetweenEqualSets) {
  DagPtr dag = MustLoad(R"yaml(dag: d
tasks:
  - {id: v, command: x, partitions: {values: ["2", "0", "1"]}}
  - {id: r, command: x, partitions: {range: [0, 3]}, depends_on: [{task: v, partitions: same}]}
  - {id: c1, command: x, partitions: {command: ls /data}}
  - {id: c2, command: x, partitions: {command: ls /data}, depends_on: [{task: c1, partitions: same}]}
)yaml");
  EXPECT_NE(dag, nullptr);
}

// --- templates --------------------------------------------------------------------------

TEST(LoaderTest, ReportsUnknownTemplateVariablesAtTheirPosition) {
  EXPECT_THAT(Errors(R"yaml(dag: d
params: {region: eu}
tasks:
  - id: a
    command: echo {{ dss }} {{ params.regoin }} {{ params.region }}
    idempotency_key: "{{ dag }}/{{ run }}"
  - id: b
    command: |
      echo ok
      echo {{ ds }} {{nope}}
  - id: c
    command: echo {{ params.trigger_file }} {{ partition
)yaml"),
              ElementsAre("d.yaml:5:19: unknown template variable 'dss' in command of task 'a' (did you mean 'ds'?)",
                          "d.yaml:5:29: unknown template variable 'params.regoin' in command of task 'a' "
                          "(did you mean 'params.region'?)",
                          "d.yaml:6:33: unknown template variable 'run' in idempotency_key of task 'a'",
                          "d.yaml:10:21: unknown template variable 'nope' in command of task 'b'",
                          "d.yaml:12:19: unknown template variable 'params.trigger_file' in command of task 'c'",
                          "d.yaml:12:45: unterminated '{{' in command of task 'c'"));
}

TEST(LoaderTest, AllowsTriggerFileParamOnlyWithAFileTrigger) {
  EXPECT_NE(MustLoad(R"yaml(dag: d
triggers: [{file: /in/*.csv}]
tasks: [{id: a, command: "wc -l {{ params.trigger_file }}"}]
)yaml"),
            nullptr);
}

TEST(LoaderTest, PartitionsCommandMayUseOnlyRunVariables) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: a
    command: x
    partitions: {command: "ls /data/{{ ds }}/{{ partition }}"}
)yaml"),
              ElementsAre("d.yaml:5:46: template variable 'partition' is not available in partitions.command of "
                          "task 'a'"));
}

// --- many errors --------------------------------------------------------------------------

TEST(LoaderTest, ReportsSeveralErrorsAtOnceInFileOrder) {
  EXPECT_THAT(Errors(R"yaml(dag: nightly billing
schedule: "* * *"
timezone: Europe/Berlinn
max_active_runs: abc
tasks:
  - id: extract
    comand: ./extract.sh
  - id: load
    command: ./load.sh {{ dayz }}
    depends_on: [extract, transform]
)yaml"),
              ElementsAre("d.yaml:1:6: invalid dag name 'nightly billing': names must be 1-128 characters from "
                          "[A-Za-z0-9_.-]",
                          "d.yaml:2:11: invalid cron expression '* * *': expected 5 fields (minute hour day-of-month "
                          "month day-of-week), got 3",
                          "d.yaml:3:11: unknown time zone 'Europe/Berlinn'",
                          "d.yaml:4:18: max_active_runs must be an integer, got 'abc'",
                          "d.yaml:6:5: missing required key 'command' in task 'extract'",
                          "d.yaml:7:5: unknown key 'comand' in task 'extract' (did you mean 'command'?)",
                          "d.yaml:9:24: unknown template variable 'dayz' in command of task 'load'",
                          "d.yaml:10:27: task 'load' depends on unknown task 'transform'"));
}

TEST(LoaderTest, CapsTheNumberOfErrors) {
  std::string yaml = "dag: d\ntasks:\n";
  for (int i = 0; i < 500; ++i) yaml += "  - {id: t" + std::to_string(i) + ", comand: x}\n";
  LoadResult r = LoadDagString(yaml, "d.yaml");
  ASSERT_EQ(r.errors.size(), 201u);
  EXPECT_EQ(r.errors.back().ToString(), "d.yaml: too many errors: showing the first 200 of 1000");
}

TEST(LoaderTest, AcceptsTheRawFilterInCommandsAndKeys) {
  auto dag = MustLoad(R"yaml(dag: d
params: {flags: "-v -x"}
tasks:
  - id: a
    command: ./run.sh {{ params.flags | raw }} "{{ ds|raw }}"
    idempotency_key: "{{ dag }}/{{ ds | raw }}"
)yaml");
  ASSERT_NE(dag, nullptr);
}

TEST(LoaderTest, RejectsUnknownTemplateFiltersWithTheirPosition) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: a
    command: echo {{ ds | foo }}
    idempotency_key: "k/{{ ds | raww }}"
)yaml"),
              ElementsAre("d.yaml:4:19: unknown template filter 'foo' in command of task 'a'",
                          "d.yaml:5:25: unknown template filter 'raww' in idempotency_key of task 'a' "
                          "(did you mean 'raw'?)"));
}

TEST(LoaderTest, RejectsCommandPlaceholdersThatCannotBeQuoted) {
  EXPECT_THAT(Errors(R"yaml(dag: d
tasks:
  - id: a
    command: echo ${x:-{{ ds }}}
    partitions: {command: "echo $'{{ ds }}'"}
    idempotency_key: "${x:-{{ ds }}}"
)yaml"),
              ElementsAre("d.yaml:4:24: cannot quote template variable 'ds' inside ${...} in command of task 'a' "
                          "(assign it to a shell variable first, or write '{{ ds | raw }}')",
                          "d.yaml:5:35: cannot quote template variable 'ds' inside $'...' in partitions.command of "
                          "task 'a' (use '...' or \"...\" instead, or write '{{ ds | raw }}')"));
}

// Pools are the daemon's: the loader accepts any name, CheckPools reports each `pool:`
// value the daemon does not define, once per position, in file order.
TEST(LoaderTest, CheckPoolsReportsUndefinedPoolsAtTheirValues) {
  DagPtr dag = MustLoad(R"(dag: d
defaults: {pool: nightly}
tasks:
  - id: a
    command: "true"
    pool: inference
  - id: b
    command: "true"
  - id: c
    command: "true"
  - id: e
    command: "true"
    pool: gpu
)");
  ASSERT_NE(dag, nullptr);
  auto strings = [](const std::vector<Diagnostic>& ds) {
    std::vector<std::string> out;
    for (const auto& d : ds) out.push_back(d.ToString());
    return out;
  };
  EXPECT_THAT(strings(CheckPools(*dag, {{"gpu", 1}, {"warehouse", 4}})),
              ElementsAre("d.yaml:2:18: pool 'nightly' is not defined in the daemon config (pools: gpu, warehouse)",
                          "d.yaml:6:11: pool 'inference' is not defined in the daemon config (pools: gpu, warehouse)"));
  EXPECT_THAT(strings(CheckPools(*dag, {})),
              ElementsAre("d.yaml:2:18: pool 'nightly' is not defined in the daemon config (it defines no pools)",
                          "d.yaml:6:11: pool 'inference' is not defined in the daemon config (it defines no pools)",
                          "d.yaml:13:11: pool 'gpu' is not defined in the daemon config (it defines no pools)"));
  EXPECT_THAT(CheckPools(*dag, {{"gpu", 1}, {"inference", 2}, {"nightly", 1}}), IsEmpty());
}

}  // namespace
}  // namespace batchd::dag
