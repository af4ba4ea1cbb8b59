// The web UI's pure parts: the DOT text of a DAG, Graphviz's SVG of it, which listener
// addresses are loopback, and WebUi's routing, token and Host rules with a recording
// stand-in for the control API (the real one is exercised in tests/e2e/web_ui_e2e_test.cc).

#include "ui/web_ui.h"

#include <gtest/gtest.h>

#include "dag/loader.h"
#include "ui/assets.h"

namespace batchd::ui {
namespace {

dag::DagPtr Load(const std::string& yaml) {
  auto loaded = dag::LoadDagString(yaml, "inline.yaml");
  EXPECT_TRUE(loaded.ok());
  return loaded.dag;
}

const char* kDag = R"(dag: etl
tasks:
  - id: extract
    command: "true"
    description: reads "the source"
  - id: transform
    command: "true"
    depends_on: [extract]
    partitions:
      values: [eu, us, apac]
  - id: load
    command: "true"
    depends_on:
      - task: transform
        partitions: same
    partitions:
      values: [eu, us, apac]
)";

// The SVG's text with the character references Graphviz writes for - and > resolved.
std::string Unescape(std::string svg) {
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"&#45;", "-"}, {"&gt;", ">"}})
    for (size_t at = svg.find(from); at != std::string::npos; at = svg.find(from, at + to.size()))
      svg.replace(at, from.size(), to);
  return svg;
}

size_t Occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(DagToDotTest, OneNodePerTaskAndOneEdgePerDependency) {
  auto dag = Load(kDag);
  EXPECT_EQ(DagToDot(*dag),
            "digraph \"etl\" {\n"
            "  graph [rankdir=LR, bgcolor=transparent, fontname=\"sans-serif\", nodesep=0.25, ranksep=0.45];\n"
            "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", color=\"#4d4d4d\", "
            "fontname=\"sans-serif\", fontsize=11, height=0.35];\n"
            "  edge [color=\"#4d4d4d\", arrowsize=0.6];\n"
            "  \"extract\" [id=\"task-extract\", label=\"extract\", tooltip=\"extract: reads \\\"the source\\\"\"];\n"
            "  \"transform\" [id=\"task-transform\", label=\"transform\\n[3 partitions]\", tooltip=\"transform\"];\n"
            "  \"load\" [id=\"task-load\", label=\"load\\n[3 partitions]\", tooltip=\"load\"];\n"
            "  \"extract\" -> \"transform\" [id=\"edge-extract->transform\"];\n"
            "  \"transform\" -> \"load\" [id=\"edge-transform->load\", style=dashed, tooltip=\"same partitions\"];\n"
            "}\n");
}

TEST(DagGraphRendererTest, GraphvizDrawsEveryTaskAndDependencyAndKeepsThePicturePerVersion) {
  auto dag = Load(kDag);
  DagGraphRenderer renderer;
  auto svg = renderer.Svg(dag, std::chrono::seconds(30));
  ASSERT_TRUE(svg && svg->ok());
  const std::string text = Unescape(**svg);
  EXPECT_NE(text.find("<svg"), std::string::npos);
  EXPECT_EQ(Occurrences(text, "class=\"node\""), 3u);
  EXPECT_EQ(Occurrences(text, "class=\"edge\""), 2u);
  EXPECT_NE(text.find("id=\"task-transform\""), std::string::npos) << text;
  EXPECT_NE(text.find("id=\"edge-transform->load\""), std::string::npos) << text;
  EXPECT_NE(text.find(">[3 partitions]</text>"), std::string::npos);
  // The same version again is the kept picture, at once; a new version is drawn anew.
  auto kept = renderer.Svg(dag, std::chrono::milliseconds(0));
  ASSERT_TRUE(kept && kept->ok());
  EXPECT_EQ(**kept, **svg);
  auto changed = Load(std::string(kDag) + "  - id: report\n    command: \"true\"\n    depends_on: [load]\n");
  auto again = renderer.Svg(changed, std::chrono::seconds(30));
  ASSERT_TRUE(again && again->ok());
  EXPECT_EQ(Occurrences(**again, "class=\"node\""), 4u);
}

TEST(DagGraphRendererTest, ABigGraphIsLaidOutWhileTheCallerGoesOn) {
  std::string yaml = "dag: big\ntasks:\n";
  for (int i = 0; i < 400; ++i) {
    yaml += "  - id: t" + std::to_string(i) + "\n    command: \"true\"\n";
    if (i > 0) yaml += "    depends_on: [t" + std::to_string((i - 1) / 3) + "]\n";
  }
  auto dag = Load(yaml);
  DagGraphRenderer renderer;
  const auto start = std::chrono::steady_clock::now();
  auto first = renderer.Svg(dag, std::chrono::milliseconds(1));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_FALSE(first.has_value());  // dot takes far longer than 1 ms on 400 tasks
  auto done = renderer.Svg(dag, std::chrono::seconds(60));
  ASSERT_TRUE(done && done->ok());
  EXPECT_EQ(Occurrences(**done, "class=\"node\""), 400u);
}

TEST(IsLoopbackAddressTest, OnlyLoopbackAddressesAndLocalhost) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:9464"));
  EXPECT_TRUE(IsLoopbackAddress("127.1.2.3:80"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:9464"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:9464"));
  EXPECT_TRUE(IsLoopbackAddress("LocalHost:9464"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:9464"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:9464"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.5:9464"));
  EXPECT_FALSE(IsLoopbackAddress("128.0.0.1:9464"));
  EXPECT_FALSE(IsLoopbackAddress("example.com:9464"));
}

class WebUiRoutingTest : public ::testing::Test {
 protected:
  WebUi Make(std::string token = "", std::string listen = "127.0.0.1:9464") {
    WebUiOptions options;
    options.token = std::move(token);
    options.listen_address = std::move(listen);
    return WebUi(
        options,
        [this](const api::HttpRequest& r) {
          forwarded_.push_back(r.method + " " + r.target);
          api::HttpResponse response;
          response.body = "{}";
          return response;
        },
        [this](const std::string& name) -> dag::DagPtr { return name == "etl" ? dag_ : nullptr; });
  }
  static api::HttpRequest Get(const std::string& target, const std::string& host = "127.0.0.1:9464",
                              const std::string& authorization = "") {
    api::HttpRequest r;
    r.method = "GET";
    r.target = target;
    r.host = host;
    r.authorization = authorization;
    return r;
  }
  dag::DagPtr dag_ = Load(kDag);
  std::vector<std::string> forwarded_;
};

TEST_F(WebUiRoutingTest, DataRoutesAreTheControlApisGetRoutesUnderUiApi) {
  WebUi ui = Make();
  auto r = ui.Handle(Get("/ui/api/v1/runs?dag=etl&limit=5"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(forwarded_, std::vector<std::string>{"GET /v1/runs?dag=etl&limit=5"});
  EXPECT_FALSE(ui.Handle(Get("/metrics")));
  EXPECT_FALSE(ui.Handle(Get("/uix")));
  auto head = Get("/ui/api/v1/dags");
  head.method = "HEAD";
  EXPECT_EQ(ui.Handle(head)->status, 405);
  EXPECT_EQ(forwarded_.size(), 1u);
}

TEST_F(WebUiRoutingTest, PagesShareOneDocumentAndAssetsAreCompiledIn) {
  WebUi ui = Make();
  const Asset* index = FindAsset("index.html");
  ASSERT_NE(index, nullptr);
  for (const char* page : {"/ui/", "/ui/dags/etl", "/ui/runs/0123456789ab", "/ui/dead-letters", "/ui/logs/x"}) {
    auto r = ui.Handle(Get(page));
    ASSERT_TRUE(r) << page;
    EXPECT_EQ(r->status, 200) << page;
    EXPECT_EQ(r->body, index->body) << page;
  }
  EXPECT_EQ(ui.Handle(Get("/ui/static/app.js"))->content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(ui.Handle(Get("/ui/static/app.css"))->content_type, "text/css; charset=utf-8");
  EXPECT_EQ(ui.Handle(Get("/ui/static/index.html"))->status, 404);
  EXPECT_EQ(ui.Handle(Get("/ui/static/../../etc/passwd"))->status, 404);
  EXPECT_EQ(ui.Handle(Get("/ui/secrets"))->status, 404);
  EXPECT_EQ(ui.Handle(Get("/"))->status, 302);
  EXPECT_TRUE(forwarded_.empty());
}

TEST_F(WebUiRoutingTest, TokenGuardsDataButNotTheEmptyPage) {
  WebUi ui = Make("0123456789abcdef0123");
  EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags"))->status, 401);
  EXPECT_EQ(ui.Handle(Get("/ui/graph/etl.svg"))->status, 401);
  EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags", "h", "Bearer 0123456789abcdef012"))->status, 401);
  EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags", "h", "Bearer 0123456789abcdef0124"))->status, 401);
  EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags", "h", "Token 0123456789abcdef0123"))->status, 401);
  EXPECT_TRUE(forwarded_.empty());
  EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags", "h", "Bearer 0123456789abcdef0123"))->status, 200);
  EXPECT_EQ(ui.Handle(Get("/ui/graph/etl.svg", "h", "BEARER 0123456789abcdef0123"))->status, 200);
  EXPECT_EQ(ui.Handle(Get("/ui/"))->status, 200);
}

TEST_F(WebUiRoutingTest, WithoutATokenOnlyLoopbackNamesAndAddressesAreAnswered) {
  WebUi ui = Make();
  for (const char* host : {"127.0.0.1:9464", "localhost:9464", "localhost", "[::1]:9464", "10.1.2.3"})
    EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags", host))->status, 200) << host;
  for (const char* host : {"evil.example", "evil.example:9464", "127.0.0.1.nip.io", "", "localhost.evil"})
    EXPECT_EQ(ui.Handle(Get("/ui/api/v1/dags", host))->status, 403) << host;
}

TEST_F(WebUiRoutingTest, ANonLoopbackListenerNeedsAToken) {
  WebUi off = Make("", "0.0.0.0:9464");
  EXPECT_EQ(off.off_reason(),
            "the web UI is off: the HTTP listener 0.0.0.0:9464 is not a loopback address and no ui.token is "
            "configured (docs/ui.md)");
  EXPECT_EQ(off.Handle(Get("/ui/"))->status, 404);
  WebUi on = Make("0123456789abcdef0123", "0.0.0.0:9464");
  EXPECT_EQ(on.off_reason(), "");
  EXPECT_EQ(on.Handle(Get("/ui/"))->status, 200);
}

}  // namespace
}  // namespace batchd::ui
