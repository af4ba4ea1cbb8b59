#pragma once
// The task graph of a DAG, laid out by Graphviz's dot and rendered to SVG for the web UI.
// Each task is a node <g id="task-NAME" class="node">, each dependency an edge
// <g id="edge-UP->DOWN" class="edge"> (Graphviz writes - as &#45; and > as &gt;); the page colours nodes by state, so the picture
// depends only on the DAG's version and is kept per version.
//
// Thread rules: Graphviz keeps global state; call from one thread (the daemon's loop).

#include <map>
#include <memory>
#include <string>

#include "common/status.h"
#include "dag/dag.h"

struct GVC_s;

namespace batchd::ui {

// The DOT text for `dag`, left to right (pure; tested without Graphviz).
std::string DagToDot(const dag::Dag& dag);

class DagGraphRenderer {
 public:
  DagGraphRenderer();
  ~DagGraphRenderer();
  DagGraphRenderer(const DagGraphRenderer&) = delete;
  DagGraphRenderer& operator=(const DagGraphRenderer&) = delete;

  // The SVG of `dag`, rendered on the first request for its version and kept.
  Result<std::string> Svg(const dag::Dag& dag);

 private:
  GVC_s* gvc_;
  // By DAG name: the version rendered and its SVG (one per DAG, so old versions go).
  std::map<std::string, std::pair<std::string, std::string>> cache_;
};

}  // namespace batchd::ui
