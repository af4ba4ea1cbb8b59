#pragma once
// Durations as written in DAG files and config: "500ms", "10s", "5m", "2h", "1d",
// or a bare number of seconds ("30", "1.5").

#include <chrono>
#include <string>
#include <string_view>

#include "common/status.h"

namespace batchd {

using Millis = std::chrono::milliseconds;

// Parses a duration. Negative values are refused; the message says what was expected.
Result<Millis> ParseDuration(std::string_view text);

// Formats a duration compactly: "1h30m", "10s", "250ms", "0s".
std::string FormatDuration(Millis d);

}  // namespace batchd
