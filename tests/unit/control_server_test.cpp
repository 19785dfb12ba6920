// The control socket's door: root always, control-group's members through an ACL entry (no chown, so the daemon
// needs no CAP_CHOWN), nobody else; and every request names its sender (SO_PEERCRED) to the handler.
#include "control_server.h"

#include <grp.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace idlepool::daemon {
namespace {

using namespace std::chrono_literals;

constexpr gid_t kGroup = 4242;  // control-group
constexpr uid_t kMember = 4242, kStranger = 4243;

// A child that becomes `uid` (in `groups`), connects to `path` and asks for the status. Its exit status: 0 answered,
// 2 refused at connect (EACCES), 1 anything else.
pid_t ask_as(const std::string& path, uid_t uid, gid_t gid, std::vector<gid_t> groups) {
  pid_t child = ::fork();
  if (child != 0) return child;
  if (::setgroups(groups.size(), groups.data()) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) _exit(1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof(sun)) != 0) _exit(errno == EACCES ? 2 : 1);
  const char request[] = "{\"version\":1,\"verb\":\"status\"}\n";
  if (::send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof(request) - 1)) _exit(1);
  char reply[256];
  ssize_t n = ::recv(fd, reply, sizeof(reply) - 1, 0);
  if (n <= 0) _exit(1);
  reply[n] = '\0';
  _exit(std::strstr(reply, "\"ok\":true") != nullptr ? 0 : 1);
}

// Runs the loop until `child` exits (10 s at most); its exit status, or -1.
int serve_until_exit(EventLoop& loop, pid_t child) {
  for (int i = 0; i < 200; ++i) {
    EXPECT_TRUE(loop.run_once(50ms));
    int status = 0;
    if (::waitpid(child, &status, WNOHANG) == child) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  return -1;
}

TEST(ControlServer, TheGroupGetsInByAnAclAndStrangersDoNot) {
  if (::getuid() != 0) GTEST_SKIP() << "other users' connections need root to make";
  auto loop = EventLoop::create().value();
  // tmpfs, as /run is (with POSIX ACLs).
  std::string path = "/dev/shm/idlepool-control-" + std::to_string(::getpid()) + ".sock";
  std::vector<uint32_t> askers;
  auto server = ControlServer::open(path, kGroup, *loop, [&](const wire::ControlRequest&, const Peer& peer) {
    askers.push_back(peer.uid.value_or(~0u));
    wire::ControlResponse ok;
    ok.result = nlohmann::json::object();
    return ok;
  });
  ASSERT_TRUE(server) << server.error().message;
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u) << "no chown: the group is an ACL entry";
  EXPECT_EQ(st.st_mode & 0007, 0u) << "others get nothing";

  EXPECT_EQ(serve_until_exit(*loop, ask_as(path, kMember, kMember, {kGroup})), 0) << "a member (supplementary group)";
  EXPECT_EQ(serve_until_exit(*loop, ask_as(path, kMember, kGroup, {})), 0) << "a member (primary group)";
  EXPECT_EQ(serve_until_exit(*loop, ask_as(path, kStranger, kStranger, {})), 2) << "a stranger is refused at connect";
  EXPECT_EQ(askers, (std::vector<uint32_t>{kMember, kMember})) << "each request came with its sender's uid";
  server->reset();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "the socket is removed with its server";
}

TEST(ControlServer, WithoutAGroupOnlyRootGetsIn) {
  if (::getuid() != 0) GTEST_SKIP() << "other users' connections need root to make";
  auto loop = EventLoop::create().value();
  std::string path = "/dev/shm/idlepool-control-" + std::to_string(::getpid()) + "-root.sock";
  auto server = ControlServer::open(path, std::nullopt, *loop, [&](const wire::ControlRequest&, const Peer&) {
    wire::ControlResponse ok;
    ok.result = nlohmann::json::object();
    return ok;
  });
  ASSERT_TRUE(server) << server.error().message;
  EXPECT_EQ(serve_until_exit(*loop, ask_as(path, kMember, kGroup, {kGroup})), 2);
  EXPECT_EQ(serve_until_exit(*loop, ask_as(path, 0, 0, {})), 0);
}

}  // namespace
}  // namespace idlepool::daemon
