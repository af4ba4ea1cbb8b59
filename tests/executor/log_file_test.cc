// OpenLogFile against the real file system.

#include "executor/log_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace batchd::executor {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void Write(int fd, const std::string& text) { ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size())); }

class OpenLogFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/batchd-logfile-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(OpenLogFileTest, CreatesTheFileForAppendingWithMode0640) {
  const std::string path = (dir_ / "a.1.log").string();
  int fd = OpenLogFile(path);
  ASSERT_GE(fd, 3);
  EXPECT_NE(fcntl(fd, F_GETFL) & O_APPEND, 0);
  EXPECT_NE(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
  Write(fd, "one\n");
  close(fd);
  EXPECT_EQ(ReadFile(path), "one\n");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  const mode_t umask_now = umask(0);
  umask(umask_now);
  EXPECT_EQ(st.st_mode & 0777, 0640 & ~umask_now);
}

TEST_F(OpenLogFileTest, AnExistingFileIsAppendedToNotReplaced) {
  const std::string path = (dir_ / "a.1.log").string();
  std::ofstream(path) << "before\n";
  int fd = OpenLogFile(path);
  ASSERT_GE(fd, 3);
  Write(fd, "after\n");
  close(fd);
  EXPECT_EQ(ReadFile(path), "before\nafter\n");
}

TEST_F(OpenLogFileTest, ErrorsAreThoseOfOpen) {
  errno = 0;
  EXPECT_EQ(OpenLogFile((dir_ / "missing" / "a.log").string()), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(OpenLogFileTest, EmptyPathIsDevNull) {
  int fd = OpenLogFile("");
  ASSERT_GE(fd, 3);
  Write(fd, "discarded");
  close(fd);
  EXPECT_TRUE(fs::is_empty(dir_));
}

TEST_F(OpenLogFileTest, NeverReturnsAStandardStream) {
  // With stdin closed, open() would return 0; the child's stdin must not be its log.
  const int saved = dup(0);
  ASSERT_GE(saved, 0);
  close(0);
  int fd = OpenLogFile((dir_ / "a.log").string());
  dup2(saved, 0);
  close(saved);
  EXPECT_GE(fd, 3);
  if (fd >= 0) close(fd);
}

}  // namespace
}  // namespace batchd::executor
