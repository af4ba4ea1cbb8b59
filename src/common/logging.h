#pragma once
// spdlog set-up shared by batchd's commands.

#include <string>

#include "common/status.h"

namespace batchd {

// level: trace|debug|info|warn|error|critical|off; format: text|json. Logs go to stderr
// (journald picks them up under systemd).
Status SetupLogging(const std::string& level, const std::string& format);

}  // namespace batchd
