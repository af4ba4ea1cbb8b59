#pragma once
// Helpers shared by the store tests: a temporary data directory, record builders with
// every field set to something distinctive, and file utilities for damaging databases.
// Not thread-safe; each test uses them from its own thread.

#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "store/sqlite.h"
#include "store/store.h"

namespace batchd::store::testing {

using std::chrono::milliseconds;
using std::chrono::seconds;

// A fresh directory under $TMPDIR (default /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/batchd-store-test-XXXXXX";
    char* made = ::mkdtemp(tmpl.data());
    if (!made) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline SysMillis AtMs(int64_t ms) { return SysMillis(milliseconds(ms)); }
inline SysSeconds AtSecs(int64_t s) { return SysSeconds(seconds(s)); }

// A run with every field set, created at `created_ms`.
inline RunRecord MakeRun(const std::string& run_id, const std::string& dag, const std::string& key,
                         int64_t created_ms = 1'700'000'000'000, RunState state = RunState::kQueued) {
  RunRecord r;
  r.run_id = run_id;
  r.dag = dag;
  r.dag_hash = "hash-" + dag;
  r.run_key = key;
  r.trigger = "manual";
  r.state = state;
  r.logical_date = AtSecs(1'700'000'000);
  r.interval_start = AtSecs(1'699'913'600);
  r.interval_end = AtSecs(1'700'000'000);
  r.params_json = R"({"region":"eu"})";
  r.force = false;
  r.created_at = AtMs(created_ms);
  return r;
}

inline InstanceRecord MakeInstance(const std::string& run_id, const std::string& task,
                                   const std::string& partition = "-",
                                   InstanceState state = InstanceState::kPending) {
  InstanceRecord i;
  i.run_id = run_id;
  i.task = task;
  i.partition = partition;
  i.state = state;
  i.idempotency_key = run_id + "/" + task + "/" + partition;
  return i;
}

inline AttemptRecord MakeAttempt(int64_t instance_id, int number, int64_t started_ms = 1'700'000'001'000) {
  AttemptRecord a;
  a.instance_id = instance_id;
  a.number = number;
  a.outcome = AttemptOutcome::kRunning;
  a.pid = 4242;
  a.started_at = AtMs(started_ms);
  a.log_path = "/logs/" + std::to_string(instance_id) + "." + std::to_string(number) + ".log";
  return a;
}

inline void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good()) << path;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a query with one integer result through a separate SQLite connection (what an
// operator's sqlite3 shell would see), or -1 on error.
inline int64_t QueryInt(const std::string& db_path, const std::string& sql) {
  auto db = Database::Open(db_path);
  if (!db.ok()) return -1;
  auto s = (*db)->Prepare(sql);
  if (!s.ok()) return -1;
  auto row = (*s)->Step();
  if (!row.ok() || !*row) return -1;
  int64_t v = (*s)->Int(0);
  (*s)->Reset();
  return v;
}

inline Status ExecSql(const std::string& db_path, const std::string& sql) {
  auto db = Database::Open(db_path);
  if (!db.ok()) return db.status();
  return (*db)->Exec(sql);
}

// Opens the store or fails the test.
inline std::unique_ptr<Store> OpenOrDie(const std::string& dir) {
  auto s = Store::Open(dir);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return s.ok() ? std::move(*s) : nullptr;
}

}  // namespace batchd::store::testing
