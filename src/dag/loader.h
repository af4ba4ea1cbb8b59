#pragma once
// Loading and validating DAG files. yaml-cpp stays behind this interface.
// Validation happens completely before anything is returned: a file either yields a
// Dag or a list of every problem found, each with file:line:column.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "dag/dag.h"

namespace batchd::dag {

struct Diagnostic {
  std::string file;
  int line = 0;     // 1-based; 0 when not tied to a position
  int column = 0;   // 1-based
  std::string message;
  // "file:line:column: message"
  std::string ToString() const;
};

struct LoadResult {
  DagPtr dag;                          // set iff errors is empty
  std::vector<Diagnostic> errors;      // every error found, in file order
  bool ok() const { return errors.empty(); }
};

// Reads and validates `path`. I/O errors are reported as a Diagnostic at line 0.
LoadResult LoadDagFile(const std::string& path);

// Validates `text` as if read from `path` (for submit over the API and for tests).
LoadResult LoadDagString(std::string_view text, const std::string& path);

// A pool is a slot limit of the daemon (its config's `pools:`), so the loader accepts any
// pool name; this reports each `pool:` of `dag` that `pools` does not define, at the
// position of its value, e.g. "pool 'inference' is not defined in the daemon config
// (pools: gpu, warehouse)". Empty when every pool is defined.
std::vector<Diagnostic> CheckPools(const Dag& dag, const std::map<std::string, int>& pools);

// Largest file the loader accepts, so a stray 50 MB file is refused quickly.
inline constexpr size_t kMaxDagFileBytes = 4 * 1024 * 1024;

}  // namespace batchd::dag
