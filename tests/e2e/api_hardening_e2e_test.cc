// End-to-end tests of the control API's resource bounds and access rules: the connection
// limit, read/idle/write timeouts, running out of descriptors, what may sit at the socket
// path, batchctl's choice of socket, the mutation allow-list, and the environment tasks get.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "daemon_fixture.h"

namespace batchd::e2e {
namespace {

using std::chrono::steady_clock;
using ::testing::HasSubstr;

// Closes the descriptors it holds on destruction.
struct Fds {
  std::vector<int> fds;
  ~Fds() { CloseAll(); }
  void CloseAll() {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
    fds.clear();
  }
};

bool SendAll(int fd, const std::string& text) {
  return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// Whether the server has closed `fd`: reads (and discards) whatever it sent, waiting up to
// `timeout` for the end of the stream or a reset.
bool ClosedByServer(int fd, milliseconds timeout) {
  auto deadline = steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()).count();
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<long>(left, 0))) <= 0) {
      if (left <= 0) return false;
      continue;
    }
    char buf[65536];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return true;  // ECONNRESET
  }
}

// Reads one reply with a Content-Length body off a kept-alive connection.
std::string ReadOneReply(int fd, milliseconds timeout) {
  std::string in;
  auto deadline = steady_clock::now() + timeout;
  while (steady_clock::now() < deadline) {
    auto head_end = in.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      auto cl = in.find("Content-Length: ");
      if (cl != std::string::npos && in.size() >= head_end + 4 + std::stoul(in.substr(cl + 16))) return in;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    in.append(buf, static_cast<size_t>(n));
  }
  return in;
}

// utime + stime of a process, in clock ticks.
long CpuTicks(pid_t pid) {
  auto stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return -1;
  // Fields after the command name (which may hold spaces) start after the last ')'.
  std::istringstream in(stat->substr(stat->rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; in >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) {
      stime = std::stol(field);
      break;
    }
  }
  return utime + stime;
}

size_t Occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) ++n;
  return n;
}

// The last line of `text` (what batchd printed last before exiting), without its newline.
std::string LastLine(std::string text) {
  while (!text.empty() && text.back() == '\n') text.pop_back();
  return text.substr(text.rfind('\n') + 1);
}

// The names in an `env` dump.
std::set<std::string> EnvNames(const std::string& dump) {
  std::set<std::string> names;
  std::istringstream in(dump);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos && eq > 0) names.insert(line.substr(0, eq));
  }
  return names;
}

class ApiHardeningTest : public DaemonTest {
 protected:
  // Starts batchd like StartDaemon, with `env` added to its environment and argv prefixed
  // by `wrapper` (e.g. a shell that lowers a limit, then execs batchd).
  bool StartDaemonWith(const std::string& config_yaml, const std::vector<std::string>& env,
                       const std::string& shell_prefix = "") {
    std::vector<std::string> argv = {BATCHD_BIN, "serve", "--data-dir", data_, "--dags-dir", dags_,
                                     "--socket", socket_, "--http", "",     "--workers",  "2"};
    if (!config_yaml.empty()) {
      WriteFile(config_path_, config_yaml);
      argv.push_back("--config");
      argv.push_back(config_path_);
    }
    if (!shell_prefix.empty()) {
      std::string line = shell_prefix + "; exec";
      for (const auto& a : argv) line += " '" + a + "'";
      argv = {"/bin/sh", "-c", line};
    }
    daemon_ = std::make_unique<Process>(argv, env);
    bool up = WaitFor(
        [&] {
          if (!daemon_->Running()) return true;
          return RunProcess({BATCHCTL_BIN, "--socket", socket_, "health"}, milliseconds(10000)).exit_code == 0;
        },
        milliseconds(20000), milliseconds(50));
    if (!up || !daemon_->Running()) {
      ADD_FAILURE() << "batchd did not come up: " << daemon_->Wait(milliseconds(2000)).Describe();
      return false;
    }
    return true;
  }

  // `batchctl ARGS...` run as uid/gid 65534 (nobody) without supplementary groups.
  ProcResult CtlAsNobody(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     BATCHCTL_BIN, "--socket", socket_};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv);
  }

  // `batchctl ARGS...` started in `dir` without $BATCHD_SOCKET and without --socket.
  static ProcResult CtlIn(const std::string& dir, const std::string& args) {
    return RunProcess({"/bin/sh", "-c", "cd '" + dir + "' && exec env -u BATCHD_SOCKET '" + BATCHCTL_BIN + "' " + args});
  }
};

// --- Connection limit -------------------------------------------------------------------

TEST_F(ApiHardeningTest, IdleConnectionsBeyondTheLimitMakeRoomAndBusyOnesGetA503) {
  ASSERT_TRUE(StartDaemon());
  // 300 connections that send nothing: the default limit is 256 per listener, and each
  // one beyond it closes the connection that has been waiting longest.
  Fds idle;
  for (int i = 0; i < 300; ++i) {
    idle.fds.push_back(ConnectUnix(socket_));
    ASSERT_GE(idle.fds.back(), 0) << "connect " << i << ": " << std::strerror(errno);
  }
  auto t0 = steady_clock::now();
  ProcResult health = Ctl({"health"});
  EXPECT_EQ(health.exit_code, 0) << health.Describe();
  EXPECT_LT(steady_clock::now() - t0, seconds(3));
  // The oldest made room: the first 44 for the other idle ones, one more for batchctl.
  for (int i = 0; i < 45; ++i) EXPECT_TRUE(ClosedByServer(idle.fds[i], milliseconds(2000))) << "connection " << i;
  for (int i = 45; i < 300; ++i) EXPECT_FALSE(ClosedByServer(idle.fds[i], milliseconds(0))) << "connection " << i;
  ASSERT_FALSE(ClosedByServer(idle.fds[299], milliseconds(300)));
  idle.CloseAll();

  // 256 connections in the middle of a request are all busy: a new one is told so.
  Fds busy;
  for (int i = 0; i < 256; ++i) {
    busy.fds.push_back(ConnectUnix(socket_));
    ASSERT_GE(busy.fds.back(), 0);
    ASSERT_TRUE(SendAll(busy.fds.back(), "GET /v1/health HTTP/1.1\r\nHost: batchd\r\n"));
  }
  std::this_thread::sleep_for(milliseconds(500));  // until the server has read every partial request
  RawReply refused;
  ASSERT_TRUE(WaitFor(
      [&] {
        refused = RawUnixRequest(socket_, HttpRequestText("GET", "/v1/health"));
        return refused.status == 503;
      },
      milliseconds(5000), milliseconds(50)))
      << refused.status << " " << refused.error << refused.body;
  EXPECT_EQ(refused.body, R"j({"error":{"code":"unavailable","message":"too many connections (limit 256)"}})j" "\n");
  EXPECT_THAT(refused.head, HasSubstr("application/json"));
  ProcResult ctl = Ctl({"health"});
  EXPECT_EQ(ctl.exit_code, 1) << ctl.Describe();
  EXPECT_EQ(ctl.err, "batchctl: too many connections (limit 256)\n");
  EXPECT_EQ(Occurrences(DaemonLog(), "256 connections busy: refusing new ones"), 1u) << DaemonLog();

  busy.CloseAll();
  EXPECT_TRUE(WaitFor([&] { return Ctl({"health"}).exit_code == 0; }, milliseconds(5000), milliseconds(50)));
}

// --- Timeouts ---------------------------------------------------------------------------

TEST_F(ApiHardeningTest, SlowlorisIsCutAtTheReadTimeoutWhileOthersAreServed) {
  ASSERT_TRUE(StartDaemonWith("api:\n  read_timeout: 1s\n  idle_timeout: 10s\n", {}));
  // Half a header, then one more byte every 200 ms: each byte is progress, but the whole
  // request must arrive within the read timeout.
  const int slow = ConnectUnix(socket_);
  ASSERT_GE(slow, 0);
  std::shared_ptr<void> close_slow(nullptr, [slow](void*) { ::close(slow); });
  auto t0 = steady_clock::now();
  ASSERT_TRUE(SendAll(slow, "GET /v1/health HTTP/1.1\r\nHost: batchd\r\n"));
  bool cut = false;
  for (int i = 0; i < 25 && !cut; ++i) {
    auto t = steady_clock::now();
    EXPECT_EQ(Ctl({"health"}).exit_code, 0);
    EXPECT_LT(steady_clock::now() - t, seconds(2)) << "the slow client held up another";
    (void)::send(slow, "X", 1, MSG_NOSIGNAL);
    cut = ClosedByServer(slow, milliseconds(200));
  }
  const auto elapsed = steady_clock::now() - t0;
  EXPECT_TRUE(cut) << "the slow client is still connected";
  EXPECT_GE(elapsed, milliseconds(900));
  EXPECT_LT(elapsed, milliseconds(3500));
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

TEST_F(ApiHardeningTest, ConnectionThatSendsNothingIsClosedAtTheReadTimeout) {
  ASSERT_TRUE(StartDaemonWith("api:\n  read_timeout: 1s\n  idle_timeout: 10s\n", {}));
  const int silent = ConnectUnix(socket_);
  ASSERT_GE(silent, 0);
  std::shared_ptr<void> close_silent(nullptr, [silent](void*) { ::close(silent); });
  auto t0 = steady_clock::now();
  EXPECT_TRUE(ClosedByServer(silent, milliseconds(5000)));
  EXPECT_GE(steady_clock::now() - t0, milliseconds(900));
}

TEST_F(ApiHardeningTest, IdleKeptAliveConnectionIsClosedAfterTheIdleTimeout) {
  ASSERT_TRUE(StartDaemonWith("api:\n  idle_timeout: 1500ms\n  read_timeout: 10s\n", {}));
  const int fd = ConnectUnix(socket_);
  ASSERT_GE(fd, 0);
  std::shared_ptr<void> close_fd(nullptr, [fd](void*) { ::close(fd); });
  const std::string request = "GET /v1/health HTTP/1.1\r\nHost: batchd\r\n\r\n";  // keep-alive
  // Requests closer together than the idle timeout keep the connection.
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(SendAll(fd, request));
    std::string reply = ReadOneReply(fd, milliseconds(5000));
    ASSERT_THAT(reply, HasSubstr("HTTP/1.1 200")) << "request " << i;
    std::this_thread::sleep_for(milliseconds(700));
  }
  auto t0 = steady_clock::now();
  EXPECT_TRUE(ClosedByServer(fd, milliseconds(6000)));
  const auto elapsed = steady_clock::now() - t0 + milliseconds(700);
  EXPECT_GE(elapsed, milliseconds(1400));
  EXPECT_LT(elapsed, milliseconds(4000));
}

TEST_F(ApiHardeningTest, ClientThatNeverReadsALargeReplyDoesNotBlockOthers) {
  ASSERT_TRUE(StartDaemonWith("api:\n  write_timeout: 1s\n", {}));
  SubmitDag("big.yaml", "dag: big\ntasks:\n  - id: a\n    command: \"head -c 3000000 /dev/zero | tr '\\\\0' x\"\n");
  const std::string run_id = Trigger("big", {"--date", "2026-03-01", "--wait"});
  ASSERT_FALSE(run_id.empty());
  // Twenty pipelined 1 MiB log chunks, and nothing read: the server's writes stall.
  const int stuck = ConnectUnix(socket_);
  ASSERT_GE(stuck, 0);
  std::shared_ptr<void> close_stuck(nullptr, [stuck](void*) { ::close(stuck); });
  std::string requests;
  for (int i = 0; i < 20; ++i) requests += "GET /v1/runs/" + run_id + "/logs?task=a HTTP/1.1\r\nHost: batchd\r\n\r\n";
  ASSERT_TRUE(SendAll(stuck, requests));
  auto t0 = steady_clock::now();
  while (steady_clock::now() - t0 < milliseconds(1500)) {
    auto t = steady_clock::now();
    ProcResult health = Ctl({"health"});
    EXPECT_EQ(health.exit_code, 0) << health.Describe();
    EXPECT_LT(steady_clock::now() - t, seconds(2)) << "a stalled reader held up another client";
  }
  // After the write timeout the connection is gone: what was buffered drains, then it ends.
  EXPECT_TRUE(ClosedByServer(stuck, milliseconds(5000)));
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

// --- Out of descriptors -----------------------------------------------------------------

TEST_F(ApiHardeningTest, OutOfDescriptorsTheDaemonBacksOffInsteadOfSpinningAndServesAgain) {
  ASSERT_TRUE(StartDaemonWith("", {}, "ulimit -n 64"));
  const pid_t pid = daemon_pid();
  // Far more connections than the daemon has descriptors: the kernel queues them in the
  // backlog while accept fails with EMFILE.
  Fds conns;
  for (int i = 0; i < 120; ++i) {
    int fd = ConnectUnix(socket_);
    ASSERT_GE(fd, 0) << "connect " << i << ": " << std::strerror(errno);
    conns.fds.push_back(fd);
  }
  ASSERT_TRUE(WaitFor([&] { return DaemonLog().find("cannot accept connections") != std::string::npos; },
                      milliseconds(5000)))
      << DaemonLog();
  const long before = CpuTicks(pid);
  std::this_thread::sleep_for(seconds(2));
  const long used = CpuTicks(pid) - before;
  const long hz = ::sysconf(_SC_CLK_TCK);
  EXPECT_LT(used, hz / 5) << "batchd used " << used << " ticks of CPU in 2 s while out of descriptors";
  EXPECT_EQ(Occurrences(DaemonLog(), "cannot accept connections: Too many open files; retrying every 100 ms"), 1u)
      << DaemonLog();

  conns.CloseAll();
  EXPECT_TRUE(WaitFor([&] { return Ctl({"health"}, milliseconds(5000)).exit_code == 0; }, milliseconds(10000),
                      milliseconds(100)))
      << DaemonLog();
  EXPECT_THAT(DaemonLog(), HasSubstr("accepting connections again"));
}

// --- The socket path --------------------------------------------------------------------

TEST_F(ApiHardeningTest, SocketPathThatIsNotASocketIsRefusedAndLeftAlone) {
  WriteFile(socket_, "precious\n");
  ProcResult r = RunProcess({BATCHD_BIN, "serve", "--data-dir", data_, "--dags-dir", dags_, "--socket", socket_,
                             "--http", ""},
                            milliseconds(15000));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(LastLine(r.err), "batchd: socket path '" + socket_ + "' exists and is not a socket; refusing to remove it");
  EXPECT_EQ(ReadFile(socket_), "precious\n");

  // A symbolic link, even to a socket, is not followed or removed.
  const std::string link = sock_dir_ + "/link";
  ASSERT_EQ(::symlink(socket_.c_str(), link.c_str()), 0);
  r = RunProcess({BATCHD_BIN, "serve", "--data-dir", data_, "--dags-dir", dags_, "--socket", link, "--http", ""},
                 milliseconds(15000));
  EXPECT_EQ(r.exit_code, 1) << r.Describe();
  EXPECT_EQ(LastLine(r.err), "batchd: socket path '" + link + "' exists and is not a socket; refusing to remove it");
  struct stat st {};
  EXPECT_EQ(::lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(ApiHardeningTest, StaleSocketIsReplacedAndALiveOneRefused) {
  // A socket file nothing listens on, as a daemon killed with SIGKILL leaves behind.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, socket_.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ::close(fd);
  }
  ASSERT_TRUE(StartDaemon());
  ProcResult second = RunProcess({BATCHD_BIN, "serve", "--data-dir", tmp_ / "data2", "--dags-dir", dags_,
                                  "--socket", socket_, "--http", ""},
                                 milliseconds(15000));
  EXPECT_EQ(second.exit_code, 1) << second.Describe();
  EXPECT_EQ(LastLine(second.err), "batchd: another process is listening on socket '" + socket_ + "'");
  EXPECT_EQ(Ctl({"health"}).exit_code, 0);
}

TEST_F(ApiHardeningTest, ShutdownRemovesOnlyItsOwnSocket) {
  ASSERT_TRUE(StartDaemon());
  ProcResult stopped = StopDaemon();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.Describe();
  EXPECT_FALSE(Exists(socket_));

  ASSERT_TRUE(StartDaemon());
  // Someone put another file at the path while it ran: it stays.
  ASSERT_EQ(::unlink(socket_.c_str()), 0);
  WriteFile(socket_, "not yours\n");
  stopped = StopDaemon();
  EXPECT_EQ(stopped.exit_code, 0) << stopped.Describe();
  EXPECT_EQ(ReadFile(socket_), "not yours\n");
}

// --- batchctl's socket ------------------------------------------------------------------

TEST_F(ApiHardeningTest, BatchctlUsesAWorkingDirectorySocketOnlyWhenItIsTheCallersOwn) {
  const std::string work = sock_dir_ + "/w";
  socket_ = work + "/.batchd/batchd.sock";
  ASSERT_TRUE(StartDaemon());
  ProcResult own = CtlIn(work, "health");
  EXPECT_EQ(own.exit_code, 0) << own.Describe();

  ASSERT_EQ(::lchown(socket_.c_str(), 65534, 65534), 0) << std::strerror(errno);
  ProcResult foreign = CtlIn(work, "health");
  EXPECT_EQ(foreign.exit_code, 3) << foreign.Describe();
  if (!Exists("/run/batchd/batchd.sock")) {
    EXPECT_EQ(foreign.err,
              "batchctl: cannot reach batchd at /run/batchd/batchd.sock: No such file or directory (is the daemon "
              "running?; ignored ./.batchd/batchd.sock: owned by uid 65534, not you (uid 0))\n");
  }
  EXPECT_THAT(foreign.err, HasSubstr("ignored ./.batchd/batchd.sock: owned by uid 65534, not you (uid 0)"));
  // --socket and $BATCHD_SOCKET are the caller's explicit choice and are used as given.
  EXPECT_EQ(CtlIn(work, "--socket .batchd/batchd.sock health").exit_code, 0);
  EXPECT_EQ(CtlIn(work, "health").exit_code, 3);

  // A symbolic link in its place is not followed.
  ASSERT_EQ(::lchown(socket_.c_str(), 0, 0), 0);
  const std::string other = sock_dir_ + "/v";
  std::filesystem::create_directories(other + "/.batchd");
  ASSERT_EQ(::symlink(socket_.c_str(), (other + "/.batchd/batchd.sock").c_str()), 0);
  ProcResult linked = CtlIn(other, "health");
  EXPECT_EQ(linked.exit_code, 3) << linked.Describe();
  EXPECT_THAT(linked.err, HasSubstr("ignored ./.batchd/batchd.sock: a symbolic link"));
}

// --- Who may change state ---------------------------------------------------------------

TEST_F(ApiHardeningTest, MutationAllowListRefusesOtherUidsAndLeavesReadsOpen) {
  // 0666 and a searchable directory so that nobody can connect at all; the allow-list is
  // what stops it.
  ASSERT_EQ(::chmod(sock_dir_.c_str(), 0755), 0);
  ASSERT_TRUE(StartDaemonWith("socket_mode: \"0666\"\napi:\n  mutation_uids: [4242]\n", {}));
  SubmitDag("good.yaml", "dag: good\ntasks:\n  - id: a\n    command: \"true\"\n");
  const std::string run_id = Trigger("good", {"--date", "2026-03-01", "--wait"});  // root may
  ASSERT_FALSE(run_id.empty());
  const std::string before = DbFingerprint();

  ProcResult trigger = CtlAsNobody({"trigger", "good", "--date", "2026-03-02"});
  EXPECT_EQ(trigger.exit_code, 1) << trigger.Describe();
  EXPECT_EQ(trigger.err,
            "batchctl: uid 65534 may not POST /v1/dags/good/runs; mutations are limited to root and uid 4242 "
            "(config api.mutation_uids, api.mutation_groups)\n");
  ProcResult json = CtlAsNobody({"--json", "cancel", run_id});
  EXPECT_EQ(json.exit_code, 1) << json.Describe();
  EXPECT_EQ(Json::parse(json.out, nullptr, false),
            Json::parse(R"({"error": {"code": "forbidden", "message": "uid 65534 may not POST /v1/runs/)" + run_id +
                        R"j(/cancel; mutations are limited to root and uid 4242 (config api.mutation_uids, api.mutation_groups)"}})j"));
  RawReply raw = RawUnixRequest(socket_, HttpRequestText("DELETE", "/v1/dags/good"));
  EXPECT_EQ(raw.status, 200) << "root is always allowed: " << raw.body;  // the test runs as root
  EXPECT_EQ(CtlAsNobody({"reload"}).exit_code, 1);
  EXPECT_EQ(CtlAsNobody({"pause", "good"}).exit_code, 1);
  // Reads stay open.
  ProcResult dags = CtlAsNobody({"dags"});
  EXPECT_EQ(dags.exit_code, 0) << dags.Describe();
  ProcResult status = CtlAsNobody({"status", run_id});
  EXPECT_EQ(status.exit_code, 0) << status.Describe();
  EXPECT_EQ(CtlAsNobody({"health"}).exit_code, 0);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 1);

  // SIGHUP re-reads the list: nobody's primary group is now in it.
  WriteFile(config_path_, "socket_mode: \"0666\"\napi:\n  mutation_uids: [4242]\n  mutation_groups: [nogroup]\n");
  SignalDaemon(SIGHUP);
  ASSERT_TRUE(WaitFor([&] { return DaemonLog().find("SIGHUP: reloading") != std::string::npos; }, milliseconds(5000)));
  SubmitDag("good.yaml", "dag: good\ntasks:\n  - id: a\n    command: \"true\"\n");
  ProcResult allowed;
  EXPECT_TRUE(WaitFor(
      [&] {
        allowed = CtlAsNobody({"trigger", "good", "--date", "2026-03-03"});
        return allowed.exit_code == 0;
      },
      milliseconds(5000), milliseconds(100)))
      << allowed.Describe();
  EXPECT_EQ(V("SELECT uid FROM audit ORDER BY rowid DESC LIMIT 1"), "65534");
}

TEST_F(ApiHardeningTest, MutationsAreImpossibleOverTheTcpListener) {
  const int port = FreeTcpPort();
  DaemonOptions options;
  options.http = "127.0.0.1:" + std::to_string(port);
  ASSERT_TRUE(StartDaemon(options));
  SubmitDag("good.yaml", "dag: good\ntasks:\n  - id: a\n    command: \"true\"\n");
  RawReply r = RawTcpRequest(port, HttpRequestText("POST", "/v1/dags/good/runs", "{}"));
  EXPECT_EQ(r.status, 405) << r.error << r.body;
  EXPECT_EQ(RawTcpRequest(port, HttpRequestText("GET", "/v1/dags")).status, 404);
  EXPECT_EQ(Count("SELECT COUNT(*) FROM runs"), 0);
}

TEST_F(ApiHardeningTest, BadApiConfigIsRefusedWithFileLineAndColumn) {
  WriteFile(config_path_, "api:\n  max_conections: 5\n  read_timeout: 0s\n  mutation_groups: [no-such-group-x]\n"
                          "env_passthrough: [PATH, 'A=B']\n");
  ProcResult r = RunProcess({BATCHD_BIN, "serve", "--config", config_path_, "--data-dir", data_, "--socket", socket_,
                             "--http", ""},
                            milliseconds(15000));
  EXPECT_EQ(r.exit_code, 2) << r.Describe();
  EXPECT_EQ(r.err, config_path_ + ":2:3: unknown key 'api.max_conections' (did you mean 'max_connections'?)\n" +
                       config_path_ + ":3:17: api.read_timeout must be longer than 0\n" + config_path_ +
                       ":4:21: api.mutation_groups: unknown group 'no-such-group-x' (no such group)\n" +
                       config_path_ +
                       ":5:25: env_passthrough: 'A=B' is not a variable name ([A-Za-z_][A-Za-z0-9_]*, optionally "
                       "ending in * as in LC_*)\n");
  EXPECT_FALSE(Exists(socket_));
}

// --- The environment of tasks -----------------------------------------------------------

TEST_F(ApiHardeningTest, TasksGetOnlyThePassedThroughEnvironment) {
  const std::vector<std::string> daemon_env = {"FOO_SECRET=hunter2", "LC_TIME=C", "TZ=UTC", "BATCHD_X=1"};
  ASSERT_TRUE(StartDaemonWith("", daemon_env));
  SubmitDag("envy.yaml", Substitute("dag: envy\nenv:\n  MY_VAR: mine\ntasks:\n  - id: a\n    command: env > @TMP@/env.txt\n",
                                    {{"TMP", tmp_.path()}}));
  ASSERT_FALSE(Trigger("envy", {"--date", "2026-03-01", "--wait"}).empty());
  std::set<std::string> names = EnvNames(ReadFile(tmp_ / "env.txt").value_or(""));
  const std::set<std::string> allowed = {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ",
                                         "TMPDIR", "MY_VAR",
                                         "PWD", "SHLVL", "_", "OLDPWD"};  // the last four: set by the shell itself
  for (const auto& name : names) {
    bool ok = allowed.count(name) || name.rfind("LC_", 0) == 0 || name.rfind("BATCHD_", 0) == 0;
    EXPECT_TRUE(ok) << "the task got " << name << " from the daemon's environment";
  }
  EXPECT_FALSE(names.count("FOO_SECRET"));
  EXPECT_FALSE(names.count("BATCHD_X"));
  EXPECT_TRUE(names.count("LC_TIME"));
  EXPECT_TRUE(names.count("TZ"));
  EXPECT_TRUE(names.count("MY_VAR"));
  EXPECT_TRUE(names.count("BATCHD_RUN_ID"));
  ASSERT_EQ(StopDaemon().exit_code, 0);

  // The list is the operator's: here PATH and FOO_*, nothing else.
  ASSERT_TRUE(StartDaemonWith("env_passthrough: [PATH, FOO_*]\n", daemon_env));
  ASSERT_FALSE(Trigger("envy", {"--date", "2026-03-02", "--wait"}).empty());
  names = EnvNames(ReadFile(tmp_ / "env.txt").value_or(""));
  EXPECT_TRUE(names.count("FOO_SECRET"));
  EXPECT_TRUE(names.count("PATH"));
  EXPECT_FALSE(names.count("TZ"));
  EXPECT_FALSE(names.count("LC_TIME"));

  // `batchd run` passes the default list.
  const std::string dag = WriteDag("solo.yaml", Substitute("dag: solo\ntasks:\n  - id: a\n    command: env > @TMP@/solo.txt\n",
                                                           {{"TMP", tmp_.path()}}));
  ProcResult run = RunProcess({BATCHD_BIN, "run", dag, "--data-dir", tmp_ / "solo-data"}, milliseconds(30000),
                              daemon_env);
  EXPECT_EQ(run.exit_code, 0) << run.Describe();
  names = EnvNames(ReadFile(tmp_ / "solo.txt").value_or(""));
  EXPECT_FALSE(names.count("FOO_SECRET"));
  EXPECT_TRUE(names.count("LC_TIME"));
  EXPECT_TRUE(names.count("BATCHD_RUN_ID"));
}

}  // namespace
}  // namespace batchd::e2e
