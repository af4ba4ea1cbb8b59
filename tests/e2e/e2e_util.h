#pragma once
// Helpers for the end-to-end tests: they run the real binaries as child processes, in
// fresh temporary directories, and read the real SQLite file through the `sqlite3`
// command-line tool (the test binary links only batchd_common, not SQLite).
//
// Thread rules: none of this is thread-safe; each test uses it from its own thread.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace batchd::e2e {

using std::chrono::milliseconds;

// A directory under $TMPDIR (default /tmp) removed with everything in it on destruction,
// unless BATCHD_E2E_KEEP is set in the environment (to look at a failed test's files).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path() + "/" + name.
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& content);
// The file's content, or nullopt when it cannot be read (missing).
std::optional<std::string> ReadFile(const std::string& path);
bool Exists(const std::string& path);
// Trimmed integer content of a counter or pid file; nullopt when missing or not a number.
std::optional<long> ReadNumber(const std::string& path);

// How a finished child process ended, with everything it printed.
struct ProcResult {
  int exit_code = -1;       // -1 when killed by a signal
  int signal = 0;           // the signal that killed it, or 0
  bool timed_out = false;   // Wait gave up and SIGKILLed it
  std::string out;
  std::string err;
  std::string Describe() const;  // for assertion messages
};

// A child process started with stdin from /dev/null and stdout/stderr written to files
// (not pipes, so nothing has to drain them while the test polls). Killed with SIGKILL
// and reaped on destruction if still running.
class Process {
 public:
  // argv[0] is the program path; `env_extra` entries ("K=V") are added to the
  // inherited environment, replacing inherited variables of the same name.
  explicit Process(std::vector<std::string> argv, std::vector<std::string> env_extra = {});
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits until it exits; after `timeout` SIGKILLs it and reports timed_out.
  ProcResult Wait(milliseconds timeout);
  // Output written so far.
  std::string Stdout() const;
  std::string Stderr() const;
  bool Running();  // not yet exited (reaps it if it has)

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;  // wait status once reaped
  std::string out_path_, err_path_, dir_;
};

// Runs a program to completion (SIGKILL after `timeout`).
ProcResult RunProcess(const std::vector<std::string>& argv, milliseconds timeout = milliseconds(30000),
               const std::vector<std::string>& env_extra = {});

// Runs `sqlite3 -json DB SQL` and returns the rows (an empty array for no rows).
// Fails the current test (ADD_FAILURE) and returns an empty array on errors.
nlohmann::json Query(const std::string& db, const std::string& sql);
// The single value of a one-row one-column query, as text ("" when no row, "null" for NULL).
std::string QueryValue(const std::string& db, const std::string& sql);

// Like QueryValue, for polling: nullopt (and no test failure) when the database or its
// tables do not exist yet or the query fails. Never creates the database file.
std::optional<std::string> TryQueryValue(const std::string& db, const std::string& sql);

// Where an attempt's log file goes (docs/logs.md): under the run's directory of the data
// directory `data`, in the shard of its instance (instance id / 1000),
// <task>@<partition>.<attempt>.log. The instance is looked up in `data`/batchd.db.
std::string AttemptLogPath(const std::string& data, const std::string& run_id, const std::string& task,
                           const std::string& partition, int attempt);

// Polls `pred` every `interval` until it holds or `timeout` passes; returns its last value.
bool WaitFor(const std::function<bool()>& pred, milliseconds timeout, milliseconds interval = milliseconds(20));

// Whether a process with this pid exists and is not a zombie.
bool PidAlive(pid_t pid);

// Sanitizer builds (docs/testing.md) start and run batchd and batchctl several times
// slower: random kill windows that must leave room for work to happen first (a trigger
// acknowledged, an attempt started) are this many times wider there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr int kSlowdown = 5;
#else
inline constexpr int kSlowdown = 1;
#endif

// For tests that SIGKILL batchd at random moments: every task appends the line
// "$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT" to a ledger file before it exits, and every
// instance that runs has a key of its own. Checks the ledger against the attempts in `db`
// (SPEC 6): every execution has its attempt row (the row is committed before the spawn), no
// attempt number runs twice, every success ran, no instance succeeds twice, and nothing runs
// after its instance's success. Returns one message per violation (empty when there is none)
// and sets `keys_executed` to how many keys the ledger names.
std::vector<std::string> LedgerViolations(const std::string& ledger, const std::string& db, size_t* keys_executed);
// The rest of a DAG task (YAML, after its id and partitions) that keeps such a ledger in
// @TMP@/ledger: it sleeps 0-90 ms, appends its line, and fails one time in five, with 40
// retries 10 ms apart.
inline constexpr char kLedgerTaskBody[] = R"(    retry: {retries: 40, delay: 10ms, backoff: fixed}
    command: |
      r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
      sleep 0.0$(( r % 10 ))
      echo "$BATCHD_IDEMPOTENCY_KEY $BATCHD_ATTEMPT" >> @TMP@/ledger
      [ $(( r / 10 % 5 )) -ne 0 ] || exit 1
)";

}  // namespace batchd::e2e
