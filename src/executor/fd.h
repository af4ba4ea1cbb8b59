#pragma once
// File descriptor helpers shared by the executor's modules.

namespace batchd::executor {

// Moves `fd` to a number >= 3 (a daemon started with closed stdio hands out 0..2), so a
// child's dup2 onto 0..2 cannot clobber it. Keeps O_CLOEXEC. Passes -1 through; on
// failure returns -1 with errno set, and `fd` is closed.
int AboveStdio(int fd);

}  // namespace batchd::executor
