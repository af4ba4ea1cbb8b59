#pragma once
// Whole-graph checks of a DAG's tasks, after each task was read on its own: duplicate
// ids, unknown and repeated dependencies, cycles, and `partitions: same` between tasks
// whose partition sets differ. Private to src/dag; pure.

#include <functional>
#include <string>
#include <vector>

#include "dag/dag.h"

namespace batchd::dag::internal {

using ReportFn = std::function<void(SourceLocation, std::string)>;

// `tasks` in file order; a task whose id is missing has an empty id and is skipped.
// `id_locations[i]` is where task i's id was written. Every problem goes to `report`.
void CheckTaskGraph(const std::vector<Task>& tasks, const std::vector<SourceLocation>& id_locations,
                    const ReportFn& report);

// "no partitions", "values [us, eu, apac]", "range [0, 16]", "command 'ls /data'".
std::string DescribePartitions(const Partitions& partitions);

}  // namespace batchd::dag::internal
