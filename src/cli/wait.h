#pragma once
// Following runs until they end, for `trigger --wait` and `backfill --wait`: polls
// GET /v1/runs/{id} and shows progress (counts of task instances per state). In human mode
// progress goes to stdout, redrawn in place on a terminal and one plain line per change
// otherwise; with --json stdout carries only the final JSON, so progress is drawn on stderr
// when that is a terminal and left out otherwise.
// A daemon that is briefly unreachable or answers 503 (restarting) is waited for up to a
// minute; the wait itself has no time limit (Ctrl-C stops following, not the run).

#include <optional>
#include <string>
#include <vector>

#include "cli/api.h"
#include "cli/output.h"

namespace batchd::cli {

// The final run (the GET /v1/runs/{id} reply), or nullopt once a failure has been reported
// (api.exit_code()).
std::optional<Json> WaitForRun(Api& api, const std::string& run_id);

// Same for several runs; the final runs in the order of `run_ids`.
std::optional<std::vector<Json>> WaitForRuns(Api& api, const std::string& label,
                                             const std::vector<std::string>& run_ids);

// Human summary of a finished run: "run ID success in 1m12s (...)", and for a failed run its
// failed instances and where to read their logs.
void PrintRunOutcome(const Json& run);

bool IsTerminalRunState(const std::string& state);

// "extract[us]", or "extract" for the single partition "-".
std::string InstanceLabel(const Json& instance);

}  // namespace batchd::cli
