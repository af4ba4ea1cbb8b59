// End-to-end tests of the daemon's own log in `log_format: json` (docs/logs.md, "The
// daemon's own log"): every line batchd serve writes on stderr is one JSON object, whatever
// bytes partition names and errors hold, and the lines about a DAG, a run, a task instance
// or an attempt carry dag, run_id, task, partition and attempt as keys of their own.

#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;

const char* const kContextKeys[] = {"dag", "run_id", "task", "partition", "attempt"};

// U+FFFD, what a byte that is not UTF-8 becomes in a json line.
const std::string kReplacement = "\xEF\xBF\xBD";

// Every line of `log` as a JSON object; a test failure for each line that is not one.
std::vector<Json> ParseLines(const std::string& log) {
  std::vector<Json> lines;
  EXPECT_TRUE(log.empty() || log.back() == '\n') << "the log ends mid-line:\n" << log;
  size_t pos = 0;
  while (pos < log.size()) {
    size_t nl = log.find('\n', pos);
    if (nl == std::string::npos) nl = log.size();
    const std::string line = log.substr(pos, nl - pos);
    pos = nl + 1;
    Json parsed = Json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_discarded() || !parsed.is_object()) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    lines.push_back(std::move(parsed));
  }
  return lines;
}

// Python's strict decoder and parser agree: the whole log is UTF-8, and each line a
// JSON object. Prints the number of lines.
ProcResult CheckWithPython(const std::string& log_path) {
  return RunProcess({"/usr/bin/python3", "-c",
                     "import json, sys\n"
                     "text = open(sys.argv[1], 'rb').read().decode('utf-8')\n"
                     "lines = text.split('\\n')\n"
                     "assert lines[-1] == '', 'the log ends mid-line'\n"
                     "for line in lines[:-1]:\n"
                     "    assert isinstance(json.loads(line), dict), line\n"
                     "print(len(lines) - 1)\n",
                     log_path});
}

std::string Str(const Json& line, const char* key) {
  return line.contains(key) && line[key].is_string() ? line[key].get<std::string>() : "";
}

// The lines whose message contains `text`.
std::vector<Json> LinesWith(const std::vector<Json>& lines, const std::string& text) {
  std::vector<Json> out;
  for (const auto& line : lines)
    if (Str(line, "msg").find(text) != std::string::npos) out.push_back(line);
  return out;
}

// The context keys `line` carries, in kContextKeys order.
std::vector<std::string> ContextKeys(const Json& line) {
  std::vector<std::string> keys;
  for (const char* key : kContextKeys)
    if (line.contains(key)) keys.push_back(key);
  return keys;
}

using Keys = std::vector<std::string>;

class StructuredLogsTest : public DaemonTest {};

TEST_F(StructuredLogsTest, JsonLinesParseAndCarryTheRunTaskPartitionAndAttempt) {
  ASSERT_TRUE(StartDaemon({.config_yaml = "log_format: json\n"}));
  // Partition names with bytes that are not UTF-8, quotes and a tab; each attempt fails.
  SubmitDag("jsonlogs.yaml", R"(dag: jsonlogs
tasks:
  - id: per_part
    partitions: {command: "printf '\\377\\376\\n\"q\"\\nx\\ty\\n'"}
    retry: {retries: 1, delay: 100ms, backoff: fixed}
    command: echo "attempt $BATCHD_ATTEMPT"; exit 3
)");
  // A partitions command whose error message quotes a name that is not UTF-8.
  SubmitDag("dupes.yaml", R"(dag: dupes
tasks:
  - id: per_name
    partitions: {command: "printf '\\377\\n\\377\\n'"}
    command: "true"
)");
  const std::string run_id = Trigger("jsonlogs", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  const std::string dupes_run = Trigger("dupes", {"--date", "2026-03-01"});
  ASSERT_FALSE(dupes_run.empty());
  ASSERT_TRUE(WaitRunState(run_id, "failed")) << DaemonLog();
  ASSERT_TRUE(WaitRunState(dupes_run, "failed")) << DaemonLog();
  StopDaemon();
  const std::string log = DaemonLog();

  const std::vector<Json> lines = ParseLines(log);
  ASSERT_FALSE(lines.empty());
  const std::string log_path = tmp_ / "daemon.log";
  WriteFile(log_path, log);
  ProcResult python = CheckWithPython(log_path);
  EXPECT_EQ(python.exit_code, 0) << "python3 json.loads refused the log: " << python.Describe();
  EXPECT_EQ(python.out, std::to_string(lines.size()) + "\n") << python.Describe();
  for (const auto& line : lines) {
    EXPECT_TRUE(line["ts"].is_string()) << line;
    EXPECT_TRUE(line["level"].is_string()) << line;
    EXPECT_TRUE(line["msg"].is_string()) << line;
    if (line.contains("attempt")) EXPECT_TRUE(line["attempt"].is_number_integer()) << line;
  }

  // The daemon's own lines are about no run.
  auto serving = LinesWith(lines, "serving: data ");
  ASSERT_EQ(serving.size(), 1u) << log;
  EXPECT_EQ(ContextKeys(serving[0]), Keys{});
  EXPECT_EQ(serving[0]["level"], "info");
  auto stopped = LinesWith(lines, "batchd stopped");
  ASSERT_EQ(stopped.size(), 1u) << log;
  EXPECT_EQ(ContextKeys(stopped[0]), Keys{});

  // A DAG's lines carry its name.
  auto current = LinesWith(lines, "DAG jsonlogs version ");
  ASSERT_EQ(current.size(), 1u) << log;
  EXPECT_EQ(ContextKeys(current[0]), Keys{"dag"});
  EXPECT_EQ(current[0]["dag"], "jsonlogs");

  // A run's lines carry the DAG and the run.
  for (const std::string what : {" created: ", " started: ", " finished: failed"}) {
    auto found = LinesWith(lines, "run " + run_id + what);
    ASSERT_EQ(found.size(), 1u) << what << "\n" << log;
    EXPECT_EQ(ContextKeys(found[0]), (Keys{"dag", "run_id"})) << found[0];
    EXPECT_EQ(found[0]["dag"], "jsonlogs");
    EXPECT_EQ(found[0]["run_id"], run_id);
  }

  // An attempt's lines carry the task, the partition (bytes that are not UTF-8 as U+FFFD)
  // and the attempt's number, whichever partition it is.
  const std::set<std::string> partitions = {kReplacement + kReplacement, "\"q\"", "x\ty"};
  std::set<std::string> retried, failed;
  for (const auto& line : LinesWith(lines, "run " + run_id + " task per_part[")) {
    EXPECT_EQ(ContextKeys(line), (Keys{"dag", "run_id", "task", "partition", "attempt"})) << line;
    EXPECT_EQ(line["dag"], "jsonlogs") << line;
    EXPECT_EQ(line["run_id"], run_id) << line;
    EXPECT_EQ(line["task"], "per_part") << line;
    const std::string partition = Str(line, "partition");
    EXPECT_TRUE(partitions.count(partition)) << line;
    EXPECT_THAT(Str(line, "msg"), HasSubstr("task per_part[" + partition + "]: ")) << line;
    if (Str(line, "msg").find(": attempt 1 failed, retry in ") != std::string::npos) {
      EXPECT_EQ(line["attempt"], 1) << line;
      EXPECT_EQ(line["level"], "info") << line;
      EXPECT_TRUE(retried.insert(partition).second) << line;
    } else if (Str(line, "msg").find(": failed after 2 attempt(s) (failed)") != std::string::npos) {
      EXPECT_EQ(line["attempt"], 2) << line;
      EXPECT_EQ(line["level"], "warning") << line;
      EXPECT_TRUE(failed.insert(partition).second) << line;
    } else {
      ADD_FAILURE() << "unexpected line: " << line;
    }
  }
  EXPECT_EQ(retried, partitions) << log;
  EXPECT_EQ(failed, partitions) << log;

  // An error that quotes bytes from outside stays one line, the bytes shown as U+FFFD.
  auto dupes = LinesWith(lines, "run " + dupes_run + ": ");
  ASSERT_EQ(dupes.size(), 1u) << log;
  EXPECT_EQ(dupes[0]["msg"], "run " + dupes_run + ": task 'per_name': partitions command printed the partition '" +
                                 kReplacement + "' twice");
  EXPECT_EQ(dupes[0]["level"], "error");
  EXPECT_EQ(ContextKeys(dupes[0]), (Keys{"dag", "run_id"})) << dupes[0];
  EXPECT_EQ(dupes[0]["dag"], "dupes");
  EXPECT_EQ(dupes[0]["run_id"], dupes_run);
}

TEST_F(StructuredLogsTest, TextIsTheDefaultAndShowsNoFields) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("plain.yaml", R"(dag: plain
tasks:
  - id: fail
    command: exit 3
)");
  const std::string run_id = Trigger("plain", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  ASSERT_TRUE(WaitRunState(run_id, "failed")) << DaemonLog();
  StopDaemon();
  const std::string log = DaemonLog();
  EXPECT_THAT(log, HasSubstr(" warning run " + run_id + " task fail[-]: failed after 1 attempt(s) (failed)\n"));
  EXPECT_THAT(log, HasSubstr(" info run " + run_id + " finished: failed\n"));
  EXPECT_EQ(log.find("{\""), std::string::npos) << log;
}

}  // namespace
}  // namespace batchd::e2e
