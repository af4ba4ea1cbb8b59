#pragma once
// Opening an attempt's log file.

#include <string>

namespace batchd::executor {

// Opens `path` for appending, creating it (mode 0640 before umask) if needed: an attempt
// that runs again under the same path appends to what is there. "" opens /dev/null.
// Returns an O_CLOEXEC descriptor >= 3 (never one of the standard streams, which the child
// gets its log on), or -1 with errno set.
int OpenLogFile(const std::string& path);

}  // namespace batchd::executor
