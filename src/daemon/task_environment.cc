#include "daemon/task_environment.h"

#include <unistd.h>

#include <cctype>

namespace batchd::daemon {

std::vector<std::string> DefaultEnvPassthrough() {
  return {"PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR"};
}

bool ValidEnvPattern(std::string_view pattern) {
  if (pattern == "*") return true;
  if (!pattern.empty() && pattern.back() == '*') pattern.remove_suffix(1);
  if (pattern.empty()) return false;
  if (!std::isalpha(static_cast<unsigned char>(pattern[0])) && pattern[0] != '_') return false;
  for (unsigned char c : pattern)
    if (!std::isalnum(c) && c != '_') return false;
  return true;
}

bool EnvPassthroughMatches(std::string_view name, const std::vector<std::string>& patterns) {
  for (std::string_view p : patterns) {
    if (!p.empty() && p.back() == '*') {
      if (name.substr(0, p.size() - 1) == p.substr(0, p.size() - 1)) return true;
    } else if (name == p) {
      return true;
    }
  }
  return false;
}

std::vector<std::string> TaskBaseEnvironment(const std::vector<std::string>& patterns) {
  std::vector<std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string_view kv = *e;
    std::string_view name = kv.substr(0, kv.find('='));
    if (name.rfind("BATCHD_", 0) == 0) continue;
    if (EnvPassthroughMatches(name, patterns)) env.emplace_back(kv);
  }
  return env;
}

}  // namespace batchd::daemon
