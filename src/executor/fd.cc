#include "executor/fd.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace batchd::executor {

int AboveStdio(int fd) {
  if (fd < 0 || fd > 2) return fd;
  int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  int saved = errno;
  close(fd);
  errno = saved;
  return moved;
}

}  // namespace batchd::executor
