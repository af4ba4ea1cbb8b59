// End-to-end tests of the executor's resource bounds through the real daemon: the size cap
// of attempt logs (config `attempt_log_max_bytes`, docs/logs.md) as `batchctl logs` shows
// it, log offsets past 2^31, and partitions commands killed with their cancelled run.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using std::chrono::steady_clock;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Bytes `seq 1 n` prints.
uint64_t SeqBytes(int n) {
  uint64_t bytes = 0;
  for (int i = 1; i <= n; ++i) bytes += std::to_string(i).size() + 1;
  return bytes;
}

class ExecutorBoundsTest : public DaemonTest {};

TEST_F(ExecutorBoundsTest, ChattyTaskLogIsCappedAndLogsShowsHeadTailAndTheMarker) {
  DaemonOptions options;
  options.config_yaml = "attempt_log_max_bytes: 64KiB\n";
  ASSERT_TRUE(StartDaemon(options));
  SubmitDag("chatty.yaml", R"(dag: chatty
tasks:
  - id: talk
    command: seq 1 200000
)");
  const std::string run_id = Trigger("chatty", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  ASSERT_TRUE(WaitRunState(run_id, "success"));

  ProcResult logs = Ctl({"logs", run_id, "talk"});
  ASSERT_EQ(logs.exit_code, 0) << logs.Describe();
  const uint64_t dropped = SeqBytes(200000) - 64 * 1024;
  EXPECT_THAT(logs.out, StartsWith("1\n2\n3\n"));
  EXPECT_THAT(logs.out, HasSubstr(" bytes dropped here]\n"));
  EXPECT_THAT(logs.out, EndsWith("\n199999\n200000\n[batchd: output truncated at 64 KiB; " + std::to_string(dropped) +
                                 " bytes dropped]\n"));
  EXPECT_LE(logs.out.size(), 64u * 1024 + 120);

  const std::string log_path = V("SELECT log_path FROM attempts a JOIN task_instances i ON a.instance_id = i.id "
                                 "WHERE i.run_id = '" + run_id + "'");
  ASSERT_FALSE(log_path.empty());
  EXPECT_EQ(std::filesystem::file_size(log_path), logs.out.size());
}

TEST_F(ExecutorBoundsTest, LogsAcceptOffsetsPastTwoGiB) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("small.yaml", R"(dag: small
tasks:
  - id: hello
    command: echo hello
)");
  const std::string run_id = Trigger("small", {"--date", "2026-03-01"});
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  RawReply reply = RawUnixRequest(
      socket_, HttpRequestText("GET", "/v1/runs/" + run_id + "/logs?task=hello&offset=3000000000"));
  EXPECT_EQ(reply.status, 200) << reply.head << reply.body;
  EXPECT_EQ(reply.body, "");
  EXPECT_THAT(reply.head, HasSubstr("X-Batchd-Next-Offset: 3000000000"));

  reply = RawUnixRequest(socket_, HttpRequestText("GET", "/v1/runs/" + run_id + "/logs?task=hello&offset=-1"));
  EXPECT_EQ(reply.status, 400);
  EXPECT_THAT(reply.body, HasSubstr("offset must be an integer between 0 and 9223372036854775807, got '-1'"));
}

TEST_F(ExecutorBoundsTest, CancelOfARunWhosePartitionsCommandRunsKillsTheCommand) {
  ASSERT_TRUE(StartDaemon());
  // While @TMP@/slow exists the partitions command hangs; the next run's returns at once.
  SubmitDag("parts.yaml", R"(dag: parts
max_active_runs: 1
tasks:
  - id: each
    partitions: {command: "if test -f @TMP@/slow; then echo $$ > @TMP@/pcmd.pid; sleep 100; fi; echo a"}
    command: "true"
)");
  const std::string slow_flag = tmp_ / "slow";
  FILE* flag = std::fopen(slow_flag.c_str(), "w");
  ASSERT_NE(flag, nullptr) << slow_flag;
  std::fclose(flag);
  const std::string run_id = Trigger("parts", {"--date", "2026-03-01"});
  ASSERT_FALSE(run_id.empty());
  pid_t pid = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        FILE* f = std::fopen((tmp_ / "pcmd.pid").c_str(), "r");
        if (f == nullptr) return false;
        if (std::fscanf(f, "%d", &pid) != 1) pid = 0;
        std::fclose(f);
        return pid > 0 && PidAlive(pid);
      },
      milliseconds(15000)))
      << "the partitions command did not start";
  std::remove(slow_flag.c_str());

  auto t0 = steady_clock::now();
  ProcResult cancel = Ctl({"cancel", run_id});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.Describe();
  EXPECT_EQ(RunState(run_id), "cancelled");
  EXPECT_TRUE(WaitFor([&] { return !PidAlive(pid); }, milliseconds(5000)))
      << "the partitions command " << pid << " still runs after cancel";
  EXPECT_LT(steady_clock::now() - t0, seconds(5));

  // The cancelled run no longer holds the DAG's only slot: the next run starts and ends.
  const std::string next = Trigger("parts", {"--date", "2026-03-02"});
  ASSERT_FALSE(next.empty());
  EXPECT_TRUE(WaitRunState(next, "success", milliseconds(10000))) << DaemonLog();
  EXPECT_EQ(RunState(run_id), "cancelled");
}

}  // namespace
}  // namespace batchd::e2e
