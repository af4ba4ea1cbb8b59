#include "ui/dag_graph.h"

#include <graphviz/gvc.h>
#include <graphviz/gvplugin.h>

#include <memory>

// The dot layout and the core (SVG) renderer, linked in so that rendering does not depend
// on Graphviz's plugin configuration file (written by a package hook) being present.
extern "C" {
extern gvplugin_library_t gvplugin_dot_layout_LTX_library;
extern gvplugin_library_t gvplugin_core_LTX_library;
}

namespace batchd::ui {
namespace {

lt_symlist_t kGraphvizPlugins[] = {
    {"gvplugin_dot_layout_LTX_library", &gvplugin_dot_layout_LTX_library},
    {"gvplugin_core_LTX_library", &gvplugin_core_LTX_library},
    {nullptr, nullptr},
};

// A DOT double-quoted string. Names are [A-Za-z0-9_.-] already; this keeps any other text
// (descriptions in tooltips) from ending the string.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n' || c == '\r') {
      out += ' ';
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::string Label(const dag::Task& task) {
  switch (task.partitions.kind) {
    case dag::Partitions::Kind::kNone: return task.id;
    case dag::Partitions::Kind::kValues:
      return task.id + "\\n[" + std::to_string(task.partitions.values.size()) + " partitions]";
    case dag::Partitions::Kind::kRange:
      return task.id + "\\n[" + std::to_string(task.partitions.range_end - task.partitions.range_begin + 1) +
             " partitions]";
    case dag::Partitions::Kind::kCommand: return task.id + "\\n[partitions]";
  }
  return task.id;
}

}  // namespace

namespace {

Result<std::string> Render(GVC_t* gvc, const dag::Dag& dag) {
  const std::string dot = DagToDot(dag);
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> graph(agmemread(dot.c_str()), agclose);
  if (!graph) return Status::Internal("Graphviz could not read the graph of DAG '" + dag.name + "'");
  if (gvLayout(gvc, graph.get(), "dot") != 0)
    return Status::Internal("Graphviz could not lay out the graph of DAG '" + dag.name + "'");
  char* data = nullptr;
  unsigned int length = 0;
  const int rendered = gvRenderData(gvc, graph.get(), "svg", &data, &length);
  std::string svg = rendered == 0 && data ? std::string(data, length) : std::string();
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc, graph.get());
  if (svg.empty()) return Status::Internal("Graphviz could not render the graph of DAG '" + dag.name + "'");
  return svg;
}

}  // namespace

std::string DagToDot(const dag::Dag& dag) {
  std::string dot = "digraph " + Quote(dag.name) + " {\n";
  dot += "  graph [rankdir=LR, bgcolor=transparent, fontname=\"sans-serif\", nodesep=0.25, ranksep=0.45];\n";
  dot += "  node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", color=\"#4d4d4d\", "
         "fontname=\"sans-serif\", fontsize=11, height=0.35];\n";
  dot += "  edge [color=\"#4d4d4d\", arrowsize=0.6];\n";
  for (const auto& t : dag.tasks) {
    // Quoted without Quote's escaping of backslashes, which would undo the label's \n.
    std::string label = "\"";
    for (char c : Label(t)) {
      if (c == '"') label += '\\';
      label += c;
    }
    label += "\"";
    dot += "  " + Quote(t.id) + " [id=" + Quote("task-" + t.id) + ", label=" + label + ", tooltip=" +
           Quote(t.description.empty() ? t.id : t.id + ": " + t.description) + "];\n";
  }
  for (const auto& t : dag.tasks)
    for (const auto& d : t.depends_on)
      dot += "  " + Quote(d.task) + " -> " + Quote(t.id) + " [id=" + Quote("edge-" + d.task + "->" + t.id) +
             (d.same_partition ? ", style=dashed, tooltip=\"same partitions\"" : "") + "];\n";
  return dot + "}\n";
}

DagGraphRenderer::DagGraphRenderer() : worker_([this] { Work(); }) {}

DagGraphRenderer::~DagGraphRenderer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_ready_.notify_all();
  worker_.join();
}

std::optional<Result<std::string>> DagGraphRenderer::Svg(const dag::DagPtr& dag, std::chrono::milliseconds wait) {
  std::unique_lock lock(mu_);
  Picture& picture = pictures_[dag->name];
  if (picture.version != dag->content_hash) {
    picture = Picture{dag->content_hash, std::nullopt};
    queue_.push_back(dag);
    work_ready_.notify_one();
  }
  const std::string version = dag->content_hash;
  const std::string name = dag->name;
  picture_ready_.wait_for(lock, wait, [&] {
    const Picture& p = pictures_[name];
    return p.version != version || p.svg.has_value();
  });
  const Picture& done = pictures_[name];
  if (done.version != version) return std::nullopt;  // a newer version is being drawn
  return done.svg;
}

namespace {
// Graphviz keeps process-wide state (its graph prototypes, the plugin registry), so two
// renderers (tests make several) must not call it at once.
std::mutex graphviz_mutex;
}  // namespace

void DagGraphRenderer::Work() {
  GVC_t* gvc = nullptr;  // made on the first layout: a daemon whose UI draws no graph never loads Graphviz
  for (;;) {
    dag::DagPtr dag;
    {
      std::unique_lock lock(mu_);
      work_ready_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      dag = std::move(queue_.front());
      queue_.pop_front();
      if (pictures_[dag->name].version != dag->content_hash) continue;  // superseded while queued
    }
    Result<std::string> svg = Status::Internal("Graphviz could not be initialised");
    {
      std::lock_guard graphviz(graphviz_mutex);
      if (!gvc) gvc = gvContextPlugins(kGraphvizPlugins, 0);
      if (gvc) svg = Render(gvc, *dag);
    }
    {
      std::lock_guard lock(mu_);
      Picture& picture = pictures_[dag->name];
      if (picture.version == dag->content_hash) picture.svg = std::move(svg);
    }
    picture_ready_.notify_all();
  }
  if (gvc) {
    std::lock_guard graphviz(graphviz_mutex);
    gvFreeContext(gvc);
  }
}

}  // namespace batchd::ui
