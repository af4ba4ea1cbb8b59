#pragma once
// spdlog set-up shared by batchd's commands.

#include <memory>
#include <string>

#include <spdlog/formatter.h>

#include "common/status.h"

namespace batchd {

// The line format of one log format (text|json). In json, every line is one JSON object
// {"ts", "level", "msg"} with the message escaped as a JSON string.
Result<std::unique_ptr<spdlog::formatter>> MakeLogFormatter(const std::string& format);

// level: trace|debug|info|warn|error|critical|off; format: text|json. Logs go to stderr
// (journald picks them up under systemd).
Status SetupLogging(const std::string& level, const std::string& format);

}  // namespace batchd
