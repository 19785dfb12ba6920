// Fault injection for the stall test (tests/e2e/guest/scenarios.sh), loaded into php-fpm with LD_PRELOAD: holds every
// exiting worker for IDLEPOOL_SLOW_EXIT_MS milliseconds after it stopped accepting, and marks that moment with a file
// IDLEPOOL_SLOW_EXIT_DIR/exiting.PID. php-fpm's ondemand master still counts such a worker as idle, so a connection
// that arrives meanwhile is the one php-fpm misses (the edge-triggered race of php bug #69724), made deterministic:
// the real race has the same shape with a window of microseconds. The master itself exits untouched.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pid_t master_pid;
static long delay_ms;
static char marker_dir[200];

// Read in the master: php-fpm clears its workers' environment (clear_env).
__attribute__((constructor)) static void slow_exit_init(void) {
  const char* ms = getenv("IDLEPOOL_SLOW_EXIT_MS");
  const char* dir = getenv("IDLEPOOL_SLOW_EXIT_DIR");
  master_pid = getpid();
  if (ms) delay_ms = strtol(ms, NULL, 10);
  if (dir) snprintf(marker_dir, sizeof(marker_dir), "%s", dir);
}

__attribute__((destructor)) static void slow_exit(void) {
  if (getpid() == master_pid || delay_ms <= 0) return;
  if (marker_dir[0]) {
    char path[256];
    snprintf(path, sizeof(path), "%s/exiting.%d", marker_dir, (int)getpid());
    int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) close(fd);
  }
  struct timespec t = {delay_ms / 1000, (delay_ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0) {
  }
}
