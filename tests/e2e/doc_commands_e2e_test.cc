// The commands README.md and docs/*.md show, run as written against the real batchd and
// batchctl, so that a documented command that no longer works fails CI.
//
// - README.md, the block after "While `scripts/run.sh` serves": each `./build/batchctl` and
//   `curl` line runs through /bin/sh against a daemon serving the example DAGs of dags/
//   (the embedded default config, as scripts/run.sh serves them), with `<run_id>` the run
//   the README's `trigger ... --wait` line started. Each must exit 0 and print what it
//   promises.
// - README.md, "One run without a daemon": the `./build/batchd run ...` line, twice in the
//   same working directory: both exit 0, the second skips every instance that succeeded.
// - Every line of a fenced block in README.md and docs/*.md that starts with `batchctl ` or
//   `./build/batchctl ` (or `$ batchctl `, a transcript whose output follows it) runs
//   against a daemon holding real objects for the placeholders (RUN, DAG, TASK, P, ...): a
//   finished, failed run of a small DAG with a partitioned task. None may be a usage error
//   (exit 2), unable to reach the daemon (exit 3) or name something that does not exist
//   (exit 4); a transcript's output must be what the doc shows.
//
// The README's service section needs root and systemd and is not run here; its batchctl line
// (`batchctl --socket /run/batchd/batchd.sock health`) is, with this daemon's socket.
// tests/packaging/packaging_test.sh (ctest label `packaging`) tests the rest against this
// build tree: `cmake --install --strip`, the unit it installs, `cpack -G DEB`, and, as root
// under CI, the package's apt install (its postinst runs the systemd-sysusers and
// systemd-tmpfiles lines) and purge. The systemctl and usermod lines need systemd as PID 1
// and a login session: no test runs them.

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

std::string Source(const std::string& rel) { return std::string(BATCHD_SOURCE_DIR) + "/" + rel; }

// `s` as one word for /bin/sh.
std::string ShQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// `line` without a trailing shell comment (an unquoted `#` after whitespace) and without
// trailing blanks.
std::string StripComment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '#' && i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return Trim(line.substr(0, i));
    }
  }
  return Trim(line);
}

// `text` with every whitespace-delimited word equal to `word` replaced by `value`.
std::string ReplaceWord(const std::string& text, const std::string& word, const std::string& value) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (std::isspace(static_cast<unsigned char>(text[i]))) {
      out += text[i++];
      continue;
    }
    size_t end = i;
    while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
    const std::string w = text.substr(i, end - i);
    out += w == word ? value : w;
    i = end;
  }
  return out;
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
    text.replace(pos, from.size(), to);
  return text;
}

std::vector<std::string> Words(const std::string& text) {
  std::vector<std::string> words;
  std::istringstream in(text);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

// The batchctl subcommand of a command line (`batchctl [--socket S] [--json] CMD ...`).
std::string Subcommand(const std::string& command) {
  std::vector<std::string> w = Words(command);
  for (size_t i = 1; i < w.size(); ++i) {
    if (w[i] == "--socket") {
      ++i;
      continue;
    }
    if (w[i].rfind("-", 0) != 0) return w[i];
  }
  return "";
}

// A command shown in a fenced code block.
struct DocCommand {
  std::string doc;      // "README.md", "docs/observability.md"
  int line = 0;         // 1-based
  std::string command;  // without the prompt and the trailing comment
  // For a transcript line (`$ batchctl ...`): the output lines shown after it.
  bool transcript = false;
  std::vector<std::string> output;
};

// One line of a fenced code block: its 1-based number, its text and its block's index.
struct FencedLine {
  int line = 0;
  int block = 0;
  std::string text;
};

std::vector<FencedLine> FencedLines(const std::string& text) {
  std::vector<FencedLine> out;
  bool in_block = false;
  int block = -1;
  int n = 0;
  for (const std::string& line : Lines(text)) {
    ++n;
    const std::string t = Trim(line);
    if (t.rfind("```", 0) == 0 || t.rfind("~~~", 0) == 0) {
      in_block = !in_block;
      if (in_block) ++block;
      continue;
    }
    if (in_block) out.push_back({n, block, line});
  }
  return out;
}

// Lines of fenced blocks of `doc` (relative to the source tree) that start with `batchctl `
// or `./build/batchctl `, or are a `$ batchctl ...` transcript (with the lines up to the
// next `$ ` line or the end of its block as its output).
std::vector<DocCommand> BatchctlLines(const std::string& doc) {
  std::vector<DocCommand> out;
  const std::vector<FencedLine> lines = FencedLines(ReadFile(Source(doc)).value_or(""));
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string t = Trim(lines[i].text);
    if (t.rfind("batchctl ", 0) == 0 || t.rfind("./build/batchctl ", 0) == 0) {
      out.push_back({doc, lines[i].line, StripComment(t)});
    } else if (t.rfind("$ batchctl ", 0) == 0) {
      DocCommand c{doc, lines[i].line, StripComment(t.substr(2)), /*transcript=*/true, {}};
      for (size_t j = i + 1; j < lines.size() && lines[j].block == lines[i].block &&
                             Trim(lines[j].text).rfind("$ ", 0) != 0;
           ++j)
        c.output.push_back(lines[j].text);
      out.push_back(c);
    }
  }
  return out;
}

// The same DAG files as dags/ with their output root /tmp/batchd-examples moved into `root`:
// the tasks and their structure are the examples', and tests running at the same time do
// not share the files they write.
void CopyExampleDags(const std::string& to_dir, const std::string& root) {
  fs::create_directories(to_dir);
  for (const auto& e : fs::directory_iterator(Source("dags"))) {
    if (e.path().extension() != ".yaml" && e.path().extension() != ".yml") continue;
    const std::string yaml = ReadFile(e.path().string()).value_or("");
    ASSERT_FALSE(yaml.empty()) << e.path();
    WriteFile(to_dir + "/" + e.path().filename().string(), ReplaceAll(yaml, "/tmp/batchd-examples", root));
  }
}

ProcResult Sh(const std::string& command, milliseconds timeout = milliseconds(15000)) {
  return RunProcess({"/bin/sh", "-c", command}, timeout);
}

// Output lines of `batchd run` that report one instance ("12:34:56 reconcile[eu] success
// attempts=1 exit=0"), without the time, sorted (instances end in any order).
std::vector<std::string> InstanceEvents(const std::vector<std::string>& lines) {
  static const std::regex kEvent("^[0-9]{2}:[0-9]{2}:[0-9]{2} (\\S+\\[\\S+\\] .*)$");
  std::vector<std::string> events;
  std::smatch m;
  for (const auto& line : lines)
    if (std::regex_match(line, m, kEvent)) events.push_back(m[1]);
  std::sort(events.begin(), events.end());
  return events;
}

// nightly_billing's instances, sorted as InstanceEvents sorts them.
const std::vector<std::string> kBillingInstances = {
    "audit[-]",           "cleanup[-]",       "extract_charges[apac]", "extract_charges[eu]", "extract_charges[us]",
    "extract_usage[apac]", "extract_usage[eu]", "extract_usage[us]",     "prepare[-]",          "publish[-]",
    "reconcile[apac]",    "reconcile[eu]",    "reconcile[us]"};

std::vector<std::string> BillingEvents(const std::string& what) {
  std::vector<std::string> out;
  for (const auto& i : kBillingInstances) out.push_back(i + " " + what);
  std::sort(out.begin(), out.end());
  return out;
}

class DocCommands : public DaemonTest {
 protected:
  // The built batchctl talking to this test's daemon, as a /bin/sh command prefix.
  std::string Batchctl() const { return ShQuote(BATCHCTL_BIN) + " --socket " + ShQuote(socket_); }

  // Polls until no run is queued or running (runs started by a command, and the after_dag
  // runs those start, have ended).
  ::testing::AssertionResult WaitIdle() {
    if (WaitFor([&] { return Count("SELECT COUNT(*) FROM runs WHERE state IN ('queued', 'running')") == 0; },
                milliseconds(20000), milliseconds(50)))
      return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "runs still active: " << Q("SELECT run_id, dag, state FROM runs").dump()
                                         << "\n--- batchd stderr ---\n"
                                         << DaemonLog();
  }
};

// --- README: while scripts/run.sh serves -------------------------------------------------

constexpr char kServeAnchor[] = "While `scripts/run.sh` serves";
// The README block's commands, in order, by what each one is (batchctl's subcommand, or
// "curl"). A change to that block must be mirrored here, with what the new line prints.
const std::vector<std::string> kServeBlock = {"dags", "trigger", "status", "attempts", "logs", "curl"};

TEST_F(DocCommands, ReadmeServeBlockWorksAgainstTheExampleDags) {
  const std::string readme = ReadFile(Source("README.md")).value_or("");
  ASSERT_FALSE(readme.empty()) << "cannot read " << Source("README.md");
  const size_t anchor = readme.find(kServeAnchor);
  ASSERT_NE(anchor, std::string::npos) << "README.md has no paragraph '" << kServeAnchor
                                       << "': update doc_commands_e2e_test.cc to the README's new shape";
  std::vector<std::string> commands;
  {
    const std::vector<FencedLine> fenced = FencedLines(readme.substr(anchor));
    for (const auto& l : fenced) {
      if (l.block != 0) break;  // only the first block after the paragraph
      const std::string t = Trim(l.text);
      if (t.rfind("./build/batchctl ", 0) == 0 || t.rfind("curl ", 0) == 0) commands.push_back(StripComment(t));
    }
  }
  ASSERT_EQ(commands.size(), kServeBlock.size())
      << "README.md's block after '" << kServeAnchor << "' has " << commands.size() << " ./build/batchctl or curl "
      << "lines, the test expects " << kServeBlock.size()
      << ": update kServeBlock and the expectations in doc_commands_e2e_test.cc to the README";

  CopyExampleDags(dags_, tmp_ / "examples");
  const int port = FreeTcpPort();
  const std::string metrics = "127.0.0.1:" + std::to_string(port);
  DaemonOptions options;  // no --config: the embedded default, as scripts/run.sh serves
  options.http = metrics;
  ASSERT_TRUE(StartDaemon(options));

  std::string run_id;
  for (size_t i = 0; i < commands.size(); ++i) {
    const std::string& doc = commands[i];
    const std::string what = doc.rfind("curl ", 0) == 0 ? "curl" : Subcommand(doc);
    ASSERT_EQ(what, kServeBlock[i]) << "README line '" << doc
                                    << "' is not the expected one: update kServeBlock and its expectations";
    std::string cmd = doc;
    if (cmd.find("<run_id>") != std::string::npos) {
      ASSERT_FALSE(run_id.empty()) << "'" << doc << "' needs a run id, and no trigger line came before it";
      cmd = ReplaceAll(cmd, "<run_id>", run_id);
    }
    ASSERT_FALSE(std::regex_search(cmd, std::regex("<[A-Za-z_]+>")))
        << "'" << doc << "' has a placeholder this test does not fill in: extend doc_commands_e2e_test.cc";
    if (cmd.rfind("./build/batchctl ", 0) == 0) cmd = Batchctl() + cmd.substr(std::string("./build/batchctl").size());
    cmd = ReplaceAll(cmd, "127.0.0.1:9464", metrics);

    SCOPED_TRACE("README.md: " + doc + "\n  ran: " + cmd);
    ProcResult r = Sh(cmd, milliseconds(20000));
    ASSERT_EQ(r.exit_code, 0) << r.Describe() << "\n--- batchd stderr ---\n" << DaemonLog();

    if (what == "dags") {
      std::vector<std::string> first_words;
      for (const auto& line : Lines(r.out)) first_words.push_back(Words(line).empty() ? "" : Words(line)[0]);
      EXPECT_EQ(first_words, (std::vector<std::string>{"DAG", "backup", "ml_batch_inference", "nightly_billing"}))
          << r.out;
    } else if (what == "trigger") {
      std::smatch m;
      ASSERT_TRUE(std::regex_search(r.out, m, std::regex("^triggered nightly_billing: run ([0-9a-f]{12}) \\(")))
          << r.Describe();
      run_id = m[1];
      EXPECT_THAT(r.out, HasSubstr("run " + run_id + " success in ")) << r.out;
      EXPECT_THAT(r.out, HasSubstr(" (13 success)\n")) << r.out;
      EXPECT_EQ(RunState(run_id), "success");
      EXPECT_EQ(Count("SELECT COUNT(*) FROM task_instances WHERE run_id = '" + run_id + "' AND state = 'success'"),
                13);
    } else if (what == "status") {
      // Per task, partitions counted by state.
      EXPECT_THAT(r.out, HasSubstr("run           " + run_id + "\n"));
      EXPECT_THAT(r.out, HasSubstr("state         success\n"));
      EXPECT_THAT(r.out, HasSubstr("logical date  2026-01-05T00:00:00+01:00\n"));
      EXPECT_THAT(r.out, HasSubstr("extract_usage    3 partitions: 3 success\n"
                                   "extract_charges  3 partitions: 3 success\n"
                                   "reconcile        3 partitions: 3 success\n"));
    } else if (what == "attempts") {
      const std::vector<std::string> lines = Lines(r.out);
      ASSERT_EQ(lines.size(), 4u) << r.out;
      EXPECT_EQ(Words(lines[0]), (std::vector<std::string>{"TASK", "PARTITION", "ATTEMPT", "OUTCOME", "REASON",
                                                           "STARTED", "DURATION", "CPU", "MAX", "RSS", "LOG"}));
      std::set<std::string> partitions;
      for (size_t k = 1; k < lines.size(); ++k) {
        const std::vector<std::string> w = Words(lines[k]);
        ASSERT_GE(w.size(), 7u) << lines[k];
        EXPECT_EQ(w[0], "reconcile");
        partitions.insert(w[1]);
        EXPECT_EQ(w[2], "1");
        EXPECT_EQ(w[3], "success");
        EXPECT_EQ(w[4] + " " + w[5] + " " + w[6], "exit code 0") << lines[k];
      }
      EXPECT_EQ(partitions, (std::set<std::string>{"apac", "eu", "us"}));
    } else if (what == "logs") {
      // nightly_billing's reconcile writes only to files: the attempt's log is empty, and
      // batchctl says so on stderr under the header naming the attempt.
      EXPECT_EQ(r.out, "");
      EXPECT_EQ(r.err, "== run " + run_id + " task reconcile[eu] attempt 1 of 1 (success, exit code 0) ==\n"
                       "(attempt 1 printed nothing)\n");
      continue;
    } else if (what == "curl") {
      const std::vector<std::string> lines = Lines(r.out);
      for (const auto& line : lines) EXPECT_EQ(line.rfind("batchd_", 0), 0u) << line;
      EXPECT_THAT(lines, ::testing::Contains(
                             "batchd_runs_total{dag=\"nightly_billing\",state=\"success\",trigger=\"manual\"} 1"));
    }
    EXPECT_FALSE(r.out.empty()) << r.Describe();
  }
  EXPECT_TRUE(WaitIdle());  // the backup run that nightly_billing's success starts (after_dag)
}

// --- README: one run without a daemon -------------------------------------------------------

TEST_F(DocCommands, ReadmeOneRunLineSucceedsAndTheSecondRunSkipsWhatSucceeded) {
  const std::string readme = ReadFile(Source("README.md")).value_or("");
  std::vector<std::string> found;
  const std::regex kRunLine("`(\\./build/batchd run [^`]+)`");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), kRunLine); it != std::sregex_iterator(); ++it)
    found.push_back((*it)[1]);
  ASSERT_EQ(found.size(), 1u) << "README.md shows " << found.size() << " `./build/batchd run ...` commands, the test "
                              << "expects one: update doc_commands_e2e_test.cc to the README";
  const std::string doc = found[0];
  ASSERT_EQ(doc, "./build/batchd run dags/nightly_billing.yaml --date 2026-01-05")
      << "the README's one-run line changed: update the expectations of doc_commands_e2e_test.cc";

  // A working directory of its own, with the example DAGs under dags/: `batchd run` keeps
  // its state in ./.batchd there (its default data directory).
  const std::string work = tmp_ / "work";
  CopyExampleDags(work + "/dags", tmp_ / "examples");
  const std::string cmd = "cd " + ShQuote(work) + " && exec " + ShQuote(BATCHD_BIN) +
                          doc.substr(std::string("./build/batchd").size());
  SCOPED_TRACE("README.md: " + doc + "\n  ran: " + cmd);
  const std::string key = "nightly_billing@2026-01-05T00:00:00+01:00";
  const std::regex kHeader("^run [0-9a-f]{12} of nightly_billing \\(key " + ReplaceAll(key, "+", "\\+") +
                           "(#2)?, data dir \\.batchd\\)$");
  const std::regex kResult("^run [0-9a-f]{12} \\(nightly_billing, key " + ReplaceAll(key, "+", "\\+") +
                           "(#2)?\\): success in [0-9]+\\.[0-9]{2}s$");
  const std::string kTableHeader = "TASK                         OK FAILED SKIPPED   OTHER ATTEMPTS  SLOWEST";

  ProcResult first = Sh(cmd, milliseconds(30000));
  ASSERT_EQ(first.exit_code, 0) << first.Describe();
  EXPECT_EQ(first.err, "");
  EXPECT_TRUE(Exists(work + "/.batchd/batchd.db"));
  {
    const std::vector<std::string> lines = Lines(first.out);
    ASSERT_EQ(lines.size(), 1u + 13u + 1u + 1u + 1u + 7u) << first.out;
    EXPECT_TRUE(std::regex_match(lines[0], kHeader)) << lines[0];
    EXPECT_EQ(InstanceEvents(lines), BillingEvents("success attempts=1 exit=0")) << first.out;
    EXPECT_EQ(lines[14], "");
    EXPECT_TRUE(std::regex_match(lines[15], kResult)) << lines[15];
    EXPECT_EQ(lines[16], kTableHeader);
    const std::vector<std::pair<std::string, std::string>> counts = {
        {"prepare", "1"}, {"extract_usage", "3"}, {"extract_charges", "3"}, {"reconcile", "3"},
        {"publish", "1"}, {"audit", "1"},         {"cleanup", "1"}};
    for (size_t k = 0; k < counts.size(); ++k) {
      const std::vector<std::string> w = Words(lines[17 + k]);
      const auto& [task, n] = counts[k];
      // TASK OK FAILED SKIPPED OTHER ATTEMPTS, then the slowest partition and its duration.
      ASSERT_EQ(w.size(), 8u) << lines[17 + k];
      EXPECT_EQ(std::vector<std::string>(w.begin(), w.begin() + 6),
                (std::vector<std::string>{task, n, "0", "0", "0", n}))
          << lines[17 + k];
    }
  }
  EXPECT_TRUE(Exists(tmp_ / "examples/billing/2026-01-05/summary.txt.sha256"));

  ProcResult second = Sh(cmd, milliseconds(30000));
  ASSERT_EQ(second.exit_code, 0) << second.Describe();
  EXPECT_EQ(second.err, "");
  {
    const std::vector<std::string> lines = Lines(second.out);
    ASSERT_EQ(lines.size(), 1u + 13u + 1u + 1u + 1u + 7u) << second.out;
    EXPECT_TRUE(std::regex_match(lines[0], kHeader)) << lines[0];
    EXPECT_THAT(lines[0], HasSubstr(key + "#2,")) << "the second run of the date gets a key of its own";
    EXPECT_EQ(InstanceEvents(lines), BillingEvents("skipped (already_succeeded)")) << second.out;
    EXPECT_EQ(lines[14], "");
    EXPECT_TRUE(std::regex_match(lines[15], kResult)) << lines[15];
    const std::vector<std::string> table(lines.begin() + 16, lines.end());
    EXPECT_EQ(table, (std::vector<std::string>{
                         kTableHeader,
                         "prepare                       0      0       1       0        0  -",
                         "extract_usage                 0      0       3       0        0  -",
                         "extract_charges               0      0       3       0        0  -",
                         "reconcile                     0      0       3       0        0  -",
                         "publish                       0      0       1       0        0  -",
                         "audit                         0      0       1       0        0  -",
                         "cleanup                       0      0       1       0        0  -",
                     }))
        << second.out;
  }
  // The second run started no attempt: each instance has its first run's single attempt.
  EXPECT_EQ(QueryValue(work + "/.batchd/batchd.db", "SELECT COUNT(*) FROM attempts"), "13");
}

// --- every batchctl line of the docs ----------------------------------------------------------

// Placeholders of the docs' commands and what the scenario gives them. README.md writes
// `<run_id>`; the runbooks of docs/observability.md write DAG, RUN, TASK and P; the prose of
// docs/logs.md and docs/dag-format.md writes RUN_ID, PARTITION, N and FILE.
const std::map<std::string, std::string> kPlaceholders = {
    {"<run_id>", "@RUN@"}, {"RUN", "@RUN@"},   {"RUN_ID", "@RUN@"}, {"DAG", "docs_scenario"},
    {"TASK", "reconcile"}, {"P", "eu"},        {"PARTITION", "eu"}, {"N", "1"},
    {"FILE", "@FILE@"},
};

// A DAG whose run fails: reconcile[eu] exits 4 after printing, with no retry (a dead
// letter); publish, downstream of it, ends upstream_failed.
constexpr char kScenarioDag[] = R"(dag: docs_scenario
schedule: "0 3 * * *"
tasks:
  - id: reconcile
    partitions: {values: [us, eu]}
    retry: {retries: 0}
    command: |
      echo "reconcile {{ partition }}"
      if [ {{ partition }} = eu ]; then echo "charges_eu.txt is missing" >&2; exit 4; fi
  - id: publish
    depends_on: [reconcile]
    command: echo published
)";

// Files that transcript commands (`$ batchctl validate dags/billing.yaml`) name, relative to
// the directory they run in, written so that the command prints what the doc shows.
const std::map<std::string, std::string> kTranscriptFiles = {
    // docs/dag-format.md, "Validation errors".
    {"dags/billing.yaml",
     "dag: nightly billing\n"
     "schedule: \"61 2 * * *\"\n"
     "tasks:\n"
     "  - id: extract\n"
     "    comand: echo extract\n"},
};

TEST_F(DocCommands, EveryDocumentedBatchctlLineParsesAgainstARealScenario) {
  std::vector<std::string> docs = {"README.md"};
  {
    std::vector<std::string> more;
    for (const auto& e : fs::directory_iterator(Source("docs")))
      if (e.path().extension() == ".md") more.push_back("docs/" + e.path().filename().string());
    std::sort(more.begin(), more.end());
    docs.insert(docs.end(), more.begin(), more.end());
  }
  std::vector<DocCommand> commands;
  std::map<std::string, int> per_doc;
  for (const auto& doc : docs)
    for (auto& c : BatchctlLines(doc)) {
      ++per_doc[doc];
      commands.push_back(std::move(c));
    }
  // The README and the runbooks show batchctl commands: finding none means the extraction
  // broke, not that there is nothing to check.
  ASSERT_GT(per_doc["README.md"], 0) << "no batchctl line found in README.md's code blocks";
  ASSERT_GT(per_doc["docs/observability.md"], 0) << "no batchctl line found in docs/observability.md's code blocks";

  // `mark` and `clear` change the scenario's outcome (a marked success is not retried), and
  // `delete` changes what every later command sees (with --purge it removes the DAG's
  // history, the scenario's run included): such lines run after all the others, once the
  // scenario has been checked, `delete` last.
  auto rank = [](const DocCommand& c) {
    const std::string sub = Subcommand(c.command);
    return sub == "delete" ? 2 : (sub == "mark" || sub == "clear") ? 1 : 0;
  };
  std::stable_sort(commands.begin(), commands.end(),
                   [&rank](const DocCommand& a, const DocCommand& b) { return rank(a) < rank(b); });
  const auto first_changing =
      std::find_if(commands.begin(), commands.end(), [&rank](const DocCommand& c) { return rank(c) > 0; });
  const long retries = std::count_if(commands.begin(), first_changing,
                                     [](const DocCommand& c) { return Subcommand(c.command) == "retry"; });

  CopyExampleDags(dags_, tmp_ / "examples");
  ASSERT_TRUE(StartDaemon());
  SubmitDag("docs_scenario.yaml", kScenarioDag);
  const std::string run_id = Trigger("docs_scenario", {"--date", "2026-01-05"});
  ASSERT_FALSE(run_id.empty());
  ASSERT_TRUE(WaitRunState(run_id, "failed"));
  ASSERT_EQ(AttemptOutcomes(run_id, "reconcile", "eu"), (std::vector<std::string>{"failed"}));
  ASSERT_EQ(V("SELECT state FROM task_instances WHERE run_id = '" + run_id + "' AND task = 'publish'"),
            "upstream_failed");

  const std::string transcript_dir = tmp_ / "transcripts";
  for (const auto& [rel, content] : kTranscriptFiles) {
    fs::create_directories(fs::path(transcript_dir + "/" + rel).parent_path());
    WriteFile(transcript_dir + "/" + rel, content);
  }

  std::vector<std::string> failures;
  std::ostringstream ran;
  auto run = [&](const DocCommand& c) {
    std::string cmd = c.command;
    for (const auto& [placeholder, value] : kPlaceholders)
      cmd = ReplaceWord(cmd, placeholder,
                        Substitute(value, {{"RUN", run_id}, {"FILE", tmp_ / "docs_scenario.yaml"}}));
    // The service's socket (README.md, "Running as a service") is this daemon's here.
    cmd = ReplaceAll(cmd, "/run/batchd/batchd.sock", socket_);
    const std::string where = c.doc + ":" + std::to_string(c.line) + ": " + c.command;
    // A word left in capitals or in <...> is a placeholder the scenario does not fill in.
    bool unfilled = false;
    for (const auto& w : Words(cmd))
      if (std::regex_match(w, std::regex("[A-Z][A-Z0-9_]*|<[^>]*>"))) unfilled = true;
    if (unfilled) {
      failures.push_back(where + "\n    has a placeholder the test does not fill in: add it to kPlaceholders");
      return;
    }
    const std::string prog = cmd.rfind("./build/batchctl ", 0) == 0 ? "./build/batchctl" : "batchctl";
    const bool names_socket = Words(cmd).size() > 1 && Words(cmd)[1] == "--socket";
    cmd = ShQuote(BATCHCTL_BIN) + (names_socket ? "" : " --socket " + ShQuote(socket_)) + cmd.substr(prog.size());
    if (c.transcript) cmd = "cd " + ShQuote(transcript_dir) + " && " + cmd;

    ProcResult r = Sh(cmd);
    ran << "  exit " << r.exit_code << "  " << where << "\n";
    if (r.exit_code != 0 && r.exit_code != 1) {
      failures.push_back(where + "\n    ran: " + cmd + "\n    " + r.Describe());
    } else if (c.transcript) {
      std::string shown;
      for (const auto& l : c.output) shown += l + "\n";
      if (r.out != shown)
        failures.push_back(where + "\n    prints something else than the doc shows:\n--- doc ---\n" + shown +
                           r.Describe());
    }
    // Wait for what a command started (trigger, retry) to end before the next one runs.
    EXPECT_TRUE(WaitIdle()) << where;
  };
  std::for_each(commands.begin(), first_changing, run);

  // The commands ran against the scenario: each documented retry ran the failed instance
  // (every retry line names the scenario's run, and reconcile[eu] is failed in each form of
  // it), which failed again.
  EXPECT_EQ(AttemptOutcomes(run_id, "reconcile", "eu"),
            std::vector<std::string>(static_cast<size_t>(1 + retries), "failed"));
  EXPECT_EQ(AttemptOutcomes(run_id, "reconcile", "us"), (std::vector<std::string>{"success"}));
  EXPECT_EQ(RunState(run_id), "failed");

  std::for_each(first_changing, commands.end(), run);
  std::ostringstream counts;
  for (const auto& [doc, n] : per_doc) counts << " " << doc << "=" << n;
  EXPECT_TRUE(failures.empty()) << "documented batchctl commands that failed (exit 2: usage error, 3: daemon not "
                                   "reached, 4: not found, -1: killed or timed out):\n"
                                << [&] {
                                     std::string s;
                                     for (const auto& f : failures) s += f + "\n";
                                     return s;
                                   }()
                                << "every command:\n"
                                << ran.str();
  std::printf("checked %zu documented batchctl commands:%s\n", commands.size(), counts.str().c_str());
}

}  // namespace
}  // namespace batchd::e2e
