#include "scheduler/dag_registry.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include <spdlog/spdlog.h>

#include "common/logging.h"

namespace batchd::scheduler {

namespace fs = std::filesystem;

Status DagRegistry::Refresh(const std::string& name) {
  auto entry = store_.GetDag(name);
  if (!entry.ok()) return entry.status();
  if (!*entry || (*entry)->deleted) {
    dags_.erase(name);
    return Status::Ok();
  }
  auto dag = versions_.Resolve(name, (*entry)->current_hash);
  if (!dag.ok()) return dag.status();
  auto schedule = Schedule::ForDag(**dag);
  if (!schedule.ok()) return schedule.status();
  dags_[name] = RegisteredDag{*dag, std::move(*schedule), **entry};
  return Status::Ok();
}

void DagRegistry::RefreshIfRolledBack(const std::string& name) {
  // Inside a caller's transaction (the API's, with its audit row), the entry changed in
  // memory before the commit that may still fail: then it is read back from the store.
  store_.AfterTransaction([this, name](bool committed) {
    if (committed) return;
    if (Status st = Refresh(name); !st.ok())
      LogEvent(spdlog::level::err, {.dag = name}, "DAG {}: cannot reload it: {}", name, st.message());
  });
}

Status DagRegistry::LoadFromStore() {
  auto entries = store_.ListDags();
  if (!entries.ok()) return entries.status();
  for (const auto& e : *entries) {
    if (Status st = Refresh(e.name); !st.ok()) {
      LogEvent(spdlog::level::err, {.dag = e.name}, "DAG {}: cannot load its current version: {}", e.name,
               st.message());
    }
  }
  return Status::Ok();
}

Result<SubmitResult> DagRegistry::Register(dag::DagPtr dag, const std::string& origin) {
  SubmitResult result{dag->name, dag->content_hash, false};
  auto entry = store_.GetDag(dag->name);
  if (!entry.ok()) return entry.status();
  if (*entry && !(*entry)->deleted && (*entry)->current_hash == dag->content_hash) return result;
  auto known = store_.GetDagVersion(dag->name, dag->content_hash);
  const bool seen_before = known.ok();
  // A file we have seen before does not override a newer submit; an explicit submit
  // always makes its version current.
  const bool file_came_back = *entry && (*entry)->deleted && (*entry)->origin == "file-removed";
  if (origin == "file" && seen_before && *entry && !file_came_back) return result;
  // A version read from the DAGs directory needs no fsync: should a power cut lose the
  // commit, the next scan registers it again from its file, and a run created from it
  // commits with a full sync that makes this commit durable first. Without it, a first
  // start on 1,000 files pays 1,000 fsyncs. A submit is acknowledged to its client: full.
  const auto durability = origin == "file" ? store::Store::Durability::kProcessCrash : store::Store::Durability::kFull;
  if (Status st = store_.Begin(durability); !st.ok()) return st;
  RefreshIfRolledBack(dag->name);
  Status st = store_.PutDagVersion({dag->name, dag->content_hash, dag->source, dag->source_path});
  if (st.ok()) st = store_.SetCurrentDag(dag->name, dag->content_hash, origin, dag->source_path, clock_.Now());
  if (st.ok() && !*entry && dag->paused) st = store_.SetDagPaused(dag->name, true);
  if (!st.ok()) {
    store_.Rollback();
    return st;
  }
  if (Status c = store_.Commit(); !c.ok()) return c;
  versions_.Add(dag);
  if (Status r = Refresh(dag->name); !r.ok()) return r;
  result.changed = true;
  LogEvent(spdlog::level::info, {.dag = dag->name}, "DAG {} version {} is current ({})", dag->name,
           dag->content_hash.substr(0, 12), origin);
  return result;
}

ScanReport DagRegistry::ScanDirectory(const std::string& dir) {
  ScanReport report;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    report.errors.push_back({dir, 0, 0, "DAGs directory does not exist"});
    return report;
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    auto ext = e.path().extension().string();
    if ((ext == ".yaml" || ext == ".yml") && e.is_regular_file(ec)) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  std::map<std::string, std::string> seen_names;  // dag name -> first file
  for (const auto& file : files) {
    dag::LoadResult loaded = dag::LoadDagFile(file);
    if (!loaded.ok()) {
      for (auto& d : loaded.errors) report.errors.push_back(std::move(d));
      continue;
    }
    if (auto undefined = UndefinedPools(*loaded.dag); !undefined.empty()) {
      for (auto& d : undefined) report.errors.push_back(std::move(d));
      continue;
    }
    auto [it, inserted] = seen_names.emplace(loaded.dag->name, file);
    if (!inserted) {
      report.errors.push_back({file, 1, 1, "DAG '" + loaded.dag->name + "' is also defined in " + it->second +
                                               "; this file is skipped"});
      continue;
    }
    auto r = Register(loaded.dag, "file");
    if (!r.ok()) {
      report.errors.push_back({file, 0, 0, r.status().message()});
    } else if (r->changed) {
      report.loaded.push_back(r->dag);
    } else {
      report.unchanged.push_back(r->dag);
    }
  }
  // DAGs whose file is gone, or whose file now defines another DAG. A file that exists
  // but failed to load keeps its DAG (an edit in progress must not unschedule it).
  std::set<std::string> present(files.begin(), files.end());
  std::map<std::string, std::string> defined_by;  // file -> the DAG it defines now
  for (const auto& [name, file] : seen_names) defined_by[file] = name;
  const fs::path dir_path = fs::weakly_canonical(dir, ec);
  std::vector<std::string> to_remove;
  for (const auto& [name, reg] : dags_) {
    if (reg.entry.origin != "file" || reg.entry.source_path.empty()) continue;
    const fs::path source(reg.entry.source_path);
    if (fs::weakly_canonical(source.parent_path(), ec) != dir_path) continue;  // another directory
    auto it = defined_by.find(reg.entry.source_path);
    const bool gone = !present.count(reg.entry.source_path) && !fs::exists(source, ec);
    const bool renamed = it != defined_by.end() && it->second != name;
    if (gone || renamed) to_remove.push_back(name);
  }
  for (const auto& name : to_remove) {
    if (Status st = store_.SetDagFileRemoved(name); !st.ok()) {
      report.errors.push_back({dags_[name].entry.source_path, 0, 0, st.message()});
      continue;
    }
    dags_.erase(name);
    report.removed.push_back(name);
    LogEvent(spdlog::level::info, {.dag = name}, "DAG {} removed: its file is no longer in {}", name, dir);
  }
  for (const auto& d : report.errors) spdlog::error("DAG file skipped: {}", d.ToString());
  return report;
}

std::vector<dag::Diagnostic> DagRegistry::UndefinedPools(const dag::Dag& dag) const {
  if (!pools_) return {};
  return dag::CheckPools(dag, *pools_);
}

std::map<std::string, std::vector<std::string>> DagRegistry::PoolsInUse() const {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& [name, reg] : dags_) {
    for (const auto& task : reg.dag->tasks) {
      if (task.pool.empty()) continue;
      auto& names = out[task.pool];
      if (names.empty() || names.back() != name) names.push_back(name);
    }
  }
  return out;
}

const RegisteredDag* DagRegistry::Find(const std::string& name) const {
  auto it = dags_.find(name);
  return it == dags_.end() ? nullptr : &it->second;
}

Status DagRegistry::SetPaused(const std::string& name, bool paused) {
  if (!Find(name)) return Status::NotFound("DAG '" + name + "' not found");
  if (Status st = store_.SetDagPaused(name, paused); !st.ok()) return st;
  RefreshIfRolledBack(name);
  return Refresh(name);
}

Status DagRegistry::Delete(const std::string& name, bool purge) {
  auto entry = store_.GetDag(name);
  if (!entry.ok()) return entry.status();
  if (!*entry || ((*entry)->deleted && !purge)) return Status::NotFound("DAG '" + name + "' not found");
  // PurgeDag removes the log directories itself, after its outermost commit.
  if (Status st = purge ? store_.PurgeDag(name) : store_.SetDagDeleted(name); !st.ok()) return st;
  RefreshIfRolledBack(name);
  dags_.erase(name);
  return Status::Ok();
}

Status DagRegistry::SetLastFire(const std::string& name, SysSeconds fire) {
  if (Status st = store_.SetLastFire(name, fire); !st.ok()) return st;
  RefreshIfRolledBack(name);
  auto it = dags_.find(name);
  if (it != dags_.end()) it->second.entry.last_fire = fire;
  return Status::Ok();
}

}  // namespace batchd::scheduler
