/* Chain-hop probe: appends the CLOCK_MONOTONIC time, in nanoseconds, to FILE and exits.
 *
 *   stamp FILE            one line per call; a chain of tasks each running `stamp FILE` gives
 *                         the time from one task's end to the next one's start (bench/hops.sh)
 *   stamp --floor N FILE  runs `stamp FILE` N times one after another (fork, exec, wait) with
 *                         nothing in between: the floor of a hop on this machine
 *
 * Built static by bench/hops.sh so that dynamic loading is not part of every hop. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int append_stamp(const char *path) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  char line[32];
  int len = snprintf(line, sizeof line, "%lld\n", (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, line, (size_t)len) != len) {
    perror(path);
    return 1;
  }
  close(fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 2) return append_stamp(argv[1]);
  if (argc == 4 && strcmp(argv[1], "--floor") == 0) {
    long runs = strtol(argv[2], NULL, 10);
    for (long i = 0; i < runs; ++i) {
      pid_t pid = fork();
      if (pid == 0) {
        execl("/proc/self/exe", argv[0], argv[3], (char *)NULL);
        _exit(127);
      }
      int status = 0;
      if (pid < 0 || waitpid(pid, &status, 0) < 0 || status != 0) return 1;
    }
    return 0;
  }
  fprintf(stderr, "usage: stamp FILE | stamp --floor N FILE\n");
  return 2;
}
