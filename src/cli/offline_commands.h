#pragma once
// Commands that need no daemon: validate and next.

#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"

namespace batchd::cli {

int RunValidate(const GlobalOptions& global, const std::vector<std::string>& files);

struct NextOptions {
  std::string cron;
  std::string tz = "UTC";
  std::optional<std::string> from;  // ISO-8601; without an offset read in tz; default now
  int count = 5;
};
int RunNext(const GlobalOptions& global, const NextOptions& options);

}  // namespace batchd::cli
