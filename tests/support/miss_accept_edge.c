// Fault injection for the stall tests, loaded into php-fpm with LD_PRELOAD: makes php-fpm's ondemand master miss the
// edge of one new connection, when a test asks for it. php-fpm's ondemand master watches its listening socket
// edge-triggered (EPOLLET) and forks a worker for a connection whose edge it sees; in the real race (php bug #69724)
// it misses one while it counts an exiting idle worker, a window of microseconds that no test can hit at will. Here
// the test creates IDLEPOOL_MISS_DIR/arm; the next readiness of a listening socket that epoll_wait would hand the
// master is dropped, `arm` removed and IDLEPOOL_MISS_DIR/missed created. The connection then waits for the next
// connection's edge, exactly as in the race. Only the master is touched; workers run untouched.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

static pid_t master_pid;
static char arm_path[256], missed_path[256];
// epoll data of the listening sockets the master watches (php-fpm keeps a pointer there, not the fd).
static uint64_t listening[64];
static int n_listening;

__attribute__((constructor)) static void miss_init(void) {
  const char* dir = getenv("IDLEPOOL_MISS_DIR");
  master_pid = getpid();
  if (dir) {
    snprintf(arm_path, sizeof(arm_path), "%s/arm", dir);
    snprintf(missed_path, sizeof(missed_path), "%s/missed", dir);
  }
}

static int is_listening(int fd) {
  int on = 0;
  socklen_t len = sizeof(on);
  return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 && on;
}

int epoll_ctl(int epfd, int op, int fd, struct epoll_event* event) {
  static int (*real)(int, int, int, struct epoll_event*);
  if (!real) real = dlsym(RTLD_NEXT, "epoll_ctl");
  if (getpid() == master_pid && event && (op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && is_listening(fd) &&
      n_listening < (int)(sizeof(listening) / sizeof(listening[0])))
    listening[n_listening++] = event->data.u64;
  return real(epfd, op, fd, event);
}

// Drops the first event of a listening socket from `events` if a miss is armed; returns the new count.
static int miss(struct epoll_event* events, int n) {
  if (n <= 0 || getpid() != master_pid || !arm_path[0] || access(arm_path, F_OK) != 0) return n;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < n_listening; ++k) {
      if (events[i].data.u64 != listening[k]) continue;
      memmove(&events[i], &events[i + 1], (size_t)(n - i - 1) * sizeof(*events));
      unlink(arm_path);
      int fd = open(missed_path, O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
      if (fd >= 0) close(fd);
      return n - 1;
    }
  }
  return n;
}

int epoll_wait(int epfd, struct epoll_event* events, int maxevents, int timeout) {
  static int (*real)(int, struct epoll_event*, int, int);
  if (!real) real = dlsym(RTLD_NEXT, "epoll_wait");
  return miss(events, real(epfd, events, maxevents, timeout));  // php-fpm takes 0 events as a timer tick
}

int epoll_pwait(int epfd, struct epoll_event* events, int maxevents, int timeout, const sigset_t* sigmask) {
  static int (*real)(int, struct epoll_event*, int, int, const sigset_t*);
  if (!real) real = dlsym(RTLD_NEXT, "epoll_pwait");
  return miss(events, real(epfd, events, maxevents, timeout, sigmask));
}
