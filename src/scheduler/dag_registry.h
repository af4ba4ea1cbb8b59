#pragma once
// DagRegistry: the current version of every DAG, whichever way it arrived (a file in the
// DAGs directory or `submit`). The newest wins: a file's content becomes current only when
// it is a version never seen before, so rescanning an unchanged file does not undo a newer
// submit. Versions are persisted in the Store before they become current.
//
// Thread rules: engine thread only.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dag/loader.h"
#include "engine/dag_versions.h"
#include "scheduler/fire_times.h"
#include "store/store.h"

namespace batchd::scheduler {

struct RegisteredDag {
  dag::DagPtr dag;
  std::optional<Schedule> schedule;
  store::DagEntry entry;  // paused, origin, last_fire...
};

struct ScanReport {
  std::vector<std::string> loaded;     // new versions made current
  std::vector<std::string> unchanged;  // already known
  std::vector<std::string> removed;    // their file left the directory: deleted
  std::vector<dag::Diagnostic> errors; // broken files, skipped
};

struct SubmitResult {
  std::string dag;
  std::string hash;
  bool changed = false;  // a new current version
};

class DagRegistry {
 public:
  DagRegistry(store::Store& store, engine::DagVersionCache& versions, const Clock& clock)
      : store_(store), versions_(versions), clock_(clock) {}

  // Loads the current versions recorded in the store.
  Status LoadFromStore();
  // Loads every *.yaml / *.yml file in `dir` (not recursive). A DAG that came from a file
  // in `dir` is deleted (soft: its runs stay) when that file is gone or now defines
  // another DAG; a file that fails to load keeps its DAG at the last good version.
  ScanReport ScanDirectory(const std::string& dir);
  // Registers a validated DAG; origin "file" or "submit".
  Result<SubmitResult> Register(dag::DagPtr dag, const std::string& origin);

  // The daemon's pools (config `pools:`). Once set, a DAG naming another pool is refused
  // by ScanDirectory (and by submit, which asks UndefinedPools); unset, no check is made.
  void SetPools(std::map<std::string, int> pools) { pools_ = std::move(pools); }
  // The `pool:` values of `dag` that the daemon does not define (dag::CheckPools).
  std::vector<dag::Diagnostic> UndefinedPools(const dag::Dag& dag) const;
  // Pools named by the tasks of current DAGs, with the DAGs naming each.
  std::map<std::string, std::vector<std::string>> PoolsInUse() const;

  const RegisteredDag* Find(const std::string& name) const;
  const std::map<std::string, RegisteredDag>& all() const { return dags_; }

  Status SetPaused(const std::string& name, bool paused);
  Status Delete(const std::string& name, bool purge);
  Status SetLastFire(const std::string& name, SysSeconds fire);

 private:
  // Reads `name` back from the store if the outermost transaction rolls back.
  void RefreshIfRolledBack(const std::string& name);
  Status Refresh(const std::string& name);

  store::Store& store_;
  engine::DagVersionCache& versions_;
  const Clock& clock_;
  std::map<std::string, RegisteredDag> dags_;  // not deleted
  std::optional<std::map<std::string, int>> pools_;
};

}  // namespace batchd::scheduler
