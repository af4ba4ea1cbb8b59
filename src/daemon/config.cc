#include "daemon/config.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>

#include <yaml-cpp/yaml.h>

#include "dag/text_util.h"

namespace batchd::daemon {
namespace {

const std::vector<std::string> kKeys = {"data_dir", "dags_dir", "socket", "socket_mode", "http", "workers", "shutdown_grace",
                             "pools", "retention", "log_level", "log_format", "scheduler_tick", "env_passthrough", "api",
                             "attempt_log_max_bytes", "ui"};
const std::vector<std::string> kUiKeys = {"enabled", "token", "token_file"};
// Shorter tokens are guessable; `openssl rand -hex 32` makes a good one.
constexpr size_t kMinUiTokenLength = 16;
const std::vector<std::string> kApiKeys = {"max_connections", "idle_timeout", "read_timeout", "write_timeout",
                                           "mutation_uids", "mutation_groups"};

std::string Where(const std::string& path, const YAML::Node& node) {
  auto m = node.Mark();
  return path + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1) + ": ";
}

using ErrorFn = std::function<void(const YAML::Node&, const std::string&)>;

bool IsNumber(const std::string& s) {
  return !s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos;
}

// A user name or a numeric uid; a name that does not resolve is an error.
std::optional<uid_t> ResolveUser(const std::string& text, std::string& label, std::string& problem) {
  if (IsNumber(text)) {
    label = text;
    return static_cast<uid_t>(std::stoul(text));
  }
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int rc = ::getpwnam_r(text.c_str(), &pw, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    problem = rc == 0 ? "no such user" : std::strerror(rc);
    return std::nullopt;
  }
  label = text + " (" + std::to_string(pw.pw_uid) + ")";
  return pw.pw_uid;
}

std::optional<gid_t> ResolveGroup(const std::string& text, std::string& label, std::string& problem) {
  if (IsNumber(text)) {
    label = text;
    return static_cast<gid_t>(std::stoul(text));
  }
  std::vector<char> buf(65536);
  group gr{};
  group* found = nullptr;
  int rc = ::getgrnam_r(text.c_str(), &gr, buf.data(), buf.size(), &found);
  if (found == nullptr) {
    problem = rc == 0 ? "no such group" : std::strerror(rc);
    return std::nullopt;
  }
  label = text;
  return gr.gr_gid;
}

// A YAML sequence of scalars, each passed to `each`; `what` names the key in errors.
void ForEachScalar(const YAML::Node& v, const std::string& what, const ErrorFn& error,
                   const std::function<void(const YAML::Node&, const std::string&)>& each) {
  if (!v.IsSequence()) return error(v, what + " must be a list");
  for (const auto& item : v) {
    if (!item.IsScalar()) error(item, what + " entries must be strings");
    else each(item, item.as<std::string>());
  }
}

void ParseDurationKey(const YAML::Node& v, const std::string& key, Millis& out, const ErrorFn& error) {
  if (!v.IsScalar()) return error(v, key + " must be a duration such as \"30s\"");
  auto d = ParseDuration(v.as<std::string>());
  if (!d.ok()) error(v, key + ": " + d.status().message());
  else if (d->count() <= 0) error(v, key + " must be longer than 0");
  else out = *d;
}

// The `api:` section (config/batchd.yaml).
void ParseApi(const YAML::Node& api, Config& config, const ErrorFn& error) {
  if (!api.IsMap()) return error(api, "api must be a mapping of keys");
  for (const auto& kv : api) {
    const std::string key = kv.first.as<std::string>();
    const std::string name = "api." + key;
    const YAML::Node& v = kv.second;
    if (key == "max_connections") {
      int value = 0;
      if (!v.IsScalar() || !YAML::convert<int>::decode(v, value) || value < 1) error(v, name + " must be an integer >= 1");
      else config.max_connections = value;
    } else if (key == "idle_timeout") {
      ParseDurationKey(v, name, config.idle_timeout, error);
    } else if (key == "read_timeout") {
      ParseDurationKey(v, name, config.read_timeout, error);
    } else if (key == "write_timeout") {
      ParseDurationKey(v, name, config.write_timeout, error);
    } else if (key == "mutation_uids") {
      auto& allow = config.mutation_allow_list;
      allow.enabled = true;
      ForEachScalar(v, name, error, [&](const YAML::Node& item, const std::string& text) {
        std::string label, problem;
        if (auto uid = ResolveUser(text, label, problem)) {
          allow.uids.push_back(*uid);
          allow.uid_labels.push_back(label);
        } else {
          error(item, name + ": unknown user '" + text + "' (" + problem + ")");
        }
      });
    } else if (key == "mutation_groups") {
      auto& allow = config.mutation_allow_list;
      allow.enabled = true;
      ForEachScalar(v, name, error, [&](const YAML::Node& item, const std::string& text) {
        std::string label, problem;
        if (auto gid = ResolveGroup(text, label, problem)) {
          allow.gids.push_back(*gid);
          allow.group_labels.push_back(label);
        } else {
          error(item, name + ": unknown group '" + text + "' (" + problem + ")");
        }
      });
    } else {
      error(kv.first, "unknown key '" + name + "'" + dag::internal::DidYouMean(key, kApiKeys));
    }
  }
}

void ParseUi(const YAML::Node& ui, const std::string& config_path, Config& config, const ErrorFn& error) {
  if (!ui.IsMap()) return error(ui, "ui must be a mapping of keys");
  auto set_token = [&](const YAML::Node& at, const std::string& name, std::string token) {
    while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
    if (token.size() < kMinUiTokenLength)
      return error(at, name + " must be at least " + std::to_string(kMinUiTokenLength) + " characters");
    for (unsigned char c : token)
      if (c < 0x21 || c > 0x7e) return error(at, name + " must be printable ASCII without spaces");
    config.ui_token = std::move(token);
  };
  for (const auto& kv : ui) {
    const std::string key = kv.first.as<std::string>();
    const std::string name = "ui." + key;
    const YAML::Node& v = kv.second;
    if (key == "enabled") {
      bool value = true;
      if (!v.IsScalar() || !YAML::convert<bool>::decode(v, value)) error(v, name + " must be true or false");
      else config.ui_enabled = value;
    } else if (key == "token") {
      if (!v.IsScalar()) error(v, name + " must be a string");
      else set_token(v, name, v.as<std::string>());
    } else if (key == "token_file") {
      if (!v.IsScalar()) return error(v, name + " must be a path");
      std::string path = v.as<std::string>();
      if (!path.empty() && path[0] != '/') {  // relative to the config file
        auto slash = config_path.rfind('/');
        if (slash != std::string::npos) path = config_path.substr(0, slash + 1) + path;
      }
      std::ifstream in(path, std::ios::binary);
      if (!in) {
        error(v, name + ": cannot read '" + path + "': " + std::strerror(errno));
        continue;
      }
      std::stringstream text;
      text << in.rdbuf();
      set_token(v, name + " ('" + path + "')", text.str());
    } else {
      error(kv.first, "unknown key '" + name + "'" + dag::internal::DidYouMean(key, kUiKeys));
    }
  }
}

void ParseEnvPassthrough(const YAML::Node& v, Config& config, const ErrorFn& error) {
  config.env_passthrough.clear();
  ForEachScalar(v, "env_passthrough", error, [&](const YAML::Node& item, const std::string& text) {
    if (!ValidEnvPattern(text))
      error(item, "env_passthrough: '" + text +
                      "' is not a variable name ([A-Za-z_][A-Za-z0-9_]*, optionally ending in * as in LC_*)");
    else
      config.env_passthrough.push_back(text);
  });
}

}  // namespace

std::map<std::string, int> DefaultPools() { return {{"gpu", 1}, {"inference", 4}, {"warehouse", 4}}; }

Result<Config> LoadConfig(const std::string& path, Config config) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(path + ": cannot read config file");
  std::stringstream buffer;
  buffer << in.rdbuf();
  YAML::Node root;
  try {
    root = YAML::Load(buffer.str());
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                                   std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  if (root.IsNull()) return config;
  if (!root.IsMap()) return Status::InvalidArgument(Where(path, root) + "the config must be a mapping of keys");
  std::string errors;
  auto error = [&](const YAML::Node& n, const std::string& msg) { errors += Where(path, n) + msg + "\n"; };
  try {
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      auto str = [&]() -> std::optional<std::string> {
        if (!v.IsScalar()) {
          error(v, key + " must be a string");
          return std::nullopt;
        }
        return v.as<std::string>();
      };
      auto duration = [&](Millis& out) {
        if (auto s = str()) {
          auto d = ParseDuration(*s);
          if (!d.ok()) error(v, key + ": " + d.status().message());
          else out = *d;
        }
      };
      auto integer = [&](int& out, int min) {
        int value = 0;
        if (!v.IsScalar() || !YAML::convert<int>::decode(v, value) || value < min) {
          error(v, key + " must be an integer >= " + std::to_string(min));
        } else {
          out = value;
        }
      };
      if (key == "data_dir") { if (auto s = str()) config.data_dir = *s; }
      else if (key == "dags_dir") { if (auto s = str()) config.dags_dir = *s; }
      else if (key == "socket") { if (auto s = str()) config.socket = *s; }
      else if (key == "socket_mode") {
        if (auto s = str()) {
          try {
            size_t used = 0;
            int mode = std::stoi(*s, &used, 8);
            if (used != s->size() || mode < 0 || mode > 0777) throw std::invalid_argument("mode");
            config.socket_mode = mode;
          } catch (const std::exception&) {
            error(v, "socket_mode must be an octal file mode such as \"0660\"");
          }
        }
      }
      else if (key == "http") { if (auto s = str()) config.http = *s; }
      else if (key == "workers") integer(config.workers, 0);
      else if (key == "shutdown_grace") duration(config.shutdown_grace);
      else if (key == "attempt_log_max_bytes") {
        // Bytes, or a whole number of KiB, MiB or GiB ("64MiB", "1 GiB").
        std::string text = v.IsScalar() ? v.Scalar() : "";
        uint64_t unit = 1;
        for (auto [suffix, size] : {std::pair{"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30}}) {
          if (text.size() > 3 && text.compare(text.size() - 3, 3, suffix) == 0) {
            unit = size;
            text.resize(text.find_last_not_of(' ', text.size() - 4) + 1);
          }
        }
        uint64_t n = 0;
        auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
        if (text.empty() || ec != std::errc() || end != text.data() + text.size() || n > (1ull << 50) / unit)
          error(v, "attempt_log_max_bytes must be a size in bytes, KiB, MiB or GiB such as 64MiB (0: unlimited)");
        else
          config.attempt_log_max_bytes = n * unit;
      }
      else if (key == "retention") duration(config.retention);
      else if (key == "scheduler_tick") duration(config.scheduler_tick);
      else if (key == "log_level") { if (auto s = str()) config.log_level = *s; }
      else if (key == "log_format") { if (auto s = str()) config.log_format = *s; }
      else if (key == "api") ParseApi(v, config, error);
      else if (key == "ui") ParseUi(v, path, config, error);
      else if (key == "env_passthrough") ParseEnvPassthrough(v, config, error);
      else if (key == "pools") {
        if (!v.IsMap()) {
          error(v, "pools must be a mapping of pool name to slot count");
        } else {
          for (const auto& p : v) {
            int slots = 0;
            if (!p.second.IsScalar() || !YAML::convert<int>::decode(p.second, slots) || slots < 1)
              error(p.second, "pool '" + p.first.as<std::string>() + "' must have an integer slot count >= 1");
            else
              config.pools[p.first.as<std::string>()] = slots;
          }
        }
      } else {
        error(kv.first, "unknown key '" + key + "'" + dag::internal::DidYouMean(key, kKeys));
      }
    }
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  if (!errors.empty()) {
    errors.pop_back();
    return Status::InvalidArgument(errors);
  }
  return config;
}

}  // namespace batchd::daemon
