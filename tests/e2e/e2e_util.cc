#include "e2e_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

extern char** environ;

namespace batchd::e2e {
namespace {

namespace fs = std::filesystem;

std::string MakeTempDir(const char* prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    return "/nonexistent";
  }
  return std::string(buf.data());
}

std::string Slurp(const std::string& path) { return ReadFile(path).value_or(""); }

}  // namespace

TempDir::TempDir() : path_(MakeTempDir("batchd-e2e-")) {}

TempDir::~TempDir() {
  if (std::getenv("BATCHD_E2E_KEEP") != nullptr) {
    std::fprintf(stderr, "keeping %s\n", path_.c_str());
    return;
  }
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  if (!f) ADD_FAILURE() << "cannot write " << path;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

std::optional<long> ReadNumber(const std::string& path) {
  auto text = ReadFile(path);
  if (!text) return std::nullopt;
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(text->c_str(), &end, 10);
  if (end == text->c_str() || errno != 0) return std::nullopt;
  while (*end == ' ' || *end == '\n') ++end;
  if (*end != '\0') return std::nullopt;
  return v;
}

std::string ProcResult::Describe() const {
  std::ostringstream ss;
  ss << "exit_code=" << exit_code << " signal=" << signal << (timed_out ? " TIMED OUT" : "") << "\n--- stdout ---\n"
     << out << "--- stderr ---\n" << err << "--------------";
  return ss.str();
}

Process::Process(std::vector<std::string> argv, std::vector<std::string> env_extra) {
  dir_ = MakeTempDir("batchd-e2e-proc-");
  out_path_ = dir_ + "/stdout";
  err_path_ = dir_ + "/stderr";
  // Everything the child needs is prepared before fork: after it, only exec-safe calls.
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env_store;
  // env_extra replaces inherited variables of the same name: getenv() would find the
  // inherited one first (e.g. a BATCHD_SOCKET in the shell that runs the tests).
  auto overridden = [&](std::string_view entry) {
    const std::string_view name = entry.substr(0, entry.find('='));
    for (const auto& kv : env_extra)
      if (std::string_view(kv).substr(0, kv.find('=')) == name) return true;
    return false;
  };
  for (char** e = environ; e && *e; ++e)
    if (!overridden(*e)) env_store.emplace_back(*e);
  for (auto& kv : env_extra) env_store.push_back(kv);
  std::vector<char*> envp;
  for (auto& kv : env_store) envp.push_back(kv.data());
  envp.push_back(nullptr);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (in < 0 || out < 0 || err < 0) {
    ADD_FAILURE() << "cannot open stdio files in " << dir_;
    return;
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    // The test runner may block or ignore signals; the product must see the defaults.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGINT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    ::execve(args[0], args.data(), envp.data());
    const char msg[] = "exec failed\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(127);
  }
  if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
  ::close(in);
  ::close(out);
  ::close(err);
}

Process::~Process() {
  if (pid_ > 0 && !status_) {
    ::kill(pid_, SIGKILL);
    int st;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
  }
  std::error_code ec;
  fs::remove_all(dir_, ec);
}

void Process::Signal(int sig) {
  if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

bool Process::Running() {
  if (pid_ <= 0 || status_) return false;
  int st;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = st;
    return false;
  }
  return true;
}

ProcResult Process::Wait(milliseconds timeout) {
  ProcResult r;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // Poll with short sleeps: simpler than SIGCHLD plumbing and cheap at this scale.
  auto interval = milliseconds(2);
  while (Running()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
      status_ = st;
      r.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(interval);
    interval = std::min(interval * 2, milliseconds(20));
  }
  if (status_) {
    if (WIFEXITED(*status_)) r.exit_code = WEXITSTATUS(*status_);
    if (WIFSIGNALED(*status_)) r.signal = WTERMSIG(*status_);
  }
  r.out = Stdout();
  r.err = Stderr();
  return r;
}

std::string Process::Stdout() const { return Slurp(out_path_); }
std::string Process::Stderr() const { return Slurp(err_path_); }

ProcResult RunProcess(const std::vector<std::string>& argv, milliseconds timeout, const std::vector<std::string>& env_extra) {
  Process p(argv, env_extra);
  return p.Wait(timeout);
}

nlohmann::json Query(const std::string& db, const std::string& sql) {
  if (!Exists(db)) {  // sqlite3 would create an empty database there
    ADD_FAILURE() << "no database at " << db << " (query: " << sql << ")";
    return nlohmann::json::array();
  }
  // .timeout: the daemon may hold the write lock for a moment; readers of a WAL database
  // rarely need it, but a checkpoint can briefly get in the way.
  ProcResult r = RunProcess({"/usr/bin/sqlite3", "-cmd", ".timeout 5000", "-json", db, sql}, milliseconds(20000));
  if (r.exit_code != 0) {
    ADD_FAILURE() << "sqlite3 " << db << " \"" << sql << "\" failed: " << r.Describe();
    return nlohmann::json::array();
  }
  if (r.out.find_first_not_of(" \n") == std::string::npos) return nlohmann::json::array();
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "sqlite3 printed invalid JSON for \"" << sql << "\": " << e.what() << "\n" << r.out;
    return nlohmann::json::array();
  }
}

std::string QueryValue(const std::string& db, const std::string& sql) {
  nlohmann::json rows = Query(db, sql);
  if (rows.empty()) return "";
  const auto& row = rows.at(0);
  if (row.empty()) return "";
  const auto& v = row.begin().value();
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

std::string AttemptLogPath(const std::string& data, const std::string& run_id, const std::string& task,
                           const std::string& partition, int attempt) {
  const std::string id = QueryValue(data + "/batchd.db", "SELECT id FROM task_instances WHERE run_id = '" + run_id +
                                                             "' AND task = '" + task + "' AND partition = '" +
                                                             partition + "'");
  EXPECT_FALSE(id.empty()) << "no instance " << task << "[" << partition << "] in run " << run_id;
  const std::string shard = id.empty() ? "?" : std::to_string(std::stoll(id) / 1000);
  // The partition as docs/store-schema.md says file names spell it: bytes outside
  // [A-Za-z0-9_-] (a '.' only in first position) as %XX, an empty name as "_".
  std::string file_partition;
  for (unsigned char c : partition) {
    if (std::isalnum(c) || c == '_' || c == '-' || (c == '.' && !file_partition.empty())) {
      file_partition.push_back(static_cast<char>(c));
    } else {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      file_partition += buf;
    }
  }
  if (file_partition.empty()) file_partition = "_";
  return data + "/logs/" + run_id + "/" + shard + "/" + task + "@" + file_partition + "." + std::to_string(attempt) +
         ".log";
}

std::optional<std::string> TryQueryValue(const std::string& db, const std::string& sql) {
  if (!Exists(db)) return std::nullopt;  // sqlite3 would create an empty one
  ProcResult r = RunProcess({"/usr/bin/sqlite3", "-cmd", ".timeout 5000", "-json", db, sql}, milliseconds(20000));
  if (r.exit_code != 0) return std::nullopt;
  try {
    nlohmann::json rows = nlohmann::json::parse(r.out.find_first_not_of(" \n") == std::string::npos ? "[]" : r.out);
    if (rows.empty() || rows[0].empty()) return std::string();
    const auto& v = rows[0].begin().value();
    return v.is_string() ? v.get<std::string>() : v.dump();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

bool WaitFor(const std::function<bool()>& pred, milliseconds timeout, milliseconds interval) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(interval);
  }
}

bool PidAlive(pid_t pid) {
  if (pid <= 0) return false;
  if (::kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie (killed, not yet reaped by whoever inherited it) is dead for our purposes.
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return false;
  auto close_paren = stat->rfind(')');
  if (close_paren == std::string::npos || close_paren + 2 >= stat->size()) return true;
  char state = (*stat)[close_paren + 2];
  return state != 'Z' && state != 'X';
}

std::vector<std::string> LedgerViolations(const std::string& ledger, const std::string& db, size_t* keys_executed) {
  std::vector<std::string> violations;
  // The ledger names instances by key: instances sharing one would look like one instance.
  for (const auto& row : Query(db, "SELECT idempotency_key AS key, COUNT(*) AS n FROM task_instances "
                                   "WHERE attempts > 0 GROUP BY idempotency_key HAVING COUNT(*) > 1"))
    violations.push_back(row["key"].get<std::string>() + ": key of " + std::to_string(row["n"].get<int>()) +
                         " instances that ran; the ledger cannot tell them apart");

  std::map<std::string, std::set<int>> executed;  // key -> attempt numbers that ran
  std::istringstream lines(ReadFile(ledger).value_or(""));
  for (std::string line; std::getline(lines, line);) {
    const size_t space = line.rfind(' ');
    int number = 0;
    const char* end = line.data() + line.size();
    auto [parsed_to, error] = std::from_chars(line.data() + (space == std::string::npos ? 0 : space + 1), end, number);
    if (space == std::string::npos || space == 0 || error != std::errc() || parsed_to != end) {
      violations.push_back("malformed ledger line '" + line + "'");
      continue;
    }
    const std::string key = line.substr(0, space);
    if (!executed[key].insert(number).second) violations.push_back(key + ": attempt " + std::to_string(number) + " ran twice");
  }
  std::map<std::string, std::map<int, std::string>> recorded;  // key -> number -> outcome
  for (const auto& row : Query(db, "SELECT i.idempotency_key AS key, a.number, a.outcome FROM attempts a "
                                   "JOIN task_instances i ON i.id = a.instance_id"))
    recorded[row["key"].get<std::string>()][row["number"].get<int>()] = row["outcome"].get<std::string>();

  std::map<std::string, int> first_success;  // key -> the lowest attempt number that succeeded
  for (const auto& [key, attempts] : recorded) {
    std::vector<int> successes;
    for (const auto& [number, outcome] : attempts)
      if (outcome == "success") successes.push_back(number);
    if (successes.empty()) continue;
    first_success[key] = successes[0];
    if (successes.size() > 1) violations.push_back(key + ": " + std::to_string(successes.size()) + " successes");
    auto ran = executed.find(key);
    for (int number : successes)
      if (ran == executed.end() || !ran->second.count(number))
        violations.push_back(key + ": attempt " + std::to_string(number) + " succeeded without running");
  }
  for (const auto& [key, numbers] : executed) {
    auto rows = recorded.find(key);
    auto success = first_success.find(key);
    for (int number : numbers) {
      const std::string attempt = key + ": attempt " + std::to_string(number);
      if (rows == recorded.end() || !rows->second.count(number)) violations.push_back(attempt + " ran without an attempt row");
      if (success != first_success.end() && number > success->second)
        violations.push_back(attempt + " ran after attempt " + std::to_string(success->second) + " succeeded");
    }
  }
  *keys_executed = executed.size();
  return violations;
}

}  // namespace batchd::e2e
