#include "idlepool/wire/procfs.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace idlepool::wire
