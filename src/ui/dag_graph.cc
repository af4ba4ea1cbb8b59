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

DagGraphRenderer::DagGraphRenderer() : gvc_(gvContextPlugins(kGraphvizPlugins, 0)) {}

DagGraphRenderer::~DagGraphRenderer() {
  if (gvc_) gvFreeContext(gvc_);
}

Result<std::string> DagGraphRenderer::Svg(const dag::Dag& dag) {
  auto it = cache_.find(dag.name);
  if (it != cache_.end() && it->second.first == dag.content_hash) return it->second.second;
  if (!gvc_) return Status::Internal("Graphviz could not be initialised");
  const std::string dot = DagToDot(dag);
  std::unique_ptr<Agraph_t, int (*)(Agraph_t*)> graph(agmemread(dot.c_str()), agclose);
  if (!graph) return Status::Internal("Graphviz could not read the graph of DAG '" + dag.name + "'");
  if (gvLayout(gvc_, graph.get(), "dot") != 0)
    return Status::Internal("Graphviz could not lay out the graph of DAG '" + dag.name + "'");
  char* data = nullptr;
  unsigned int length = 0;
  const int rendered = gvRenderData(gvc_, graph.get(), "svg", &data, &length);
  std::string svg = rendered == 0 && data ? std::string(data, length) : std::string();
  if (data) gvFreeRenderData(data);
  gvFreeLayout(gvc_, graph.get());
  if (svg.empty()) return Status::Internal("Graphviz could not render the graph of DAG '" + dag.name + "'");
  cache_[dag.name] = {dag.content_hash, svg};
  return svg;
}

}  // namespace batchd::ui
