// LogFileReserve against the real file system (O_TMPFILE + linkat under the test's temp dir).

#include "executor/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

namespace batchd::executor {
namespace {

namespace fs = std::filesystem;

// Spares from the first open, whatever creating a file costs here.
constexpr std::chrono::microseconds kAlways{0};

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(int fd, const std::string& text) { ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size())); }

class LogFileReserveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batchd-logfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Waits until the reserve has `n` spares in `path`'s directory.
  static bool WaitForSpares(LogFileReserve& reserve, const std::string& path, int n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (reserve.SparesFor(path) >= n) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return false;
  }

  fs::path dir_;
};

TEST_F(LogFileReserveTest, FirstOpenCreatesTheFileAndAsksForSparesThere) {
  LogFileReserve reserve(2, kAlways);
  const std::string first = (dir_ / "a.1.log").string();
  int fd = reserve.Open(first);
  ASSERT_GE(fd, 3);
  Write(fd, "one\n");
  close(fd);
  EXPECT_EQ(ReadFile(first), "one\n");
  EXPECT_TRUE(WaitForSpares(reserve, (dir_ / "next.log").string(), 2));
  // Spares are unnamed: the directory holds only the file that was opened.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1);
}

TEST_F(LogFileReserveTest, NextOpenNamesASpareWithTheUsualModeAndAppends) {
  LogFileReserve reserve(1, kAlways);
  close(reserve.Open((dir_ / "a.1.log").string()));
  const std::string second = (dir_ / "a.2.log").string();
  ASSERT_TRUE(WaitForSpares(reserve, second, 1));
  int fd = reserve.Open(second);
  ASSERT_GE(fd, 3);
  EXPECT_EQ(reserve.SparesUsed(), 1);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_APPEND, 0);
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  Write(fd, "two\n");
  close(fd);
  EXPECT_EQ(ReadFile(second), "two\n");
  struct stat st {};
  ASSERT_EQ(stat(second.c_str(), &st), 0);
  const mode_t umask_now = umask(0);
  umask(umask_now);
  EXPECT_EQ(st.st_mode & 0777, 0640 & ~umask_now);
  EXPECT_EQ(st.st_nlink, 1u);
}

TEST_F(LogFileReserveTest, AnExistingFileIsAppendedToNotReplaced) {
  LogFileReserve reserve(1, kAlways);
  const std::string path = (dir_ / "a.1.log").string();
  std::ofstream(path) << "before\n";
  close(reserve.Open((dir_ / "other.log").string()));
  ASSERT_TRUE(WaitForSpares(reserve, path, 1));
  int fd = reserve.Open(path);
  ASSERT_GE(fd, 3);
  Write(fd, "after\n");
  close(fd);
  EXPECT_EQ(reserve.SparesUsed(), 0) << "the name was taken: the existing file was opened";
  EXPECT_EQ(ReadFile(path), "before\nafter\n");
}

TEST_F(LogFileReserveTest, SparesFollowTheDirectoryOfTheLastOpen) {
  LogFileReserve reserve(1, kAlways);
  fs::create_directory(dir_ / "run1");
  fs::create_directory(dir_ / "run2");
  close(reserve.Open((dir_ / "run1" / "t.1.log").string()));
  ASSERT_TRUE(WaitForSpares(reserve, (dir_ / "run1" / "x").string(), 1));
  // A file in another directory cannot use run1's spare; it is created. One such open
  // leaves the spares where they are (runs interleaving attempt by attempt would make
  // them churn); the second in a row moves them to run2.
  int fd = reserve.Open((dir_ / "run2" / "t.1.log").string());
  ASSERT_GE(fd, 3);
  close(fd);
  EXPECT_TRUE(fs::exists(dir_ / "run2" / "t.1.log"));
  EXPECT_EQ(reserve.SparesUsed(), 0);
  EXPECT_EQ(reserve.SparesFor((dir_ / "run1" / "x").string()), 1);
  close(reserve.Open((dir_ / "run1" / "t.2.log").string()));  // uses run1's spare
  EXPECT_EQ(reserve.SparesUsed(), 1);
  close(reserve.Open((dir_ / "run2" / "t.2.log").string()));
  ASSERT_TRUE(WaitForSpares(reserve, (dir_ / "run1" / "x").string(), 1));
  EXPECT_EQ(reserve.SparesFor((dir_ / "run2" / "x").string()), 0) << "run2 once in a row: the spares stay";
  close(reserve.Open((dir_ / "run2" / "t.3.log").string()));
  EXPECT_TRUE(WaitForSpares(reserve, (dir_ / "run2" / "x").string(), 1));
  EXPECT_EQ(reserve.SparesFor((dir_ / "run1" / "x").string()), 0);
  EXPECT_EQ(reserve.SparesUsed(), 1);
}

TEST_F(LogFileReserveTest, ErrorsAreThoseOfAPlainOpen) {
  LogFileReserve reserve(1, kAlways);
  errno = 0;
  EXPECT_EQ(reserve.Open((dir_ / "missing" / "a.log").string()), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(LogFileReserveTest, EmptyPathIsDevNullAndWithoutSparesEveryFileIsCreated) {
  LogFileReserve none(0);
  int fd = none.Open("");
  ASSERT_GE(fd, 3);
  Write(fd, "discarded");
  close(fd);
  const std::string path = (dir_ / "a.log").string();
  fd = none.Open(path);
  ASSERT_GE(fd, 3);
  close(fd);
  EXPECT_TRUE(fs::exists(path));
  EXPECT_EQ(none.SparesFor(path), 0);
}

TEST_F(LogFileReserveTest, SparesStartOnlyAfterThreeSlowCreations) {
  // Every creation takes longer than 1 us: the third switches spares on, in that directory.
  LogFileReserve reserve(1, std::chrono::microseconds(1));
  for (int i = 1; i <= 3; ++i) {
    EXPECT_FALSE(reserve.Active()) << i;
    const std::string path = (dir_ / ("a." + std::to_string(i) + ".log")).string();
    int fd = reserve.Open(path);
    ASSERT_GE(fd, 3);
    close(fd);
    EXPECT_TRUE(fs::exists(path));
  }
  EXPECT_TRUE(reserve.Active());
  const std::string next = (dir_ / "a.4.log").string();
  ASSERT_TRUE(WaitForSpares(reserve, next, 1));
  int fd = reserve.Open(next);
  ASSERT_GE(fd, 3);
  close(fd);
  EXPECT_EQ(reserve.SparesUsed(), 1);
  EXPECT_TRUE(fs::exists(next));
}

TEST_F(LogFileReserveTest, FastCreationsNeverStartSpares) {
  LogFileReserve reserve(2, std::chrono::seconds(10));
  for (int i = 1; i <= 10; ++i) {
    int fd = reserve.Open((dir_ / ("a." + std::to_string(i) + ".log")).string());
    ASSERT_GE(fd, 3);
    close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(reserve.Active());
  EXPECT_EQ(reserve.SparesFor((dir_ / "x.log").string()), 0);
  EXPECT_EQ(reserve.SparesUsed(), 0);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 10);
}

// --- Files made ahead -------------------------------------------------------------

ino_t InodeOf(const std::string& path) {
  struct stat st {};
  return stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

ino_t InodeOf(int fd) {
  struct stat st {};
  return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

TEST_F(LogFileReserveTest, OpenTakesTheFileMadeAheadWithItsModeAndFlags) {
  LogFileReserve reserve(0);
  const std::string path = (dir_ / "b@-.1.log").string();
  ASSERT_TRUE(reserve.CreateAhead(path));
  EXPECT_FALSE(reserve.CreateAhead(path)) << "made ahead once";
  EXPECT_EQ(reserve.AheadCount(), 1u);
  const ino_t made = InodeOf(path);
  ASSERT_NE(made, 0u) << "the file exists, empty, before the attempt starts";
  EXPECT_EQ(fs::file_size(path), 0u);

  int fd = reserve.Open(path);
  ASSERT_GE(fd, 3);
  EXPECT_EQ(InodeOf(fd), made);
  EXPECT_EQ(reserve.AheadCount(), 0u);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_APPEND, 0);
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  Write(fd, "b ran\n");
  close(fd);
  EXPECT_EQ(ReadFile(path), "b ran\n");
  const mode_t umask_now = umask(0);
  umask(umask_now);
  EXPECT_EQ(fs::status(path).permissions() & fs::perms::all, static_cast<fs::perms>(0640 & ~umask_now));

  // Taken: dropping it now must not remove the attempt's log.
  reserve.DropAhead(path);
  EXPECT_EQ(ReadFile(path), "b ran\n");
}

TEST_F(LogFileReserveTest, DropAheadRemovesTheFileItCreatedButNotOneThatWasThere) {
  LogFileReserve reserve(0);
  const std::string made = (dir_ / "c@-.1.log").string();
  const std::string existing = (dir_ / "d@-.1.log").string();
  std::ofstream(existing) << "left by an earlier process\n";
  ASSERT_TRUE(reserve.CreateAhead(made));
  ASSERT_TRUE(reserve.CreateAhead(existing));
  reserve.DropAhead(made);
  reserve.DropAhead(existing);
  reserve.DropAhead((dir_ / "never-made.log").string());  // ignored
  EXPECT_FALSE(fs::exists(made));
  EXPECT_EQ(ReadFile(existing), "left by an earlier process\n");
  EXPECT_EQ(reserve.AheadCount(), 0u);

  // An existing file made ahead is appended to when the attempt starts.
  ASSERT_TRUE(reserve.CreateAhead(existing));
  int fd = reserve.Open(existing);
  ASSERT_GE(fd, 3);
  Write(fd, "resumed\n");
  close(fd);
  EXPECT_EQ(ReadFile(existing), "left by an earlier process\nresumed\n");
}

TEST_F(LogFileReserveTest, UnusedFilesMadeAheadAreRemovedWithTheReserve) {
  const std::string unused = (dir_ / "e@-.1.log").string();
  const std::string used = (dir_ / "f@-.1.log").string();
  {
    LogFileReserve reserve(1, kAlways);
    ASSERT_TRUE(reserve.CreateAhead(unused));
    ASSERT_TRUE(reserve.CreateAhead(used));
    close(reserve.Open(used));
  }
  EXPECT_FALSE(fs::exists(unused));
  EXPECT_TRUE(fs::exists(used));
}

TEST_F(LogFileReserveTest, CreateAheadFailsQuietlyAndOpenReportsTheError) {
  LogFileReserve reserve(0);
  const std::string path = (dir_ / "missing-dir" / "g@-.1.log").string();
  EXPECT_FALSE(reserve.CreateAhead(path));
  EXPECT_FALSE(reserve.CreateAhead(""));
  EXPECT_EQ(reserve.AheadCount(), 0u);
  errno = 0;
  EXPECT_EQ(reserve.Open(path), -1);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace batchd::executor
