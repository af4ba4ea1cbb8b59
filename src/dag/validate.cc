#include "dag/validate.h"

#include <algorithm>
#include <deque>
#include <set>
#include <unordered_map>

#include "dag/text_util.h"

namespace batchd::dag::internal {
namespace {

std::string Q(const std::string& s) { return QuoteForMessage(s); }

bool SamePartitionSets(const Partitions& a, const Partitions& b) {
  using Kind = Partitions::Kind;
  if (a.kind == Kind::kCommand || b.kind == Kind::kCommand) {
    return a.kind == b.kind && a.command == b.command;
  }
  if (a.kind == Kind::kRange && b.kind == Kind::kRange) {
    return a.range_begin == b.range_begin && a.range_end == b.range_end;
  }
  std::vector<std::string> x = StaticPartitionNames(a), y = StaticPartitionNames(b);
  if (x.size() != y.size()) return false;
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  return x == y;
}

// Strongly connected components (Tarjan's algorithm, iterative so that a long chain of
// tasks cannot overflow the stack). Returns the component index of every node.
std::vector<int> StronglyConnectedComponents(const std::vector<std::vector<int>>& edges) {
  const int n = static_cast<int>(edges.size());
  std::vector<int> index(n, -1), low(n, 0), component(n, -1);
  std::vector<bool> on_stack(n, false);
  std::vector<int> stack;
  int next_index = 0, next_component = 0;
  struct Frame {
    int node;
    size_t edge;
  };
  for (int start = 0; start < n; ++start) {
    if (index[start] != -1) continue;
    std::vector<Frame> frames{{start, 0}};
    index[start] = low[start] = next_index++;
    stack.push_back(start);
    on_stack[start] = true;
    while (!frames.empty()) {
      Frame& f = frames.back();
      int v = f.node;
      if (f.edge < edges[v].size()) {
        int w = edges[v][f.edge++];
        if (index[w] == -1) {
          index[w] = low[w] = next_index++;
          stack.push_back(w);
          on_stack[w] = true;
          frames.push_back({w, 0});
        } else if (on_stack[w]) {
          low[v] = std::min(low[v], index[w]);
        }
        continue;
      }
      if (low[v] == index[v]) {
        int w;
        do {
          w = stack.back();
          stack.pop_back();
          on_stack[w] = false;
          component[w] = next_component;
        } while (w != v);
        ++next_component;
      }
      frames.pop_back();
      if (!frames.empty()) {
        int parent = frames.back().node;
        low[parent] = std::min(low[parent], low[v]);
      }
    }
  }
  return component;
}

// The shortest cycle through `start` following `down` edges inside its component.
std::vector<int> ShortestCycle(int start, const std::vector<std::vector<int>>& down, const std::vector<int>& component) {
  std::vector<int> parent(down.size(), -2);
  std::deque<int> queue{start};
  parent[start] = -1;
  while (!queue.empty()) {
    int u = queue.front();
    queue.pop_front();
    for (int v : down[u]) {
      if (component[v] != component[start]) continue;
      if (v == start) {
        std::vector<int> path;
        for (int x = u; x != -1; x = parent[x]) path.push_back(x);
        std::reverse(path.begin(), path.end());
        path.push_back(start);
        return path;
      }
      if (parent[v] == -2) {
        parent[v] = u;
        queue.push_back(v);
      }
    }
  }
  return {start, start};  // unreachable for a real cycle
}

}  // namespace

std::string DescribePartitions(const Partitions& partitions) {
  switch (partitions.kind) {
    case Partitions::Kind::kNone: return "no partitions";
    case Partitions::Kind::kValues: {
      constexpr size_t kShown = 5;
      std::string out = "values [";
      for (size_t i = 0; i < partitions.values.size() && i < kShown; ++i) {
        if (i) out += ", ";
        out += partitions.values[i];
      }
      if (partitions.values.size() > kShown) {
        out += ", ... (" + std::to_string(partitions.values.size()) + " in all)";
      }
      return out + "]";
    }
    case Partitions::Kind::kRange:
      return "range [" + std::to_string(partitions.range_begin) + ", " + std::to_string(partitions.range_end) + "]";
    case Partitions::Kind::kCommand: return "command " + QuoteForMessage(partitions.command);
  }
  return "unknown partitions";
}

void CheckTaskGraph(const std::vector<Task>& tasks, const std::vector<SourceLocation>& id_locations,
                    const ReportFn& report) {
  const int n = static_cast<int>(tasks.size());
  std::unordered_map<std::string, int> first_index;
  std::vector<std::string> all_ids;
  for (int i = 0; i < n; ++i) {
    const std::string& id = tasks[i].id;
    if (id.empty()) continue;
    auto [it, inserted] = first_index.emplace(id, i);
    if (inserted) {
      all_ids.push_back(id);
    } else {
      report(id_locations[i], "duplicate task id " + Q(id) + " (first defined at line " +
                                  std::to_string(id_locations[it->second].line) + ")");
    }
  }

  // up[i]: tasks i depends on; down[j]: tasks depending on j (both in file order).
  std::vector<std::vector<int>> up(n), down(n);
  for (int i = 0; i < n; ++i) {
    const Task& task = tasks[i];
    if (task.id.empty()) continue;
    bool canonical = first_index[task.id] == i;  // a duplicate's edges would repeat errors
    std::set<int> seen;
    for (const Dependency& dep : task.depends_on) {
      auto it = first_index.find(dep.task);
      if (it == first_index.end()) {
        report(dep.location, "task " + Q(task.id) + " depends on unknown task " + Q(dep.task) +
                                 DidYouMean(dep.task, all_ids));
        continue;
      }
      int j = it->second;
      if (!seen.insert(j).second) {
        report(dep.location, "task " + Q(task.id) + " lists " + Q(dep.task) + " in depends_on more than once");
        continue;
      }
      if (dep.same_partition && !SamePartitionSets(task.partitions, tasks[j].partitions)) {
        report(dep.location, "task " + Q(task.id) + " uses partitions: same on " + Q(dep.task) +
                                 ", but their partitions differ (" + task.id + ": " +
                                 DescribePartitions(task.partitions) + "; " + dep.task + ": " +
                                 DescribePartitions(tasks[j].partitions) + ")");
      }
      if (canonical) {
        up[i].push_back(j);
        down[j].push_back(i);
      }
    }
  }

  // One error per strongly connected component that contains a cycle, naming the
  // shortest cycle through its first task in file order, in data-flow order
  // (upstream -> downstream).
  std::vector<int> component = StronglyConnectedComponents(up);
  std::vector<int> component_size(n, 0);
  for (int c : component) ++component_size[c];
  std::vector<bool> reported(n, false);
  for (int i = 0; i < n; ++i) {
    if (tasks[i].id.empty() || reported[component[i]]) continue;
    bool self_loop = std::find(up[i].begin(), up[i].end(), i) != up[i].end();
    if (!self_loop && component_size[component[i]] < 2) continue;
    reported[component[i]] = true;
    std::vector<int> path = self_loop ? std::vector<int>{i, i} : ShortestCycle(i, down, component);
    std::string text = "dependency cycle: ";
    for (size_t k = 0; k < path.size(); ++k) {
      if (k) text += " -> ";
      text += tasks[path[k]].id;
    }
    report(id_locations[i], text);
  }
}

}  // namespace batchd::dag::internal
