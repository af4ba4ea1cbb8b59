// End-to-end: values from outside (a dropped file's name, `batchctl trigger --param`)
// reach the task as exact bytes through every way a command can hold a placeholder, and
// never run as shell code. The real daemon, real `/bin/sh -c`, real files.

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

namespace fs = std::filesystem;

// Written like dags/backup.yaml: the file's path bare, in "...", in '...', and read from
// the environment. Each write ends with a NUL byte, which no path holds.
constexpr const char* kDropDag = R"(dag: drop
max_active_runs: 4
triggers:
  - file: @TMP@/in/*.csv
tasks:
  - id: record
    working_dir: @TMP@/work
    command: |
      printf '%s\0' {{ params.trigger_file }} >> @TMP@/seen_bare
      printf '%s\0' "{{ params.trigger_file }}" >> @TMP@/seen_double
      printf '%s\0' '{{ params.trigger_file }}' >> @TMP@/seen_single
      echo "requested by '{{ params.trigger_file }}'" >> @TMP@/seen_backup_style
      printf '%s\0' "$BATCHD_PARAM_TRIGGER_FILE" >> @TMP@/seen_env
)";

constexpr const char* kManualDag = R"yaml(dag: manual
params: {v: default}
tasks:
  - id: show
    working_dir: @TMP@/work
    command: |
      printf '%s' {{ params.v }} > @TMP@/manual_bare
      printf '%s' "v={{ params.v }}." > @TMP@/manual_double
      printf '%s' "$(printf '%s' '{{ params.v }}'; echo .)" > @TMP@/manual_subst
      printf '%s' "$BATCHD_PARAM_V" > @TMP@/manual_env
)yaml";

class TemplateInjectionE2eTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    fs::create_directories(tmp_ / "in");
    fs::create_directories(tmp_ / "work");
    options_.config_yaml = "scheduler_tick: 200ms\n";
  }

  // The NUL-terminated entries of a file, as a set.
  std::set<std::string> Entries(const std::string& name) {
    std::set<std::string> out;
    std::string text = ReadFile(tmp_ / name).value_or("");
    for (size_t pos = 0, nul; (nul = text.find('\0', pos)) != std::string::npos; pos = nul + 1) {
      out.insert(text.substr(pos, nul - pos));
    }
    return out;
  }
  // Nothing named `pwned` anywhere under the temp dir.
  void ExpectNothingRan() {
    for (const auto& e : fs::recursive_directory_iterator(tmp_.path())) {
      EXPECT_NE(e.path().filename().string(), "pwned") << e.path();
    }
  }

  DaemonOptions options_;
};

TEST_F(TemplateInjectionE2eTest, DroppedFileNamesReachTheTaskExactlyAndRunNothing) {
  WriteDag("drop.yaml", kDropDag, /*in_dags_dir=*/true);
  ASSERT_TRUE(StartDaemon(options_));
  const std::set<std::string> dropped = {
      tmp_ / "in/x$(touch pwned).csv",
      tmp_ / "in/it's a file.csv",
      tmp_ / "in/q\"`touch pwned`\\ ;touch pwned.csv",
  };
  for (const std::string& path : dropped) WriteFile(path, "row\n");

  const bool done = WaitFor(
      [&] { return Count("SELECT COUNT(*) FROM runs WHERE dag = 'drop' AND state IN ('success', 'failed')") == 3; },
      milliseconds(30000), milliseconds(50));
  ASSERT_TRUE(done) << Q("SELECT run_key, state FROM runs").dump() << "\n" << DaemonLog();
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs WHERE dag = 'drop' AND state = 'success'"), 3);

  EXPECT_EQ(Entries("seen_bare"), dropped);
  EXPECT_EQ(Entries("seen_double"), dropped);
  EXPECT_EQ(Entries("seen_single"), dropped);
  EXPECT_EQ(Entries("seen_env"), dropped);
  std::set<std::string> backup_style;
  for (const std::string& path : dropped) backup_style.insert("requested by '" + path + "'");
  std::set<std::string> lines;
  std::string text = ReadFile(tmp_ / "seen_backup_style").value_or("");
  for (size_t pos = 0, nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    lines.insert(text.substr(pos, nl - pos));
  }
  EXPECT_EQ(lines, backup_style);
  ExpectNothingRan();
}

TEST_F(TemplateInjectionE2eTest, TriggerParamsReachTheTaskExactlyAndRunNothing) {
  WriteDag("manual.yaml", kManualDag, /*in_dags_dir=*/true);
  ASSERT_TRUE(StartDaemon(options_));
  const std::string hostile = "$(touch pwned) `touch pwned` ';touch pwned;' \"x\" \\ it's\nend\\";
  const std::string run_id = Trigger("manual", {"--param", "v=" + hostile});
  ASSERT_FALSE(run_id.empty());
  ASSERT_TRUE(WaitRunState(run_id, "success"));

  EXPECT_EQ(ReadFile(tmp_ / "manual_bare").value_or("<missing>"), hostile);
  EXPECT_EQ(ReadFile(tmp_ / "manual_double").value_or("<missing>"), "v=" + hostile + ".");
  EXPECT_EQ(ReadFile(tmp_ / "manual_subst").value_or("<missing>"), hostile + ".");
  EXPECT_EQ(ReadFile(tmp_ / "manual_env").value_or("<missing>"), hostile);
  ExpectNothingRan();
}

}  // namespace
}  // namespace batchd::e2e
