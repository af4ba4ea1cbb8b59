// End-to-end: what start-up checks of the store. A daemon stopped cleanly is not scanned
// on its next start; one killed with SIGKILL is (PRAGMA quick_check, logged); `batchd
// check` runs the full check on demand, also while the daemon serves, and names damage.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kChecked = "passed its integrity check (quick_check, after an unclean shutdown)";

constexpr const char* kHello = R"(
dag: hello
tasks:
  - id: say
    command: echo hello
)";

class StoreStartupTest : public DaemonTest {
 protected:
  ProcResult Check(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BATCHD_BIN, "check"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunProcess(argv);
  }
};

TEST_F(StoreStartupTest, OnlyAnUncleanShutdownMakesTheNextStartCheckTheDatabase) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("hello.yaml", kHello);
  const std::string run_id = Trigger("hello");
  ASSERT_TRUE(WaitRunState(run_id, "success"));
  StopDaemon();
  EXPECT_EQ(ReadFile(data_ + "/batchd.lock"), "closed\n");

  ASSERT_TRUE(StartDaemon());
  EXPECT_THAT(DaemonLog(), Not(HasSubstr("integrity check")));
  EXPECT_EQ(ReadFile(data_ + "/batchd.lock"), std::to_string(daemon_pid()) + "\n");
  KillDaemon();

  ASSERT_TRUE(StartDaemon());
  EXPECT_THAT(DaemonLog(), HasSubstr("database " + data_ + "/batchd.db " + kChecked));
  // The run done before both restarts is still there.
  EXPECT_EQ(V("SELECT state FROM runs WHERE run_id = '" + run_id + "'"), "success");
}

TEST_F(StoreStartupTest, BatchdCheckSaysIntactWhileTheDaemonServesAndNamesDamageOtherwise) {
  ASSERT_TRUE(StartDaemon());
  SubmitDag("hello.yaml", kHello);
  for (int i = 0; i < 30; ++i) ASSERT_FALSE(Trigger("hello", {"--date", "2026-01-" + std::string(i < 9 ? "0" : "") +
                                                              std::to_string(i + 1)}).empty());
  ProcResult online = Check({"--data-dir", data_});
  EXPECT_EQ(online.exit_code, 0) << online.Describe();
  EXPECT_EQ(online.out, "batchd check: database '" + data_ + "/batchd.db' is intact\n");
  StopDaemon();

  // Garbage over a page in the middle of the file, header intact.
  const std::string db = data_ + "/batchd.db";
  const auto size = std::filesystem::file_size(db);
  ASSERT_GE(size, 16u * 1024u);
  {
    std::fstream f(db, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size / 2 / 1024 * 1024));
    std::string junk(1024, '\xA5');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  ProcResult damaged = Check({"--data-dir", data_});
  EXPECT_EQ(damaged.exit_code, 1) << damaged.Describe();
  EXPECT_THAT(damaged.err, HasSubstr("batchd check: database '" + db +
                                     "' is corrupt; restore it from a backup. Findings:\n  "));
  EXPECT_EQ(damaged.out, "");

  ProcResult missing = Check({"--data-dir", tmp_ / "nowhere"});
  EXPECT_EQ(missing.exit_code, 1) << missing.Describe();
  EXPECT_EQ(missing.err,
            "batchd check: cannot read database '" + tmp_ / "nowhere" + "/batchd.db': No such file or directory\n");

  // The config names the data directory, as for `batchd serve`.
  WriteFile(tmp_ / "check.yaml", "data_dir: " + tmp_ / "nowhere" + "\n");
  ProcResult by_config = Check({"--config", tmp_ / "check.yaml"});
  EXPECT_EQ(by_config.exit_code, 1) << by_config.Describe();
  EXPECT_EQ(by_config.err, missing.err);
}

}  // namespace
}  // namespace batchd::e2e
