#pragma once
// Fixture for end-to-end tests of the daemon: the real `batchd serve` on a fresh data
// directory, DAGs directory and control socket, driven through the real `batchctl`, with
// the real SQLite file read through the sqlite3 tool (e2e_util.h).
//
// Layout of one test:
//   tmp()/           TempDir: DAG files to submit, files the task commands write
//   tmp()/data/      the daemon's data directory (batchd.db, logs/, batchd.lock)
//   tmp()/dags/      the daemon's DAGs directory
//   /tmp/bdXXXXXX/s  the control socket (a short path: sun_path holds 107 bytes)
//
// A test may stop and restart the daemon (StopDaemon, KillDaemon, StartDaemon) on the same
// directories. TearDown stops a daemon still running with SIGTERM and expects exit 0.
//
// Every wait is a poll with a deadline. Thread rules: none; one test, one thread.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "e2e_util.h"

namespace batchd::e2e {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// `text` with every "@KEY@" replaced by its value.
std::string Substitute(std::string text, const std::map<std::string, std::string>& vars);

// Unix seconds as "2026-03-01T02:30:00+00:00" (UTC, the form batchd uses for UTC DAGs).
std::string IsoUtc(int64_t unix_seconds);
// Real time now, in Unix seconds with a fraction.
double RealNow();

// A reply read off a raw socket; status 0 when nothing parseable came back.
struct RawReply {
  int status = 0;
  std::string head;   // status line and headers
  std::string body;
  std::string error;  // what went wrong at the socket level, if anything
  Json JsonBody() const;  // parsed body, or null when it is not JSON
};

// Sends `request` (raw HTTP bytes) on a fresh connection and reads the reply until the
// server closes the connection or `timeout` passes. A server that replies and closes
// before the whole request was sent (413) is fine: the reply is still read.
RawReply RawUnixRequest(const std::string& socket_path, const std::string& request,
                        milliseconds timeout = milliseconds(10000));
RawReply RawTcpRequest(int port, const std::string& request, milliseconds timeout = milliseconds(10000));
// "METHOD target HTTP/1.1" with Host, Connection: close and, with a body, Content-Type
// application/json and Content-Length.
std::string HttpRequestText(const std::string& method, const std::string& target, const std::string& body = "");

// A connected Unix stream socket (-1 on failure); the caller closes it.
int ConnectUnix(const std::string& socket_path);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreeTcpPort();

struct DaemonOptions {
  // --clock-offset SECONDS, when set.
  std::optional<double> clock_offset;
  // Written to tmp()/batchd.yaml and passed as --config, when not empty. The fixture adds
  // nothing to it; a test that wants fast scheduler ticks says `scheduler_tick: 500ms`.
  std::string config_yaml;
  // --http; "" disables the TCP listener.
  std::string http;
  int workers = 4;
};

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Starts `batchd serve` and waits until `batchctl health` succeeds (the test fails, and
  // the daemon's stderr is shown, when it exits or does not answer within 20 s).
  // Returns whether it is up; ASSERT_TRUE(StartDaemon()) stops a test that needs it.
  bool StartDaemon(const DaemonOptions& options = {});
  // SIGTERM, then waits for the exit (SIGKILL after `timeout`). Expects exit code 0.
  ProcResult StopDaemon(milliseconds timeout = milliseconds(20000));
  // SIGKILL and reap: the daemon gets no chance to clean up.
  void KillDaemon();
  void SignalDaemon(int sig);
  bool DaemonRunning();
  pid_t daemon_pid() const;
  // What the current (or last) daemon wrote on stderr, for assertion messages.
  std::string DaemonLog() const;

  // batchctl --socket SOCKET ARGS...
  ProcResult Ctl(const std::vector<std::string>& args, milliseconds timeout = milliseconds(30000));
  // batchctl --socket SOCKET --json ARGS...; expects `expected_exit` and JSON on stdout
  // (null and a test failure otherwise). Keys keep the order batchctl printed them in.
  OrderedJson CtlJson(const std::vector<std::string>& args, int expected_exit = 0);

  // Writes a DAG file into the DAGs directory (`in_dags_dir`) or the temp dir; "@TMP@" in
  // `yaml` is the temp dir. Returns its path.
  std::string WriteDag(const std::string& file_name, const std::string& yaml, bool in_dags_dir = false);
  // Writes a DAG file into the temp dir and submits it; expects exit 0.
  void SubmitDag(const std::string& file_name, const std::string& yaml);
  // Triggers DAG (extra args such as --date) with --json; returns the run id ("" and a
  // test failure when it did not work).
  std::string Trigger(const std::string& dag, const std::vector<std::string>& extra = {});

  // SQL on the daemon's database.
  Json Q(const std::string& sql) { return Query(db_, sql); }
  std::string V(const std::string& sql) { return QueryValue(db_, sql); }
  long Count(const std::string& sql);  // SELECT COUNT(*) ...
  // A run's state in the store, "" when unknown.
  std::string RunState(const std::string& run_id);
  // Polls the store until the run is in `state`; false (and a message) on timeout.
  ::testing::AssertionResult WaitRunState(const std::string& run_id, const std::string& state,
                                          milliseconds timeout = milliseconds(20000));
  // Polls until an attempt of `task` in `run_id` is `running` in the store and `pid_file`
  // holds a live pid; returns that pid (0 on timeout, with a test failure).
  pid_t WaitRunningAttempt(const std::string& run_id, const std::string& task, const std::string& pid_file,
                           milliseconds timeout = milliseconds(15000));
  // Outcomes of the attempts of one instance, in attempt order.
  std::vector<std::string> AttemptOutcomes(const std::string& run_id, const std::string& task,
                                           const std::string& partition = "-");
  // Row counts of every table, plus the dags rows: equal fingerprints = nothing changed.
  std::string DbFingerprint();

  // Clock offset (seconds) that makes the daemon's clock read `lead` seconds before a minute
  // boundary; `boundary` gets that boundary in Unix seconds (daemon time).
  static double OffsetBeforeMinute(double lead, int64_t* boundary);

  const TempDir& tmp() const { return tmp_; }

  TempDir tmp_;
  std::string data_ = tmp_ / "data";
  std::string dags_ = tmp_ / "dags";
  std::string db_ = data_ + "/batchd.db";
  std::string sock_dir_;
  std::string socket_;
  std::string config_path_ = tmp_ / "batchd.yaml";
  std::unique_ptr<Process> daemon_;
  std::string last_daemon_log_;
};

}  // namespace batchd::e2e
