#pragma once
// The task graph of a DAG, laid out by Graphviz's dot and rendered to SVG for the web UI.
// Each task is a node <g id="task-NAME" class="node">, each dependency an edge
// <g id="edge-UP->DOWN" class="edge"> (Graphviz writes - as &#45; and > as &gt;); the page
// colours nodes by state, so the picture depends only on the DAG's version and is kept per
// version.
//
// Layout time grows faster than the graph (dot takes seconds on a thousand tasks), so it
// runs on a thread of its own, under a process-wide lock (Graphviz keeps global state);
// the caller waits a bounded time and otherwise hears "not yet".
//
// Thread rules: Svg may be called from any one thread (the daemon's loop).

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/status.h"
#include "dag/dag.h"

namespace batchd::ui {

// The DOT text for `dag`, left to right (pure; tested without Graphviz).
std::string DagToDot(const dag::Dag& dag);

class DagGraphRenderer {
 public:
  DagGraphRenderer();
  ~DagGraphRenderer();  // waits for a layout in progress
  DagGraphRenderer(const DagGraphRenderer&) = delete;
  DagGraphRenderer& operator=(const DagGraphRenderer&) = delete;

  // The SVG of `dag`'s version (or why it could not be drawn), once laid out; starts the
  // layout on first request and waits up to `wait` for it; nullopt while it is not done.
  std::optional<Result<std::string>> Svg(const dag::DagPtr& dag, std::chrono::milliseconds wait);

 private:
  struct Picture {
    std::string version;                         // content hash of the DAG drawn or being drawn
    std::optional<Result<std::string>> svg;      // set when done
  };
  void Work();

  std::mutex mu_;
  std::condition_variable work_ready_, picture_ready_;
  std::map<std::string, Picture> pictures_;  // by DAG name: one version each, so old ones go
  std::deque<dag::DagPtr> queue_;
  bool stop_ = false;
  std::thread worker_;  // last: starts once the members above exist
};

}  // namespace batchd::ui
