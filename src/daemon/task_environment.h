#pragma once
// The environment a task starts from: only the daemon's variables an operator allowed
// (config `env_passthrough`), never the daemon's whole environment, which under systemd or
// a deploy script may carry credentials meant for batchd alone. The engine adds the DAG's
// `env` and the BATCHD_* variables on top (docs/dag-format.md, "Environment").

#include <string>
#include <string_view>
#include <vector>

namespace batchd::daemon {

// PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ, TMPDIR: what a shell command
// needs to find programs, its home and temporary directory, and to read and print text in
// the host's locale and zone (close to what systemd gives a service).
std::vector<std::string> DefaultEnvPassthrough();

// Whether `pattern` is a variable name ([A-Za-z_][A-Za-z0-9_]*), a name prefix ending in
// `*` ("LC_*"), or `*` alone (everything).
bool ValidEnvPattern(std::string_view pattern);

// Whether variable `name` matches one of `patterns`.
bool EnvPassthroughMatches(std::string_view name, const std::vector<std::string>& patterns);

// "K=V" entries of `environ` whose names match `patterns`, except BATCHD_* (batchd sets
// those itself), in environ order.
std::vector<std::string> TaskBaseEnvironment(const std::vector<std::string>& patterns);

}  // namespace batchd::daemon
