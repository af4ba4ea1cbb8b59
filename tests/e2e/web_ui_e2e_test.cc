// The web UI on the TCP listener (docs/ui.md), from outside: the real daemon answering raw
// HTTP. What it serves, that it serves the control API's own JSON, that it refuses every
// method that could change state, paths outside it, foreign Host names and bad tokens, and
// that a non-loopback listener without a token keeps it off. The pages themselves are
// driven in a browser by tests/ui/browser_test.py.

#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

constexpr const char* kToken = "ui-token-0123456789abcdef";

const char* kGraphDag = R"(dag: shapes
description: three tasks, two edges
tasks:
  - id: extract
    command: "echo extracting"
  - id: load
    command: "true"
    depends_on: [extract]
  - id: report
    command: "echo part {{ partition }}"
    depends_on: [extract]
    partitions:
      values: [eu, us]
)";

class WebUiTest : public DaemonTest {
 protected:
  bool StartWithUi(const std::string& config_yaml = "", const std::string& bind = "127.0.0.1") {
    port_ = FreeTcpPort();
    DaemonOptions options;
    options.http = bind + ":" + std::to_string(port_);
    options.config_yaml = config_yaml;
    return StartDaemon(options);
  }

  // One request on the TCP listener, addressed to `host` (default 127.0.0.1:PORT).
  RawReply Tcp(const std::string& method, const std::string& target, const std::string& extra_headers = "",
               std::string host = "") {
    if (host.empty()) host = "127.0.0.1:" + std::to_string(port_);
    std::string text = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n" +
                       extra_headers;
    if (method != "GET" && method != "HEAD") text += "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    else text += "\r\n";
    return RawTcpRequest(port_, text);
  }

  static std::string Header(const RawReply& r, const std::string& name) {
    std::string head = r.head;
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string key = "\r\n" + name + ": ";
    for (char& c : key) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto at = head.find(key);
    if (at == std::string::npos) return "";
    auto end = head.find("\r\n", at + key.size());
    return r.head.substr(at + key.size(), end - at - key.size());
  }

  // `r` is the JSON error `status` with `message`.
  static void ExpectError(const RawReply& r, int status, const std::string& message) {
    EXPECT_EQ(r.status, status) << r.error << r.body;
    EXPECT_EQ(r.JsonBody()["error"]["message"], message);
  }

  static size_t Occurrences(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }

  int port_ = 0;
};

TEST_F(WebUiTest, ServesThePageItsAssetsAndTheControlApisOwnJson) {
  ASSERT_TRUE(StartWithUi());
  SubmitDag("shapes.yaml", kGraphDag);
  const std::string run = Trigger("shapes");
  ASSERT_TRUE(WaitRunState(run, "success"));

  for (const std::string& page : std::vector<std::string>{"/ui/", "/ui/dags/shapes", "/ui/runs/" + run,
                                                         "/ui/dead-letters", "/ui/logs/" + run + "?task=extract"}) {
    RawReply r = Tcp("GET", page);
    EXPECT_EQ(r.status, 200) << page << r.error << r.body;
    EXPECT_EQ(Header(r, "Content-Type"), "text/html; charset=utf-8") << page;
    EXPECT_NE(r.body.find("<script src=\"/ui/static/app.js\""), std::string::npos) << page;
    EXPECT_NE(Header(r, "Content-Security-Policy").find("script-src 'self'"), std::string::npos) << page;
    EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff") << page;
  }
  RawReply js = Tcp("GET", "/ui/static/app.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(Header(js, "Content-Type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(Tcp("GET", "/ui/static/app.css").status, 200);
  RawReply root = Tcp("GET", "/");
  EXPECT_EQ(root.status, 302);
  EXPECT_EQ(Header(root, "Location"), "/ui/");

  // The same handler answers on the socket and under /ui/api: the same bytes.
  for (const std::string& target : std::vector<std::string>{"/v1/runs/" + run + "?history=true",
                                                           "/v1/dags/shapes/grid?runs=5",
                                                           "/v1/runs/" + run + "/attempts?task=report", "/v1/failed"}) {
    RawReply ui = Tcp("GET", "/ui/api" + target);
    RawReply socket = RawUnixRequest(socket_, HttpRequestText("GET", target));
    EXPECT_EQ(ui.status, 200) << target << ui.body;
    EXPECT_EQ(ui.body, socket.body) << target;
    EXPECT_EQ(Header(ui, "Cache-Control"), "no-store") << target;
  }
  Json grid = Tcp("GET", "/ui/api/v1/dags/shapes/grid?runs=5").JsonBody();
  EXPECT_EQ(grid["tasks"], Json::parse(R"(["extract", "load", "report"])"));
  ASSERT_EQ(grid["runs"].size(), 1u);
  EXPECT_EQ(grid["runs"][0]["run_id"], run);
  EXPECT_EQ(grid["runs"][0]["counts"], Json::parse(R"({"extract": {"success": 1}, "load": {"success": 1},
                                                       "report": {"success": 2}})"));
  Json status = Tcp("GET", "/ui/api/v1/runs/" + run + "?history=true&task=report").JsonBody();
  ASSERT_EQ(status["tasks"].size(), 2u);
  EXPECT_EQ(status["tasks"][0]["partition"], "eu");
  ASSERT_EQ(status["tasks"][0]["history"].size(), 1u);
  EXPECT_EQ(status["tasks"][0]["history"][0]["outcome"], "success");
  EXPECT_EQ(status["tasks"][0]["history"][0]["reason"], "exit code 0");
  ExpectError(Tcp("GET", "/ui/api/v1/runs/" + run + "?history=maybe"), 400,
              "query parameter 'history' must be true or false, not 'maybe'");
  ExpectError(Tcp("GET", "/ui/api/v1/dags/nope/grid"), 404, "DAG 'nope' not found");
}

TEST_F(WebUiTest, GraphHasOneNodePerTaskAndAnEdgePerDependency) {
  ASSERT_TRUE(StartWithUi());
  SubmitDag("shapes.yaml", kGraphDag);
  RawReply svg = Tcp("GET", "/ui/graph/shapes.svg");
  ASSERT_EQ(svg.status, 200) << svg.body;
  EXPECT_EQ(Header(svg, "Content-Type"), "image/svg+xml");
  EXPECT_EQ(Occurrences(svg.body, "class=\"node\""), 3u) << svg.body;
  EXPECT_EQ(Occurrences(svg.body, "class=\"edge\""), 2u) << svg.body;
  // Graphviz writes - as &#45; and > as &gt; in attribute values.
  for (const char* id : {"id=\"task&#45;extract\"", "id=\"task&#45;load\"", "id=\"task&#45;report\"",
                         "id=\"edge&#45;extract&#45;&gt;load\"", "id=\"edge&#45;extract&#45;&gt;report\""})
    EXPECT_NE(svg.body.find(id), std::string::npos) << id;
  EXPECT_NE(svg.body.find("2 partitions"), std::string::npos);
  // A new version of the DAG is drawn again; the old picture is not served for it.
  SubmitDag("shapes.yaml", std::string(kGraphDag) + "  - id: audit\n    command: \"true\"\n    depends_on: [load]\n");
  RawReply again = Tcp("GET", "/ui/graph/shapes.svg");
  EXPECT_EQ(Occurrences(again.body, "class=\"node\""), 4u);
  EXPECT_EQ(Occurrences(again.body, "class=\"edge\""), 3u);
  ExpectError(Tcp("GET", "/ui/graph/nope.svg"), 404, "DAG 'nope' not found");

  // A big graph is laid out off the daemon's loop: "ask again" at first, the picture later,
  // and the daemon answers other requests meanwhile.
  std::string big = "dag: big\ntasks:\n";
  for (int i = 0; i < 600; ++i) {
    big += "  - id: t" + std::to_string(i) + "\n    command: \"true\"\n";
    // Two upstreams each: dot's crossing minimisation takes far longer than on a tree.
    if (i > 0) big += "    depends_on: [t" + std::to_string((i - 1) / 3) +
                      (i > 5 && i / 2 - 1 != (i - 1) / 3 ? ", t" + std::to_string(i / 2 - 1) : "") + "]\n";
  }
  SubmitDag("big.yaml", big);
  RawReply first = Tcp("GET", "/ui/graph/big.svg");
  ExpectError(first, 202, "the graph of DAG 'big' is being laid out; ask again");
  EXPECT_EQ(Header(first, "Retry-After"), "1");
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
  RawReply drawn;
  for (int i = 0; i < 120 && drawn.status != 200; ++i) {
    std::this_thread::sleep_for(milliseconds(500));
    drawn = Tcp("GET", "/ui/graph/big.svg");
  }
  ASSERT_EQ(drawn.status, 200) << drawn.body;
  EXPECT_EQ(Occurrences(drawn.body, "class=\"node\""), 600u);
}

TEST_F(WebUiTest, RefusesEveryMutationAndEveryPathOutsideTheUi) {
  ASSERT_TRUE(StartWithUi());
  SubmitDag("shapes.yaml", kGraphDag);
  const std::string before = DbFingerprint();
  for (const char* method : {"POST", "PUT", "PATCH", "DELETE", "OPTIONS"}) {
    for (const char* target : {"/ui/api/v1/dags/shapes/runs", "/v1/dags/shapes/runs", "/ui/api/v1/dags/shapes",
                               "/ui/api/v1/reload", "/ui/", "/metrics"}) {
      RawReply r = Tcp(method, target);
      EXPECT_EQ(r.status, 405) << method << " " << target << r.body;
      EXPECT_EQ(r.JsonBody()["error"]["message"], "this listener is read-only") << method << " " << target;
    }
  }
  EXPECT_EQ(DbFingerprint(), before);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 0);

  const std::vector<std::pair<std::string, int>> outside = {
      {"/etc/passwd", 404},       {"/v1/dags", 404},          {"/ui/static/../../etc/passwd", 404},
      {"/ui/static/index.html", 404}, {"/ui/nope", 404},      {"/ui/api/v2/dags", 404},
      {"/ui/graph/shapes", 404},  {"/ui/api/v1/runs/../../metrics", 400}, {"/ui/graph/..%2F..%2Fetc.svg", 404}};
  for (const auto& [target, status] : outside) {
    RawReply r = Tcp("GET", target);
    EXPECT_EQ(r.status, status) << target << r.body;
    EXPECT_EQ(r.body.find("root:"), std::string::npos) << target;
  }
  EXPECT_EQ(Tcp("GET", "/ui/nope").JsonBody()["error"]["message"], "no page /ui/nope in the web UI");
  EXPECT_EQ(Tcp("GET", "/etc/passwd").JsonBody()["error"]["message"],
            "only /metrics, /healthz and the web UI (/ui/) are served here");
}

TEST_F(WebUiTest, WithoutATokenOnlyRequestsAddressedToLoopbackAreAnswered) {
  ASSERT_TRUE(StartWithUi());
  // A page elsewhere that rebinds its own name to 127.0.0.1 sends its own name as Host.
  ExpectError(Tcp("GET", "/ui/api/v1/dags", "", "attacker.example:" + std::to_string(port_)), 403,
              "Host 'attacker.example:" + std::to_string(port_) +
                  "' is refused: without ui.token the web UI answers only requests to localhost or an IP address");
  EXPECT_EQ(Tcp("GET", "/ui/", "", "attacker.example").status, 403);
  EXPECT_EQ(Tcp("GET", "/ui/api/v1/dags", "", "localhost:" + std::to_string(port_)).status, 200);
  EXPECT_EQ(Tcp("GET", "/ui/api/v1/dags", "", "[::1]:" + std::to_string(port_)).status, 200);
  EXPECT_EQ(Tcp("GET", "/ui/api/v1/dags").status, 200);
  // /metrics keeps answering any Host, as Prometheus scrapes by whatever name it knows.
  EXPECT_EQ(Tcp("GET", "/metrics", "", "prometheus.internal").status, 200);
}

TEST_F(WebUiTest, AConfiguredTokenIsRequiredForEveryDataRequest) {
  ASSERT_TRUE(StartWithUi(std::string("ui:\n  token: ") + kToken + "\n"));
  SubmitDag("shapes.yaml", kGraphDag);
  for (const char* target : {"/ui/api/v1/dags", "/ui/graph/shapes.svg", "/ui/api/v1/failed"}) {
    RawReply none = Tcp("GET", target);
    EXPECT_EQ(none.status, 401) << target;
    EXPECT_EQ(none.JsonBody()["error"]["message"], "this web UI needs a token: send Authorization: Bearer <ui.token>");
    EXPECT_EQ(Header(none, "WWW-Authenticate"), "Bearer realm=\"batchd\"");
    for (const std::string& wrong : std::vector<std::string>{"Bearer ui-token-0123456789abcdeX", "Bearer ui-token",
                                                             "Basic dTpw", std::string("Bearer ") + kToken + "x",
                                                             "Bearer"}) {
      RawReply r = Tcp("GET", target, "Authorization: " + wrong + "\r\n");
      EXPECT_EQ(r.status, 401) << target << " " << wrong;
      EXPECT_EQ(r.JsonBody()["error"]["message"], "the token is not this web UI's (config ui.token)") << wrong;
    }
    EXPECT_EQ(Tcp("GET", target, std::string("Authorization: Bearer ") + kToken + "\r\n").status, 200) << target;
  }
  // The page and its scripts hold no data and load without it (the page asks for the token).
  EXPECT_EQ(Tcp("GET", "/ui/").status, 200);
  EXPECT_EQ(Tcp("GET", "/ui/static/app.js").status, 200);
  // With a token, any Host may be used (a proxy's name, a LAN address).
  EXPECT_EQ(Tcp("GET", "/ui/api/v1/dags", std::string("Authorization: bearer ") + kToken + "\r\n", "batchd.lan").status,
            200);
}

TEST_F(WebUiTest, AReloadRotatesTheToken) {
  const std::string token_file = tmp() / "ui-token";
  const std::string rotated = "rotated-token-9876543210fedcba";
  WriteFile(token_file, std::string(kToken) + "\n");
  ASSERT_TRUE(StartWithUi("ui:\n  token_file: " + token_file + "\n"));
  auto with = [&](const std::string& token) {
    return Tcp("GET", "/ui/api/v1/dags", "Authorization: Bearer " + token + "\r\n").status;
  };
  EXPECT_EQ(with(kToken), 200);
  EXPECT_EQ(with(rotated), 401);
  WriteFile(token_file, rotated + "\n");
  SignalDaemon(SIGHUP);
  for (int i = 0; i < 100 && with(rotated) != 200; ++i) std::this_thread::sleep_for(milliseconds(100));
  EXPECT_EQ(with(rotated), 200);
  EXPECT_EQ(with(kToken), 401);
  // A reload can turn the UI off as well.
  WriteFile(config_path_, "ui:\n  enabled: false\n");
  SignalDaemon(SIGHUP);
  for (int i = 0; i < 100 && Tcp("GET", "/ui/").status != 404; ++i) std::this_thread::sleep_for(milliseconds(100));
  ExpectError(Tcp("GET", "/ui/"), 404, "the web UI is off (config ui.enabled: false)");
}

TEST_F(WebUiTest, ANonLoopbackListenerWithoutATokenKeepsTheUiOff) {
  ASSERT_TRUE(StartWithUi("", "0.0.0.0"));
  const std::string off = "the web UI is off: the HTTP listener 0.0.0.0:" + std::to_string(port_) +
                          " is not a loopback address and no ui.token is configured (docs/ui.md)";
  for (const char* target : {"/ui/", "/ui/api/v1/dags", "/"}) {
    RawReply r = Tcp("GET", target);
    EXPECT_EQ(r.status, 404) << target;
    EXPECT_EQ(r.JsonBody()["error"]["message"], off) << target;
  }
  EXPECT_EQ(Tcp("GET", "/metrics").status, 200);
  EXPECT_EQ(Tcp("GET", "/healthz").status, 200);
  EXPECT_NE(DaemonLog().find(off), std::string::npos) << DaemonLog();
  ASSERT_EQ(StopDaemon().exit_code, 0);

  // A token file next to the config turns it on.
  WriteFile(tmp() / "ui-token", std::string(kToken) + "\n");
  ASSERT_TRUE(StartWithUi("ui:\n  token_file: ui-token\n", "0.0.0.0"));
  EXPECT_EQ(Tcp("GET", "/ui/api/v1/dags").status, 401);
  EXPECT_EQ(Tcp("GET", "/ui/api/v1/dags", std::string("Authorization: Bearer ") + kToken + "\r\n").status, 200);
  ASSERT_EQ(StopDaemon().exit_code, 0);

  ASSERT_TRUE(StartWithUi("ui:\n  enabled: false\n"));
  ExpectError(Tcp("GET", "/ui/"), 404, "the web UI is off (config ui.enabled: false)");
}

TEST_F(WebUiTest, BadUiConfigIsRefusedWithFileLineAndColumn) {
  WriteFile(config_path_, "ui:\n  token: short\n  enabeld: true\n  token_file: /nonexistent/ui-token\n"
                          "  enabled: maybe\n");
  ProcResult r = RunProcess({BATCHD_BIN, "serve", "--config", config_path_, "--data-dir", data_, "--socket", socket_,
                             "--http", ""},
                            milliseconds(15000));
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.err, config_path_ + ":2:10: ui.token must be at least 16 characters\n" + config_path_ +
                       ":3:3: unknown key 'ui.enabeld' (did you mean 'enabled'?)\n" + config_path_ +
                       ":4:15: ui.token_file: cannot read '/nonexistent/ui-token': No such file or directory\n" +
                       config_path_ + ":5:12: ui.enabled must be true or false\n");
  EXPECT_FALSE(Exists(socket_));
}

// The fenced blocks of docs/ui.md: the yaml config, and every `openssl` and `curl` line,
// run as written through /bin/sh with this test's port and token file.
TEST_F(WebUiTest, TheCommandsOfTheUiDocWorkAsWritten) {
  const std::string doc = ReadFile(std::string(BATCHD_SOURCE_DIR) + "/docs/ui.md").value_or("");
  ASSERT_FALSE(doc.empty());
  std::vector<std::string> commands;
  std::string yaml;
  bool in_sh = false, in_yaml = false;
  for (size_t at = 0; at < doc.size();) {
    size_t end = doc.find('\n', at);
    if (end == std::string::npos) end = doc.size();
    std::string raw = doc.substr(at, end - at);
    at = end + 1;
    const std::string line = raw.substr(std::min(raw.size(), raw.find_first_not_of(' ')));
    if (line == "```sh") {
      in_sh = true;
    } else if (line == "```yaml") {
      in_yaml = true;
    } else if (line == "```") {
      in_sh = in_yaml = false;
    } else if (in_yaml) {
      raw = raw.substr(0, raw.find(" #"));  // the comment
      yaml += raw.substr(0, raw.find_last_not_of(' ') + 1) + "\n";
    } else if (in_sh && (line.rfind("curl ", 0) == 0 || line.rfind("openssl ", 0) == 0)) {
      commands.push_back(line);
    }
  }
  ASSERT_EQ(commands.size(), 4u);
  const std::string token_file = tmp() / "ui-token";
  auto run = [&](std::string command) {
    for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
             {"/etc/batchd/ui-token", token_file}, {"127.0.0.1:9464", "127.0.0.1:" + std::to_string(port_)}})
      for (size_t at = command.find(from); at != std::string::npos; at = command.find(from, at + to.size()))
        command.replace(at, from.size(), to);
    return RunProcess({"/bin/sh", "-c", command});
  };
  const std::string billing = ReadFile(std::string(BATCHD_SOURCE_DIR) + "/dags/nightly_billing.yaml").value_or("");

  // "Data routes": on the default, a loopback listener without a token.
  ASSERT_TRUE(StartWithUi());
  SubmitDag("nightly_billing.yaml", billing);
  const std::string run_id = Trigger("nightly_billing");
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  ProcResult grid = run(commands[2]);
  ASSERT_EQ(grid.exit_code, 0) << grid.Describe();
  Json body = Json::parse(grid.out, nullptr, false);
  ASSERT_TRUE(body.is_object()) << grid.out;
  EXPECT_EQ(body["runs"][0]["run_id"], run_id);
  ProcResult post = run(commands[3]);
  EXPECT_EQ(post.out, "405\n") << post.Describe();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 1);
  ASSERT_EQ(StopDaemon().exit_code, 0);

  // "Access": the config shown, with the token file the openssl line writes.
  ProcResult openssl = run(commands[0]);
  ASSERT_EQ(openssl.exit_code, 0) << openssl.Describe();
  EXPECT_EQ(ReadFile(token_file).value_or("").size(), 65u);  // 64 hex digits and a newline
  std::string config = yaml;
  config.replace(config.find("/etc/batchd/ui-token"), std::string("/etc/batchd/ui-token").size(), token_file);
  config.replace(config.find("0.0.0.0:9464"), std::string("0.0.0.0:9464").size(), "0.0.0.0:" + std::to_string(port_));
  EXPECT_EQ(config, "http: 0.0.0.0:" + std::to_string(port_) + "\nui:\n  token_file: " + token_file + "\n");
  DaemonOptions options;
  options.config_yaml = config;
  options.http = "0.0.0.0:" + std::to_string(port_);
  ASSERT_TRUE(StartDaemon(options));
  ProcResult failed = run(commands[1]);
  ASSERT_EQ(failed.exit_code, 0) << failed.Describe();
  EXPECT_EQ(failed.out, "[]\n");
  EXPECT_NE(run(commands[2]).out.find("\"unauthorized\""), std::string::npos);
}

}  // namespace
}  // namespace batchd::e2e
