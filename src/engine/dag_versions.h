#pragma once
// DagVersionCache: resolves (DAG name, content hash) to a loaded Dag, parsing the source
// stored in the Store once per version. Used as the engine's DagResolver.
//
// Thread rules: engine thread only (it reads the Store).

#include <map>
#include <string>

#include "dag/dag.h"
#include "store/store.h"

namespace batchd::engine {

class DagVersionCache {
 public:
  explicit DagVersionCache(store::Store& store) : store_(store) {}
  // Makes an already loaded Dag known (so it is not parsed again).
  void Add(dag::DagPtr dag) { cache_[dag->content_hash] = std::move(dag); }
  Result<dag::DagPtr> Resolve(const std::string& name, const std::string& hash);

 private:
  store::Store& store_;
  std::map<std::string, dag::DagPtr> cache_;  // by content hash
};

}  // namespace batchd::engine
