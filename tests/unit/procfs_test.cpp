#include "idlepool/wire/procfs.h"

#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <string>

namespace idlepool::wire {
namespace {

TEST(Procfs, FindsTheCgroup2MountOnHybridAndUnifiedHosts) {
  // From this project's build machines (hybrid: v1 controllers plus v2 at /sys/fs/cgroup/unified).
  const char* hybrid =
      "25 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
      "30 25 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "31 30 0:27 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu\n"
      "40 30 0:36 / /sys/fs/cgroup/unified rw,relatime shared:18 - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(*find_cgroup2_mount(hybrid), "/sys/fs/cgroup/unified");
  // A Debian 12 host with systemd.
  const char* unified =
      "24 29 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n";
  EXPECT_EQ(*find_cgroup2_mount(unified), "/sys/fs/cgroup");
  EXPECT_EQ(*find_cgroup2_mount("1 0 0:1 / /odd\\040dir rw - cgroup2 none rw\n"), "/odd dir");
  // Found by fuzz_procfs: a line with a field missing took the options for the mount point.
  EXPECT_FALSE(find_cgroup2_mount("41 0:38 / /sys/fs/cgroup rw,relatime - cgroup2 cgroup2 rw\n").ok());
  auto none = find_cgroup2_mount("31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.error().message.find("no cgroup2 filesystem is mounted"), std::string::npos);
}

TEST(Procfs, ParsesCgroupProcsAndNamesABadLine) {
  EXPECT_EQ(*parse_cgroup_procs("12\n345\n"), (std::vector<int32_t>{12, 345}));
  EXPECT_TRUE(parse_cgroup_procs("")->empty());
  auto bad = parse_cgroup_procs("12\nabc\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("line 2 is not a pid: 'abc'"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(parse_cgroup_procs("-4\n").ok());
}

TEST(Procfs, ParsesThePpidEvenWhenTheCommandHasParenthesesAndSpaces) {
  EXPECT_EQ(*parse_stat_ppid("4242 (php-fpm8.2) S 1 4242 4242 0 -1"), 1);
  EXPECT_EQ(*parse_stat_ppid("77 (a) b) c) R 76 77 77 0 -1"), 76);
  EXPECT_FALSE(parse_stat_ppid("77 no parens").ok());
  EXPECT_FALSE(parse_stat_ppid("77 (x)").ok());
}

TEST(Procfs, SocketLinksNameTheirInode) {
  EXPECT_EQ(parse_socket_link("socket:[123456]"), 123456u);
  EXPECT_EQ(parse_socket_link("socket:[]"), std::nullopt);
  EXPECT_EQ(parse_socket_link("socket:[12x]"), std::nullopt);
  EXPECT_EQ(parse_socket_link("pipe:[123]"), std::nullopt);
  EXPECT_EQ(parse_socket_link("/dev/null"), std::nullopt);
  EXPECT_EQ(parse_socket_link("socket:[99999999999]"), std::nullopt);  // more than an inode holds
}

TEST(Procfs, ABlockedReadNamesItsDescriptor) {
  // A php-fpm worker waiting for the next request on a kept-alive connection (fd 5), as /proc/PID/syscall shows it.
  std::string read = std::to_string(SYS_read) + " 0x5 0x7ffd1c2e4a10 0x8 0x0 0x0 0x0 0x7ffd1c2e49f8 0x7f0e5b8f1992";
  EXPECT_EQ(parse_blocked_read_fd(read), 5);
  std::string recv = std::to_string(SYS_recvfrom) + " 0x1f 0x55d0 0x1000 0x0 0x0 0x0 0x7ffd 0x7f0e";
  EXPECT_EQ(parse_blocked_read_fd(recv), 31);
  // Waiting in accept() (an idle worker), running, or garbage: no connection it waits to read.
  EXPECT_EQ(parse_blocked_read_fd(std::to_string(SYS_accept) + " 0x0 0x7ffd 0x7ffd 0x0 0x0 0x0 0x7ffd 0x7f0e"),
            std::nullopt);
  EXPECT_EQ(parse_blocked_read_fd("running"), std::nullopt);
  EXPECT_EQ(parse_blocked_read_fd(""), std::nullopt);
  EXPECT_EQ(parse_blocked_read_fd(std::to_string(SYS_read) + " 5"), std::nullopt);
  EXPECT_EQ(parse_blocked_read_fd(std::to_string(SYS_read) + " 0xzz"), std::nullopt);
  EXPECT_EQ(parse_blocked_read_fd(std::to_string(SYS_read) + " 0xffffffffff"), std::nullopt);
}

}  // namespace
}  // namespace idlepool::wire
