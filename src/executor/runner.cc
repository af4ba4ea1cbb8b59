#include "executor/runner.h"

namespace batchd::executor {

const char* AttemptEndName(AttemptEnd end) {
  switch (end) {
    case AttemptEnd::kSuccess: return "success";
    case AttemptEnd::kFailed: return "failed";
    case AttemptEnd::kTimeout: return "timeout";
    case AttemptEnd::kCancelled: return "cancelled";
    case AttemptEnd::kSpawnError: return "spawn_error";
  }
  return "unknown";
}

}  // namespace batchd::executor
