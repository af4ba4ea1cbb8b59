#include "engine/dag_versions.h"

#include "dag/loader.h"

namespace batchd::engine {

Result<dag::DagPtr> DagVersionCache::Resolve(const std::string& name, const std::string& hash) {
  auto it = cache_.find(hash);
  if (it != cache_.end() && it->second->name == name) return it->second;
  auto version = store_.GetDagVersion(name, hash);
  if (!version.ok()) return version.status();
  dag::LoadResult loaded = dag::LoadDagString(version->source, version->source_path);
  if (!loaded.ok()) {
    return Status::Corruption("stored version " + hash + " of DAG '" + name +
                              "' no longer loads: " + loaded.errors.front().ToString());
  }
  cache_[hash] = loaded.dag;
  return loaded.dag;
}

}  // namespace batchd::engine
