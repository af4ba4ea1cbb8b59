// The daemon's config loader on arbitrary file contents: a Config or an error naming
// the file, never a crash or an escaping exception.

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "daemon/config.h"

namespace {

std::string config_path;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* tmp = getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/batchd-fuzz-config-XXXXXX";
  int fd = mkstemp(pattern.data());
  if (fd < 0) abort();
  close(fd);
  config_path = pattern;
  atexit([] { unlink(config_path.c_str()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int fd = open(config_path.c_str(), O_WRONLY | O_TRUNC);
  if (fd < 0 || write(fd, data, size) != static_cast<ssize_t>(size)) abort();
  close(fd);
  auto config = batchd::daemon::LoadConfig(config_path);
  if (!config.ok()) {
    if (config.status().message().rfind(config_path, 0) != 0) abort();  // errors name the file
    return 0;
  }
  if (config->socket_mode < 0 || config->socket_mode > 0777 || config->workers < 0) abort();
  return 0;
}
