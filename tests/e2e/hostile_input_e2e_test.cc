// End-to-end tests of hostile input (SPEC 6: "bad input gets a clear error and changes
// nothing; the daemon keeps serving"), as tables: bad DAG files through `batchctl validate`,
// `batchctl submit` and the submit route, and bad requests of every kind on the control
// socket. Each row names the exact error it expects; after each one the store's fingerprint
// is unchanged and `batchctl health` still answers. What daemon_e2e_test.cc's
// BadRequestsGetClearErrorsAndChangeNothing covers (a typo'd key, ../../etc as a DAG name in
// the path, a 5 MB body, chunked bodies) is not repeated here.

#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using std::chrono::steady_clock;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr char kGoodDag[] = R"(dag: good
params: {p: plain}
tasks:
  - id: a
    command: printf '%s' {{ params.p }} > @TMP@/param.out
)";

// The YAML of a billion-laughs bomb: nine levels of aliases, each ten times the one below
// (10^9 strings if anything expanded it), under `key`.
std::string LaughsBomb(const std::string& key) {
  std::string y = "dag: lol\n" + key + ":\n  l0: &l0 \"lol\"\n";
  for (int i = 1; i <= 9; ++i) {
    y += "  l" + std::to_string(i) + ": &l" + std::to_string(i) + " [";
    for (int j = 0; j < 10; ++j) y += std::string(j ? ", " : "") + "*l" + std::to_string(i - 1);
    y += "]\n";
  }
  return y + "tasks:\n  - id: a\n    command: \"true\"\n";
}

// The fixture's health check plus "nothing changed", for the tables below.
class HostileInputTest : public DaemonTest {
 protected:
  // Fails (once per row) when the daemon stopped answering or the store changed; after a
  // change the new state becomes the baseline, so one bad row does not fail every later one.
  void ExpectUnchangedAndServing(const std::string& what) {
    ProcResult health = Ctl({"health"}, milliseconds(10000));
    EXPECT_EQ(health.exit_code, 0) << what << ": the daemon stopped answering: " << health.Describe() << "\n"
                                   << DaemonLog();
    std::string now = DbFingerprint();
    EXPECT_EQ(now, baseline_) << what << ": the store changed";
    baseline_ = now;
  }

  std::string baseline_;
};

// --- DAG files -----------------------------------------------------------------------

struct BadDagRow {
  std::string label;
  std::string yaml;
  // What follows "FILE" in the first error: ":LINE:COLUMN: message".
  std::string error;
  // The control API's submit route: false for files JSON cannot carry (bytes that are not
  // UTF-8; the request table covers those) or larger than a request body may be.
  bool via_api = true;
};

std::vector<BadDagRow> BadDagRows() {
  std::string deep_flow = "dag: deep\nparams: {a: " + std::string(10000, '[') + std::string(10000, ']') + "}\n" +
                          "tasks:\n  - id: a\n    command: \"true\"\n";
  // Compact block sequences: "- - - ... x" nests one level per dash.
  std::string deep_block = "dag: deep\ntasks:\n  ";
  for (int i = 0; i < 10000; ++i) deep_block += "- ";
  deep_block += "x\n";
  std::string ten_mb = "dag: big\ndescription: \"" + std::string(10 * 1024 * 1024, 'x') +
                       "\"\ntasks:\n  - id: a\n    command: \"true\"\n";
  return {
      {"YAML syntax error", "dag: x\ntasks:\n  - id: a\n    command: {a: 1\n  - id: b\n",
       ":5:7: YAML syntax error: end of map flow not found"},
      {"tab indentation", "dag: x\n\tindent: tab\n", ":2:1: YAML syntax error: illegal tab when looking for indentation"},
      {"unterminated quoted string", "dag: x\ntasks:\n  - id: a\n    command: \"unterminated\n",
       ":4:14: YAML syntax error"},
      {"unknown top-level key", "dag: x\nschedul: \"@daily\"\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":2:1: unknown key 'schedul'"},
      {"duplicate key", "dag: x\ndag: y\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":2:1: duplicate key 'dag' (first defined at line 1)"},
      {"duplicate task ids", "dag: x\ntasks:\n  - id: a\n    command: \"true\"\n  - id: a\n    command: \"true\"\n",
       ":5:9: duplicate task id 'a' (first defined at line 3)"},
      {"cycle",
       "dag: x\ntasks:\n  - id: a\n    depends_on: [b]\n    command: \"true\"\n  - id: b\n    depends_on: [a]\n"
       "    command: \"true\"\n",
       ":3:9: dependency cycle: a -> b -> a"},
      {"bad cron", "dag: x\nschedule: \"61 * * * *\"\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":2:11: invalid cron expression '61 * * * *': minute 61 is out of range 0-59"},
      {"cron with three fields", "dag: x\nschedule: \"* * *\"\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":2:11: invalid cron expression '* * *': expected 5 fields (minute hour day-of-month month day-of-week), got 3"},
      {"unknown zone", "dag: x\ntimezone: Mars/Olympus\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":2:11: unknown time zone 'Mars/Olympus'"},
      {"unknown template variable", "dag: x\ntasks:\n  - id: a\n    command: echo {{ nope }}\n",
       ":4:19: unknown template variable 'nope' in command of task 'a'"},
      {"unknown param in a template", "dag: x\ntasks:\n  - id: a\n    command: \"echo {{ params.nope }}\"\n",
       ":4:20: unknown template variable 'params.nope' in command of task 'a'"},
      {"DAG name ../../etc", "dag: ../../etc\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":1:6: invalid dag name '../../etc': names must be 1-128 characters from [A-Za-z0-9_.-]"},
      {"task id ../../etc", "dag: x\ntasks:\n  - id: ../../etc\n    command: \"true\"\n",
       ":3:9: invalid task id '../../etc': names must be 1-128 characters from [A-Za-z0-9_.-]"},
      {"DAG name with shell syntax", "dag: \"a;rm -rf\"\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":1:6: invalid dag name 'a;rm -rf': names must be 1-128 characters from [A-Za-z0-9_.-]"},
      {"task id with shell syntax", "dag: x\ntasks:\n  - id: \"$(touch /tmp/pwned)\"\n    command: \"true\"\n",
       ":3:9: invalid task id '$(touch /tmp/pwned)': names must be 1-128 characters from [A-Za-z0-9_.-]"},
      {"pool with a slash", "dag: x\ntasks:\n  - id: a\n    pool: ../p\n    command: \"true\"\n", ":4:11: invalid pool"},
      {"undefined alias", "dag: x\nparams: {a: *nope}\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":2:13: YAML syntax error: the referenced anchor is not defined"},
      {"NUL byte", std::string("dag: x") + '\0' + "y\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":1:7: control character 0x00 is not allowed in a DAG file"},
      {"non-UTF-8 DAG name", "dag: x\xff\xfe\ntasks:\n  - id: a\n    command: \"true\"\n",
       ":1:7: invalid UTF-8 byte 0xff (a DAG file must be UTF-8 text)", false},
      {"non-UTF-8 command", "dag: x\ntasks:\n  - id: a\n    command: echo \xff\xfe\n",
       ":4:19: invalid UTF-8 byte 0xff (a DAG file must be UTF-8 text)", false},
      {"10 MB file", ten_mb,
       ": file is too large: " + std::to_string(ten_mb.size()) + " bytes (the limit is 4194304 bytes)", false},
      {"10,000 levels of flow nesting", deep_flow, ":2:75: YAML nesting is too deep (more than 64 levels)"},
      {"10,000 levels of block nesting", deep_block, "YAML nesting is too deep (more than 64 levels)"},
      {"billion laughs in params", LaughsBomb("params"), ":4:7: params.l1 must be a string, got a list"},
      {"billion laughs as partition values",
       LaughsBomb("env") + "    partitions: {values: *l9}\n",  // env is checked before the task
       ":4:7: env.l1 must be a string, got a list"},
  };
}

// Every bad DAG file gets its own error, naming file:line:column and what is wrong, from
// `batchctl validate` (offline), `batchctl submit` and the daemon's submit route; nothing is
// stored, the daemon keeps serving, and nothing takes long (a parser stuck on nesting or
// aliases would show here).
TEST_F(HostileInputTest, BadDagFilesGetTheirOwnFileLineColumnErrorEverywhereAndChangeNothing) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("good.yaml", kGoodDag);
  ASSERT_EQ(Ctl({"trigger", "good", "--date", "2026-03-01", "--wait"}).exit_code, 0);
  baseline_ = DbFingerprint();

  for (const BadDagRow& row : BadDagRows()) {
    SCOPED_TRACE(row.label);
    std::string file_name;
    for (char c : row.label) file_name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    file_name += ".yaml";
    const std::string path = WriteDag(file_name, row.yaml);
    // The expected first error as batchctl prints it: "PATH:LINE:COLUMN: message" (a
    // row without a position only names the file).
    const std::string expected = row.error[0] == ':' ? path + row.error : path + ":";

    auto t0 = steady_clock::now();
    ProcResult validate = Ctl({"validate", path}, milliseconds(20000));
    EXPECT_EQ(validate.exit_code, 1) << validate.Describe();
    EXPECT_THAT(validate.out, HasSubstr(expected)) << validate.Describe();
    if (row.error[0] != ':') {
      EXPECT_THAT(validate.out, HasSubstr(row.error)) << validate.Describe();
    }
    ProcResult validate_json = Ctl({"--json", "validate", path}, milliseconds(20000));
    Json report = Json::parse(validate_json.out, nullptr, false);
    if (report.is_object() && report["errors"].is_array() && !report["errors"].empty()) {
      EXPECT_EQ(report["ok"], false);
      EXPECT_EQ(report["errors"][0]["file"], path);
    } else {
      ADD_FAILURE() << "no errors in " << validate_json.Describe();
    }

    ProcResult submit = Ctl({"submit", path}, milliseconds(20000));
    EXPECT_EQ(submit.exit_code, 1) << submit.Describe();
    EXPECT_THAT(submit.err, HasSubstr(expected)) << submit.Describe();
    EXPECT_THAT(submit.err, HasSubstr("nothing was submitted\n")) << submit.Describe();

    if (row.via_api) {
      // The daemon's own loader: batchctl validates before it sends.
      const Json body = {{"source", row.yaml}, {"path", file_name}};
      RawReply r = RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags", body.dump()), milliseconds(20000));
      EXPECT_EQ(r.status, 400) << r.error << "\n" << r.head << "\n" << r.body.substr(0, 500);
      Json reply = r.JsonBody();
      EXPECT_EQ(reply.value("/error/code"_json_pointer, ""), "invalid_dag") << r.body.substr(0, 500);
      const std::string api_expected = row.error[0] == ':' ? file_name + row.error : file_name + ":";
      EXPECT_THAT(reply.value("/error/message"_json_pointer, ""), StartsWith(api_expected)) << r.body.substr(0, 500);
      if (row.error[0] != ':') {
        EXPECT_THAT(reply.value("/error/message"_json_pointer, ""), HasSubstr(row.error)) << r.body.substr(0, 500);
      }
    }
    EXPECT_LT(steady_clock::now() - t0, seconds(10)) << "validating one file took too long";
    ExpectUnchangedAndServing(row.label);
  }
  // A 10 MB file is too large a body for the submit route even before it is parsed.
  const Json big = {{"source", std::string(10 * 1024 * 1024, '#')}, {"path", "big.yaml"}};
  RawReply r = RawUnixRequest(socket_, HttpRequestText("POST", "/v1/dags", big.dump()), milliseconds(20000));
  EXPECT_EQ(r.status, 413) << r.error << "\n" << r.head;
  EXPECT_EQ(r.JsonBody().value("/error/code"_json_pointer, ""), "payload_too_large") << r.body;
  ExpectUnchangedAndServing("10 MB submit body");
  EXPECT_FALSE(Exists("/tmp/pwned"));
}

// The same files dropped into the DAGs directory: one reload reports each with its
// file:line:column error and skips it, the DAGs already registered stay as they were, and
// nothing but the reload's audit row is written.
TEST_F(HostileInputTest, BadDagFilesInTheDagsDirectoryAreEachReportedByReloadAndSkipped) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("good.yaml", kGoodDag);
  auto without_audit = [&] {
    Json f = Json::parse(DbFingerprint());
    for (auto& row : f) row.erase("audit");
    return f.dump();
  };
  const std::string before = without_audit();
  const long audit_before = Count("SELECT COUNT(*) FROM audit");
  std::map<std::string, std::string> expected;  // file name -> the first error after its path
  for (const BadDagRow& row : BadDagRows()) {
    std::string file_name;
    for (char c : row.label) file_name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    file_name += ".yaml";
    WriteDag(file_name, row.yaml, /*in_dags_dir=*/true);
    expected[dags_ + "/" + file_name] = row.error;
  }
  auto t0 = steady_clock::now();
  ProcResult r = Ctl({"--json", "reload"}, milliseconds(30000));
  EXPECT_LT(steady_clock::now() - t0, seconds(15)) << "the reload took too long";
  EXPECT_FALSE(r.timed_out) << r.Describe();
  Json report = Json::parse(r.out, nullptr, false);
  ASSERT_TRUE(report.is_object() && report["errors"].is_array()) << r.Describe();
  EXPECT_EQ(report["loaded"], Json::array()) << r.out.substr(0, 2000);
  std::map<std::string, std::string> first_error;  // file -> ":LINE:COLUMN: message" of its first error
  for (const auto& e : report["errors"]) {
    const std::string file = e.value("file", "");
    if (first_error.count(file)) continue;
    const int line = e.value("line", 0), column = e.value("column", 0);
    first_error[file] = line > 0 ? ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + e.value("message", "")
                                 : ": " + e.value("message", "");
  }
  for (const auto& [file, error] : expected) {
    SCOPED_TRACE(file);
    ASSERT_TRUE(first_error.count(file)) << "no error reported for " << file << ": " << r.out.substr(0, 2000);
    if (error[0] == ':') {
      EXPECT_THAT(first_error[file], StartsWith(error));
    } else {
      EXPECT_THAT(first_error[file], HasSubstr(error));
    }
  }
  EXPECT_EQ(without_audit(), before) << "a reload of broken files changed the store";
  EXPECT_EQ(Count("SELECT COUNT(*) FROM audit"), audit_before + 1);
  EXPECT_EQ(Ctl({"health"}).exit_code, 0) << DaemonLog();
  EXPECT_EQ(Ctl({"trigger", "good", "--date", "2026-03-01", "--wait"}).exit_code, 0);
}

// --- Requests on the control socket ----------------------------------------------------

struct BadRequestRow {
  std::string label;
  std::string request;  // raw HTTP
  int status;
  std::string code;
  std::string message;  // a prefix the message starts with; "" = any non-empty message
};

std::string Post(const std::string& target, const std::string& body) { return HttpRequestText("POST", target, body); }
std::string Get(const std::string& target) { return HttpRequestText("GET", target); }

// `run_id` is a run of `good` that succeeded; `victim` a DAG that only these requests touch.
std::vector<BadRequestRow> BadRequestRows(const std::string& run_id, const std::string& pwned) {
  const std::string runs = "/v1/dags/good/runs";
  const std::string backfill = "/v1/dags/good/backfill";
  const std::string retry = "/v1/runs/" + run_id + "/retry";
  const std::string logs = "/v1/runs/" + run_id + "/logs";
  const std::string shell = "$(touch " + pwned + ")";
  const std::string shell_url = "%24%28touch%20" + pwned + "%29";  // the same, percent-encoded
  const std::string malformed = "malformed JSON body";
  const std::string bad_name = "invalid DAG name";
  std::vector<BadRequestRow> rows = {
      // Malformed JSON on every route that takes a body.
      {"trigger: truncated JSON", Post(runs, R"({"date": "2026-03-02",)"), 400, "bad_request", malformed},
      {"backfill: truncated JSON", Post(backfill, R"({"from")"), 400, "bad_request", malformed},
      {"retry: truncated JSON", Post(retry, "{"), 400, "bad_request", malformed},
      {"submit: truncated JSON", Post("/v1/dags", R"({"source": "dag)"), 400, "bad_request", malformed},
      {"cancel: not JSON", Post("/v1/runs/" + run_id + "/cancel", "nul"), 400, "bad_request", malformed},
      {"reload: not JSON", Post("/v1/reload", "{]"), 400, "bad_request", malformed},
      {"pause: not JSON", Post("/v1/dags/victim/pause", R"({"x":)"), 400, "bad_request", malformed},
      {"unpause: not an object", Post("/v1/dags/victim/unpause", "[1]"), 400, "bad_request", ""},
      {"pause: unknown field", Post("/v1/dags/victim/pause", R"({"x": 1})"), 400, "bad_request",
       "unknown field 'x' in request body"},
      {"trailing garbage", Post(runs, R"({"date": "2026-03-02"} x)"), 400, "bad_request", malformed},
      {"two objects", Post(runs, R"({}{})"), 400, "bad_request", malformed},
      // Deep nesting.
      {"100,000 unclosed [", Post(runs, std::string(100000, '[')), 400, "bad_request", malformed},
      {"100,000 nested arrays", Post(runs, std::string(100000, '[') + std::string(100000, ']')), 400, "bad_request",
       "the request body must be a JSON object"},
      {"50,000 nested objects in params",
       Post(runs, "{\"params\": " + [] {
         std::string s;
         for (int i = 0; i < 50000; ++i) s += "{\"p\": ";
         return s + "\"x\"" + std::string(50000, '}');
       }() + "}"),
       400, "bad_request", "parameter 'p' must be a string"},
      // Size limits (docs/http-api.md: 4 MiB bodies, 64 KiB of request line and headers).
      {"20 MB body", Post("/v1/dags", R"({"source": ")" + std::string(20 * 1024 * 1024, 'x') + R"("})"), 413,
       "payload_too_large", "request body exceeds the limit of 4194304 bytes"},
      {"100 KB header",
       "GET /v1/health HTTP/1.1\r\nHost: batchd\r\nX-Big: " + std::string(100 * 1024, 'a') + "\r\n\r\n", 431,
       "headers_too_large", "request headers exceed the limit of 65536 bytes"},
      {"100 KB target", Get("/v1/dags/" + std::string(100 * 1024, 'a')), 431, "headers_too_large", ""},
      {"two different Content-Lengths",
       "POST " + runs + " HTTP/1.1\r\nHost: batchd\r\nContent-Length: 2\r\nContent-Length: 30\r\n\r\n{}", 400,
       "bad_request", "malformed HTTP request"},
      // Unknown routes and methods.
      {"PATCH a DAG", HttpRequestText("PATCH", "/v1/dags/good", "{}"), 405, "method_not_allowed",
       "method PATCH is not allowed on /v1/dags/good"},
      {"TRACE", HttpRequestText("TRACE", "/v1/health"), 405, "method_not_allowed", "method TRACE"},
      {"CONNECT a route", HttpRequestText("CONNECT", "/v1/runs"), 405, "method_not_allowed", "method CONNECT"},
      {"CONNECT host:port", HttpRequestText("CONNECT", "batchd:443"), 400, "bad_request",
       "request target must start with '/'"},
      {"PUT trigger", HttpRequestText("PUT", runs, "{}"), 405, "method_not_allowed", ""},
      {"GET a mutation", Get(retry), 405, "method_not_allowed", ""},
      {"unknown version", Get("/v2/health"), 404, "not_found", "no route for /v2/health"},
      {"unknown run action", Post("/v1/runs/" + run_id + "/explode", "{}"), 404, "not_found", ""},
      {"too deep a path", Get("/v1/dags/good/runs/x/y"), 404, "not_found", ""},
      {"absolute URL", Get("http://batchd/v1/health"), 400, "bad_request", ""},
      // Traversal in every name position.
      {"run id ..", Get("/v1/runs/../logs"), 400, "bad_request",
       "invalid run id '..': expected 12 lowercase hex characters"},
      {"run id %2E%2E", Get("/v1/runs/%2E%2E/logs?task=a"), 400, "bad_request", "invalid run id '..'"},
      {"DAG name ..", Get("/v1/dags/.."), 400, "bad_request", "invalid DAG name '..'"},
      {"DAG name . in pause", Post("/v1/dags/./pause", ""), 400, "bad_request", "invalid DAG name '.'"},
      {"DAG ../x in backfill", Post("/v1/dags/..%2Fx/backfill", R"({"from": "2026-01-01", "to": "2026-01-01"})"), 400,
       "bad_request", "invalid DAG name '../x'"},
      {"DAG ../x in the runs filter", Get("/v1/runs?dag=..%2Fx"), 400, "bad_request", "invalid DAG name '../x'"},
      {"DAG ../x in the failed filter", Get("/v1/failed?dag=..%2F..%2Fetc"), 400, "bad_request", bad_name},
      {"task ../../x in logs", Get(logs + "?task=..%2F..%2Fx"), 400, "bad_request",
       "invalid task id '../../x': names are 1-128 characters of [A-Za-z0-9_.-]"},
      {"task ../../x in retry", Post(retry, R"({"task": "../../x"})"), 400, "bad_request", "invalid task id '../../x'"},
      {"partition with a slash in logs", Get(logs + "?task=a&partition=a%2Fb"), 404, "not_found",
       "run '" + run_id + "' has no task 'a' partition 'a/b'"},
      {"partition ../../etc/passwd in logs", Get(logs + "?task=a&partition=..%2F..%2F..%2Fetc%2Fpasswd"), 404,
       "not_found", ""},
      {"attempt ../1 in logs", Get(logs + "?task=a&attempt=..%2F1"), 400, "bad_request", "attempt must be an integer"},
      {"offset -1 in logs", Get(logs + "?task=a&offset=-1"), 400, "bad_request", "offset must be an integer"},
      // Bytes that are not UTF-8, in the path, the query and the body.
      {"non-UTF-8 DAG name in the path", Get("/v1/dags/x\xff\xfe"), 400, "bad_request", bad_name},
      {"percent-encoded non-UTF-8 DAG name", Get("/v1/dags/x%FF%FE"), 400, "bad_request", bad_name},
      {"non-UTF-8 run id", Get("/v1/runs/%C0%AF%C0%AF"), 400, "bad_request", "invalid run id"},
      {"non-UTF-8 query value", Get("/v1/runs?dag=%FF"), 400, "bad_request", bad_name},
      {"non-UTF-8 query key", Get("/v1/runs?st\xff" "ate=x"), 400, "bad_request", "unknown query parameter"},
      {"non-UTF-8 task in logs", Get(logs + "?task=%FF"), 400, "bad_request", "invalid task id"},
      {"non-UTF-8 date", Post(runs, "{\"date\": \"\xff\xfe\"}"), 400, "bad_request", malformed},
      {"non-UTF-8 param value", Post(runs, "{\"params\": {\"p\": \"\xff\"}}"), 400, "bad_request", malformed},
      {"non-UTF-8 param name", Post(runs, "{\"params\": {\"\xff\": \"x\"}}"), 400, "bad_request", malformed},
      {"non-UTF-8 field name", Post(runs, "{\"\xc3\x28\": 1}"), 400, "bad_request", malformed},
      {"non-UTF-8 DAG source", Post("/v1/dags", "{\"source\": \"dag: \xff\"}"), 400, "bad_request", malformed},
      {"lone surrogate escape", Post(runs, R"({"key": "\ud800"})"), 400, "bad_request", malformed},
      // Shell syntax in every value: refused as what it is, never run.
      {"shell in a DAG name", Post("/v1/dags/" + shell_url + "/runs", "{}"), 400, "bad_request", bad_name},
      {"shell in a run id", Get("/v1/runs/" + shell_url), 400, "bad_request", "invalid run id"},
      {"shell in a param name", Post(runs, Json{{"params", {{shell, "x"}}}}.dump()), 400, "bad_request",
       "DAG 'good' has no parameter '" + shell + "'"},
      {"shell in a date", Post(runs, Json{{"date", shell}}.dump()), 400, "bad_request",
       "field 'date': invalid time '" + shell + "'"},
      {"shell in backfill from", Post(backfill, Json{{"from", shell}, {"to", "2026-01-01"}}.dump()), 400,
       "bad_request", "field 'from': invalid time"},
      {"shell in backfill to", Post(backfill, Json{{"from", "2026-01-01"}, {"to", shell}}.dump()), 400, "bad_request",
       "field 'to': invalid time"},
      {"shell in a task to retry", Post(retry, Json{{"task", shell}}.dump()), 400, "bad_request", "invalid task id"},
      {"shell in a logs task", Get(logs + "?task=" + shell_url), 400, "bad_request", "invalid task id"},
      {"shell in the runs state filter", Get("/v1/runs?state=" + shell_url), 400, "bad_request", "unknown run state"},
      {"shell in the runs limit", Get("/v1/runs?limit=" + shell_url), 400, "bad_request", "limit must be an integer"},
      {"shell as a query key", Get("/v1/runs?" + shell_url + "=1"), 400, "bad_request", "unknown query parameter"},
      {"shell in a field name", Post(runs, Json{{shell, "x"}}.dump()), 400, "bad_request",
       "unknown field '" + shell + "' in request body"},
      {"shell in delete's query", HttpRequestText("DELETE", "/v1/dags/victim?purge=" + shell_url + "&" + shell_url),
       400, "bad_request", "unknown query parameter"},
      // Wrong JSON types, field by field.
      {"trigger body is a string", Post(runs, R"("2026-03-01")"), 400, "bad_request",
       "the request body must be a JSON object"},
      {"trigger date: number", Post(runs, R"({"date": 20260301})"), 400, "bad_request", "field 'date' must be a string"},
      {"trigger date: array", Post(runs, R"({"date": ["2026-03-01"]})"), 400, "bad_request",
       "field 'date' must be a string"},
      {"trigger date: object", Post(runs, R"({"date": {}})"), 400, "bad_request", "field 'date' must be a string"},
      {"trigger date: boolean", Post(runs, R"({"date": true})"), 400, "bad_request", "field 'date' must be a string"},
      {"trigger params: array", Post(runs, R"({"params": ["p=x"]})"), 400, "bad_request",
       "field 'params' must be an object of strings"},
      {"trigger params: string", Post(runs, R"({"params": "p=x"})"), 400, "bad_request",
       "field 'params' must be an object of strings"},
      {"trigger param value: number", Post(runs, R"({"params": {"p": 1}})"), 400, "bad_request",
       "parameter 'p' must be a string"},
      {"trigger param value: null", Post(runs, R"({"params": {"p": null}})"), 400, "bad_request",
       "parameter 'p' must be a string"},
      {"trigger param value: list", Post(runs, R"({"params": {"p": ["x"]}})"), 400, "bad_request",
       "parameter 'p' must be a string"},
      {"trigger key: number", Post(runs, R"({"key": 5})"), 400, "bad_request", "field 'key' must be a string"},
      {"trigger key: object", Post(runs, R"({"key": {"a": "b"}})"), 400, "bad_request", "field 'key' must be a string"},
      {"trigger key: empty", Post(runs, R"({"key": ""})"), 400, "bad_request", "field 'key' must be 1-512 characters"},
      {"trigger key: 513 characters", Post(runs, Json{{"key", std::string(513, 'k')}}.dump()), 400, "bad_request",
       "field 'key' must be 1-512 characters"},
      {"trigger force: string", Post(runs, R"({"force": "yes"})"), 400, "bad_request",
       "field 'force' must be a boolean"},
      {"trigger force: number", Post(runs, R"({"force": 1})"), 400, "bad_request", "field 'force' must be a boolean"},
      {"backfill from: number", Post(backfill, R"({"from": 1, "to": "2026-01-01"})"), 400, "bad_request",
       "field 'from' must be a string"},
      {"backfill from: array", Post(backfill, R"({"from": ["2026-01-01"], "to": "2026-01-01"})"), 400, "bad_request",
       "field 'from' must be a string"},
      {"backfill to: boolean", Post(backfill, R"({"from": "2026-01-01", "to": false})"), 400, "bad_request",
       "field 'to' must be a string"},
      {"backfill to: object", Post(backfill, R"({"from": "2026-01-01", "to": {}})"), 400, "bad_request",
       "field 'to' must be a string"},
      {"backfill without to", Post(backfill, R"({"from": "2026-01-01"})"), 400, "bad_request",
       "fields 'from' and 'to' are required"},
      {"backfill to before from", Post(backfill, R"({"from": "2026-01-02", "to": "2026-01-01"})"), 400, "bad_request",
       "'to' is before 'from'"},
      {"backfill of a century", Post(backfill, R"({"from": "2000-01-01", "to": "2099-12-31"})"), 400, "bad_request",
       "the range covers more than 10000 runs; split it"},
      {"backfill unknown field", Post(backfill, R"({"from": "2026-01-01", "to": "2026-01-01", "force": true})"), 400,
       "bad_request", "unknown field 'force' in request body"},
      {"backfill yes: string", Post(backfill, R"({"from": "2026-01-01", "to": "2026-01-01", "yes": "y"})"), 400,
       "bad_request", "field 'yes' must be a boolean"},
      {"backfill dry_run: number", Post(backfill, R"({"from": "2026-01-01", "to": "2026-01-01", "dry_run": 1})"),
       400, "bad_request", "field 'dry_run' must be a boolean"},
      {"retry task: number", Post(retry, R"({"task": 1})"), 400, "bad_request", "field 'task' must be a string"},
      {"retry task: array", Post(retry, R"({"task": ["a"]})"), 400, "bad_request", "field 'task' must be a string"},
      {"retry partition: object", Post(retry, R"({"partition": {}})"), 400, "bad_request",
       "field 'partition' must be a string"},
      {"retry partition: boolean", Post(retry, R"({"partition": true})"), 400, "bad_request",
       "field 'partition' must be a string"},
      {"retry partition: empty", Post(retry, R"({"partition": ""})"), 400, "bad_request",
       "field 'partition' must not be empty"},
      {"submit source: number", Post("/v1/dags", R"({"source": 5})"), 400, "bad_request",
       "field 'source' must be a string"},
      {"submit path: array", Post("/v1/dags", R"({"source": "dag: x", "path": []})"), 400, "bad_request",
       "field 'path' must be a string"},
      {"submit without source", Post("/v1/dags", "{}"), 400, "bad_request", "field 'source'"},
      // Last: if DELETE ignored its body it would delete `victim`.
      {"delete with an unknown body field", HttpRequestText("DELETE", "/v1/dags/victim", R"({"x": 1})"), 400,
       "bad_request", "unknown field 'x' in request body"},
  };
  return rows;
}

// Every bad request on the control socket gets a JSON error with the fitting 4xx status and
// code, changes nothing stored, runs nothing, and the daemon goes on serving others.
TEST_F(HostileInputTest, BadApiRequestsGetTheFitting4xxJsonErrorChangeNothingAndRunNothing) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("good.yaml", kGoodDag);
  SubmitDag("victim.yaml", "dag: victim\ntasks:\n  - id: a\n    command: \"true\"\n");
  const std::string run_id = Trigger("good", {"--date", "2026-03-01", "--wait"});
  ASSERT_FALSE(run_id.empty());
  ASSERT_EQ(RunState(run_id), "success");
  const std::string pwned = tmp_ / "pwned";
  baseline_ = DbFingerprint();

  for (const BadRequestRow& row : BadRequestRows(run_id, pwned)) {
    SCOPED_TRACE(row.label);
    RawReply r = RawUnixRequest(socket_, row.request, milliseconds(20000));
    EXPECT_EQ(r.status, row.status) << r.error << "\n" << r.head << "\n" << r.body.substr(0, 500);
    Json body = r.JsonBody();
    if (!(body.is_object() && body.contains("error") && body["error"].is_object())) {
      ADD_FAILURE() << "not an API error body: " << r.body.substr(0, 500);
    } else {
      EXPECT_EQ(body["error"].value("code", ""), row.code) << r.body.substr(0, 500);
      const std::string message = body["error"].value("message", "");
      EXPECT_FALSE(message.empty()) << r.body.substr(0, 500);
      if (!row.message.empty()) {
        EXPECT_THAT(message, StartsWith(row.message)) << r.body.substr(0, 500);
      }
    }
    EXPECT_THAT(r.head, HasSubstr("application/json"));
    ExpectUnchangedAndServing(row.label);
    EXPECT_FALSE(Exists(pwned)) << "a value was run as shell";
  }
  EXPECT_THAT(DaemonLog(), ::testing::Not(HasSubstr("handler failed"))) << DaemonLog();
}

}  // namespace
}  // namespace batchd::e2e
