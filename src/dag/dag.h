#pragma once
// The DAG model: an immutable description of a workflow, as loaded from one YAML file
// (see docs/dag-format.md). A loaded Dag never changes; each run gets its own plan.
// Cheap to share as std::shared_ptr<const Dag> between threads.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.h"
#include "common/time.h"

namespace batchd::dag {

// Where something was written in the source file (1-based), for error messages.
struct SourceLocation {
  int line = 0;
  int column = 0;
};

// A name of a DAG, task, partition, pool or param: [A-Za-z0-9_.-]{1,128}, and not "." or
// ".." (names end up in file paths under the data directory).
inline constexpr size_t kMaxNameLength = 128;
bool IsValidName(std::string_view name);

enum class Backoff { kFixed, kExponential };
const char* BackoffName(Backoff backoff);  // "fixed" / "exponential"

struct RetryPolicy {
  int retries = 0;                   // extra attempts after the first; 0 = none
  Millis delay = std::chrono::seconds(10);
  Backoff backoff = Backoff::kExponential;
  double factor = 2.0;               // exponential growth per retry
  Millis max_delay = std::chrono::minutes(10);
  bool jitter = false;               // draw uniformly from [delay/2, delay]
  std::vector<int> retry_on_exit_codes;  // empty: any failure retries
};

enum class TriggerRule { kAllSuccess, kAllDone, kOneSuccess, kOneFailed, kNoneFailed, kAllFailed };
const char* TriggerRuleName(TriggerRule rule);
// Parses "all_success", ...; nullopt for anything else.
std::optional<TriggerRule> ParseTriggerRule(std::string_view name);

struct Partitions {
  enum class Kind { kNone, kValues, kRange, kCommand };
  Kind kind = Kind::kNone;           // kNone: one partition named "-"
  std::vector<std::string> values;   // kValues
  int64_t range_begin = 0;           // kRange: [begin, end)
  int64_t range_end = 0;
  std::string command;               // kCommand: one partition per non-empty output line
};

// Most partitions one task may have (a range or values list; also a sane cap for the
// output of a partitions command). Memory bounds a run more than this cap does: an active
// run holds every instance in memory (docs/performance.md has the cost per instance).
inline constexpr int64_t kMaxPartitions = 1'000'000;

// The partition names of a static set: {"-"} for kNone, the values, or the decimal
// numbers of the range. REQUIRES: kind != kCommand (those are known only at run time).
std::vector<std::string> StaticPartitionNames(const Partitions& partitions);

struct Dependency {
  std::string task;
  bool same_partition = false;       // `partitions: same`: task[p] waits only for upstream[p]
  SourceLocation location;
};

struct Task {
  std::string id;
  std::string description;
  std::string command;               // template; run with /bin/sh -c
  std::vector<Dependency> depends_on;
  TriggerRule trigger_rule = TriggerRule::kAllSuccess;
  Partitions partitions;
  std::string working_dir;           // empty: the daemon's working directory
  std::string pool;                  // empty: no pool
  SourceLocation pool_location;      // of the `pool:` value (the task's, else defaults')
  int priority = 0;                  // higher first when slots are scarce
  std::optional<Millis> timeout;     // per attempt; nullopt: none
  Millis kill_grace = std::chrono::seconds(10);  // SIGTERM -> SIGKILL
  RetryPolicy retry;
  std::map<std::string, std::string> env;        // task-level env, over the DAG's
  // Template of the idempotency key.
  std::string idempotency_key = "{{ dag }}/{{ task }}/{{ partition }}/{{ logical_date }}";
  SourceLocation location;
};

struct Slo {
  std::optional<Millis> max_duration;
  std::optional<Millis> freshness;
};

struct Trigger {
  enum class Kind { kAfterDag, kFile };
  Kind kind = Kind::kAfterDag;
  std::string value;                 // the upstream DAG name, or the glob
  SourceLocation location;
};

struct Dag {
  std::string name;
  std::string description;
  std::optional<std::string> schedule;  // cron text, validated; nullopt: manual only
  std::string timezone = "UTC";
  std::optional<SysSeconds> start_date;
  std::optional<SysSeconds> end_date;
  bool catchup = false;
  int max_active_runs = 1;
  int max_active_tasks = 16;
  bool paused = false;
  std::map<std::string, std::string> params;
  std::map<std::string, std::string> env;
  Slo slo;
  std::vector<Trigger> triggers;
  std::vector<Task> tasks;           // in file order

  std::string source_path;           // as given to the loader
  std::string source;                // the file's text
  std::string content_hash;          // hex SHA-256 of `source`: the DAG version

  const Task* FindTask(const std::string& id) const;
};

using DagPtr = std::shared_ptr<const Dag>;

}  // namespace batchd::dag
