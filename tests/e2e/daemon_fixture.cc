#include "daemon_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>
#include <thread>

namespace batchd::e2e {

namespace {

namespace fs = std::filesystem;
using std::chrono::steady_clock;

// Sends `request` on `fd` while reading whatever the server answers, until the server
// closes the connection or the deadline passes. Reading while writing matters for an
// oversized body: the server may answer 413 and stop reading long before we are done.
RawReply Exchange(int fd, const std::string& request, milliseconds timeout) {
  RawReply reply;
  std::string in;
  size_t sent = 0;
  bool writing = true;
  auto deadline = steady_clock::now() + timeout;
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
    if (left <= 0) {
      reply.error = "timed out";
      break;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      char buf[65536];
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r > 0) {
        in.append(buf, static_cast<size_t>(r));
        continue;
      }
      if (r == 0) break;  // the server closed: the reply is complete
      if (errno == EAGAIN || errno == EINTR) continue;
      if (in.empty()) reply.error = std::string("recv: ") + std::strerror(errno);
      break;
    }
    if (writing && (p.revents & POLLOUT)) {
      ssize_t w = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (w > 0) {
        sent += static_cast<size_t>(w);
        if (sent == request.size()) writing = false;
      } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
        writing = false;  // EPIPE/ECONNRESET: the server gave up on our body; read its reply
      }
    }
  }
  ::close(fd);
  auto end_of_head = in.find("\r\n\r\n");
  if (end_of_head == std::string::npos) {
    if (reply.error.empty()) reply.error = "no complete reply: " + in.substr(0, 200);
    return reply;
  }
  reply.head = in.substr(0, end_of_head);
  reply.body = in.substr(end_of_head + 4);
  if (reply.head.rfind("HTTP/1.1 ", 0) == 0) reply.status = std::atoi(reply.head.c_str() + 9);
  // A chunked body would need decoding; the daemon sends Content-Length, so cut to it.
  std::string lower = reply.head;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (auto cl = lower.find("\r\ncontent-length:"); cl != std::string::npos) {
    size_t len = std::strtoul(lower.c_str() + cl + 17, nullptr, 10);
    if (reply.body.size() > len) reply.body.resize(len);
  }
  return reply;
}

}  // namespace

std::string Substitute(std::string text, const std::map<std::string, std::string>& vars) {
  for (const auto& [k, v] : vars) {
    const std::string pat = "@" + k + "@";
    for (size_t pos = text.find(pat); pos != std::string::npos; pos = text.find(pat, pos + v.size()))
      text.replace(pos, pat.size(), v);
  }
  return text;
}

std::string IsoUtc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S+00:00", &tm);
  return buf;
}

double RealNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Json RawReply::JsonBody() const {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  return j.is_discarded() ? Json() : j;
}

int ConnectUnix(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof addr.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

RawReply RawUnixRequest(const std::string& socket_path, const std::string& request, milliseconds timeout) {
  RawReply reply;
  int fd = ConnectUnix(socket_path);
  if (fd < 0) {
    reply.error = std::string("connect: ") + std::strerror(errno);
    return reply;
  }
  return Exchange(fd, request, timeout);
}

RawReply RawTcpRequest(int port, const std::string& request, milliseconds timeout) {
  RawReply reply;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    reply.error = std::string("connect: ") + std::strerror(errno);
    ::close(fd);
    return reply;
  }
  return Exchange(fd, request, timeout);
}

std::string HttpRequestText(const std::string& method, const std::string& target, const std::string& body) {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: batchd\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

int FreeTcpPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

// ---------------------------------------------------------------------------------

void DaemonTest::SetUp() {
  char tmpl[] = "/tmp/bdXXXXXX";
  if (::mkdtemp(tmpl) == nullptr) FAIL() << "mkdtemp /tmp/bdXXXXXX: " << std::strerror(errno);
  sock_dir_ = tmpl;
  socket_ = sock_dir_ + "/s";
  fs::create_directories(dags_);
}

void DaemonTest::TearDown() {
  if (daemon_ && daemon_->Running()) {
    ProcResult r = StopDaemon();
    (void)r;
  }
  daemon_.reset();
  std::error_code ec;
  if (!sock_dir_.empty()) fs::remove_all(sock_dir_, ec);
}

bool DaemonTest::StartDaemon(const DaemonOptions& options) {
  if (daemon_ && daemon_->Running()) {
    ADD_FAILURE() << "StartDaemon: a daemon is already running";
    return false;
  }
  std::vector<std::string> argv = {BATCHD_BIN, "serve",  "--data-dir", data_,    "--dags-dir", dags_,
                                   "--socket", socket_,  "--http",     options.http, "--workers",
                                   std::to_string(options.workers)};
  if (!options.config_yaml.empty()) {
    WriteFile(config_path_, options.config_yaml);
    argv.push_back("--config");
    argv.push_back(config_path_);
  }
  if (options.clock_offset) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.3f", *options.clock_offset);
    argv.push_back("--clock-offset");
    argv.push_back(buf);
  }
  daemon_ = std::make_unique<Process>(argv);
  last_daemon_log_.clear();  // DaemonLog() is this daemon's from now on
  ProcResult last;
  bool up = WaitFor(
      [&] {
        if (!daemon_->Running()) return true;  // gave up: it exited
        last = RunProcess({BATCHCTL_BIN, "--socket", socket_, "health"}, milliseconds(10000));
        return last.exit_code == 0;
      },
      milliseconds(20000), milliseconds(50));
  if (!up || !daemon_->Running()) {
    ProcResult r = daemon_->Wait(milliseconds(2000));
    last_daemon_log_ = r.err;
    ADD_FAILURE() << "batchd did not come up (last `batchctl health`: " << last.Describe() << ")\nbatchd: "
                  << r.Describe();
    return false;
  }
  return true;
}

ProcResult DaemonTest::StopDaemon(milliseconds timeout) {
  if (!daemon_) {
    ADD_FAILURE() << "StopDaemon: no daemon";
    return {};
  }
  daemon_->Signal(SIGTERM);
  ProcResult r = daemon_->Wait(timeout);
  last_daemon_log_ = r.err;
  EXPECT_EQ(r.exit_code, 0) << "batchd after SIGTERM: " << r.Describe();
  EXPECT_FALSE(r.timed_out) << "batchd did not exit within " << timeout.count() << " ms of SIGTERM";
  return r;
}

void DaemonTest::KillDaemon() {
  if (!daemon_) return;
  daemon_->Signal(SIGKILL);
  ProcResult r = daemon_->Wait(milliseconds(10000));
  last_daemon_log_ = r.err;
  EXPECT_EQ(r.signal, SIGKILL) << r.Describe();
}

void DaemonTest::SignalDaemon(int sig) {
  if (daemon_) daemon_->Signal(sig);
}

bool DaemonTest::DaemonRunning() { return daemon_ && daemon_->Running(); }

pid_t DaemonTest::daemon_pid() const { return daemon_ ? daemon_->pid() : -1; }

std::string DaemonTest::DaemonLog() const {
  if (daemon_ && !last_daemon_log_.empty()) return last_daemon_log_;
  return daemon_ ? daemon_->Stderr() : last_daemon_log_;
}

ProcResult DaemonTest::Ctl(const std::vector<std::string>& args, milliseconds timeout) {
  std::vector<std::string> argv = {BATCHCTL_BIN, "--socket", socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv, timeout);
}

OrderedJson DaemonTest::CtlJson(const std::vector<std::string>& args, int expected_exit) {
  std::vector<std::string> with_json = {"--json"};
  with_json.insert(with_json.end(), args.begin(), args.end());
  ProcResult r = Ctl(with_json);
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  EXPECT_EQ(r.exit_code, expected_exit) << "batchctl --json" << cmd << ": " << r.Describe();
  OrderedJson j = OrderedJson::parse(r.out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ADD_FAILURE() << "batchctl --json" << cmd << " printed no JSON: " << r.Describe();
    return OrderedJson();
  }
  return j;
}

std::string DaemonTest::WriteDag(const std::string& file_name, const std::string& yaml, bool in_dags_dir) {
  std::string path = (in_dags_dir ? dags_ : tmp_.path()) + "/" + file_name;
  WriteFile(path, Substitute(yaml, {{"TMP", tmp_.path()}}));
  return path;
}

void DaemonTest::SubmitDag(const std::string& file_name, const std::string& yaml) {
  std::string path = WriteDag(file_name, yaml);
  ProcResult r = Ctl({"submit", path});
  EXPECT_EQ(r.exit_code, 0) << "batchctl submit " << path << ": " << r.Describe();
}

std::string DaemonTest::Trigger(const std::string& dag, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"trigger", dag};
  args.insert(args.end(), extra.begin(), extra.end());
  OrderedJson j = CtlJson(args);
  if (!j.is_object() || !j.contains("run_id") || !j["run_id"].is_string()) {
    ADD_FAILURE() << "trigger " << dag << ": no run_id in " << j.dump();
    return "";
  }
  return j["run_id"].get<std::string>();
}

long DaemonTest::Count(const std::string& sql) {
  std::string v = V(sql);
  return v.empty() ? -1 : std::stol(v);
}

std::string DaemonTest::RunState(const std::string& run_id) {
  return TryQueryValue(db_, "SELECT state FROM runs WHERE run_id = '" + run_id + "'").value_or("");
}

::testing::AssertionResult DaemonTest::WaitRunState(const std::string& run_id, const std::string& state,
                                                    milliseconds timeout) {
  std::string last;
  if (WaitFor([&] { return (last = RunState(run_id)) == state; }, timeout, milliseconds(100)))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "run " << run_id << " is '" << last << "', not '" << state << "' after "
                                       << timeout.count() << " ms\n--- batchd stderr ---\n"
                                       << DaemonLog();
}

pid_t DaemonTest::WaitRunningAttempt(const std::string& run_id, const std::string& task, const std::string& pid_file,
                                     milliseconds timeout) {
  pid_t pid = 0;
  bool ok = WaitFor(
      [&] {
        auto n = ReadNumber(pid_file);
        if (!n || !PidAlive(static_cast<pid_t>(*n))) return false;
        auto running = TryQueryValue(
            db_, "SELECT COUNT(*) FROM attempts a JOIN task_instances i ON i.id = a.instance_id WHERE i.run_id = '" +
                     run_id + "' AND i.task = '" + task + "' AND a.outcome = 'running'");
        if (running != "1") return false;
        pid = static_cast<pid_t>(*n);
        return true;
      },
      timeout, milliseconds(50));
  if (!ok) {
    ADD_FAILURE() << "no running attempt of " << task << " in run " << run_id << " with a live pid in " << pid_file
                  << " after " << timeout.count() << " ms\n--- batchd stderr ---\n"
                  << DaemonLog();
    return 0;
  }
  return pid;
}

std::vector<std::string> DaemonTest::AttemptOutcomes(const std::string& run_id, const std::string& task,
                                                     const std::string& partition) {
  std::vector<std::string> out;
  for (const auto& row :
       Q("SELECT a.outcome FROM attempts a JOIN task_instances i ON i.id = a.instance_id WHERE i.run_id = '" + run_id +
         "' AND i.task = '" + task + "' AND i.partition = '" + partition + "' ORDER BY a.number"))
    out.push_back(row.at("outcome").get<std::string>());
  return out;
}

std::string DaemonTest::DbFingerprint() {
  return Q("SELECT (SELECT COUNT(*) FROM dags) AS dags, (SELECT COUNT(*) FROM dag_versions) AS versions, "
           "(SELECT COUNT(*) FROM runs) AS runs, (SELECT COUNT(*) FROM task_instances) AS instances, "
           "(SELECT COUNT(*) FROM attempts) AS attempts, (SELECT COUNT(*) FROM idempotency_keys) AS keys, "
           "(SELECT COUNT(*) FROM audit) AS audit, "
           "(SELECT group_concat(name || ':' || current_hash || ':' || paused || ':' || deleted, ',') FROM dags) "
           "AS dag_rows, (SELECT group_concat(run_id || ':' || state, ',') FROM runs) AS run_rows")
      .dump();
}

double DaemonTest::OffsetBeforeMinute(double lead, int64_t* boundary) {
  const double now = RealNow();
  // The first boundary at least `lead` seconds (plus a little) ahead of the real clock.
  int64_t b = static_cast<int64_t>(std::floor((now + lead + 0.5) / 60.0)) * 60 + 60;
  double offset = static_cast<double>(b) - lead - now;
  // Keep the offset small and positive: a minute earlier if that still works.
  while (offset >= 60.0) {
    offset -= 60.0;
    b -= 60;
  }
  *boundary = b;
  return offset;
}

}  // namespace batchd::e2e
