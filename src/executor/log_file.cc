#include "executor/log_file.h"

#include <fcntl.h>

#include "executor/fd.h"

namespace batchd::executor {

int OpenLogFile(const std::string& path) {
  if (path.empty()) return AboveStdio(open("/dev/null", O_WRONLY | O_CLOEXEC | O_NOCTTY));
  return AboveStdio(open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640));
}

}  // namespace batchd::executor
