#include "idlepool/sys/proc_connector.h"

#include <linux/connector.h>
#include <linux/netlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace idlepool::sys {
namespace {

// Inode numbers of the initial namespaces (include/linux/proc_ns.h): fixed by the kernel.
constexpr ino_t kInitPidNs = 0xEFFFFFFC;
constexpr ino_t kInitUserNs = 0xEFFFFFFD;

std::string libnl_error(int err) { return nl_geterror(err); }

uint64_t now_ms() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

}  // namespace

Result<void> check_initial_namespaces() {
  struct stat pid_ns {
  }, user_ns{};
  if (::stat("/proc/self/ns/pid", &pid_ns) != 0) return Error::from_errno("cannot stat /proc/self/ns/pid", errno);
  if (::stat("/proc/self/ns/user", &user_ns) != 0) return Error::from_errno("cannot stat /proc/self/ns/user", errno);
  if (pid_ns.st_ino != kInitPidNs || user_ns.st_ino != kInitUserNs)
    return Error{"this process is not in the initial pid and user namespaces (pid:[" + std::to_string(pid_ns.st_ino) +
                     "], user:[" + std::to_string(user_ns.st_ino) +
                     "]); the kernel's process connector ignores subscriptions from there, so idlepool would run "
                     "blind: run it on the host, not in a container",
                 EPERM};
  return {};
}

void ProcConnector::SockDeleter::operator()(nl_sock* s) const { nl_socket_free(s); }

ProcConnector::ProcConnector(nl_sock* sock) : sock_(sock) {}

ProcConnector::~ProcConnector() {
  if (subscribed_) (void)close();
}

int ProcConnector::fd() const { return nl_socket_get_fd(sock_.get()); }

Result<std::unique_ptr<ProcConnector>> ProcConnector::open(const ProcConnectorOptions& options) {
  if (auto ns = check_initial_namespaces(); !ns) return ns.error();
  nl_sock* raw = nl_socket_alloc();
  if (raw == nullptr) return Error{"cannot allocate a netlink socket", ENOMEM};
  std::unique_ptr<ProcConnector> pc(new ProcConnector(raw));
  nl_socket_disable_seq_check(raw);
  nl_socket_disable_auto_ack(raw);
  nl_join_groups(raw, 1 << (CN_IDX_PROC - 1));
  if (int err = nl_connect(raw, NETLINK_CONNECTOR); err < 0)
    return Error{"cannot open the process connector (NETLINK_CONNECTOR): " + libnl_error(err), EPROTO};
  // Above net.core.rmem_max only with CAP_NET_ADMIN (SO_RCVBUFFORCE); fall back to what the limit allows.
  int bytes = options.receive_buffer_bytes;
  if (setsockopt(pc->fd(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0)
    setsockopt(pc->fd(), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
  if (int err = nl_socket_set_nonblocking(raw); err < 0)
    return Error{"cannot make the process connector socket non-blocking: " + libnl_error(err), EPROTO};
  pc->seq_ = static_cast<uint32_t>(::getpid()) << 8;
  if (auto r = pc->subscribe(options.subscribe_timeout); !r) return r.error();
  pc->subscribed_ = true;
  return pc;
}

Result<void> ProcConnector::subscribe(std::chrono::milliseconds timeout) {
  const auto op = wire::ProcSubscription::kListen;
  // The acknowledgement carries our ack + 1. (Its seq is ours on old kernels, the sending CPU's counter on new ones.)
  uint32_t seq = ++seq_;
  uint32_t token = seq;
  auto payload = wire::build_proc_subscription(op, seq, token);
  int sent = nl_send_simple(sock_.get(), NLMSG_DONE, 0, payload.data(), static_cast<int>(payload.size()));
  if (sent < 0) return Error{"cannot send to the process connector: " + libnl_error(sent), EPROTO};
  const char* what = "subscription";
  // The acknowledgement comes on the multicast group like any event; events before it are not ours to keep.
  awaiting_ack_ = token + 1;
  awaited_error_.reset();
  uint64_t deadline = now_ms() + static_cast<uint64_t>(timeout.count());
  while (!awaited_error_) {
    uint64_t now = now_ms();
    if (now >= deadline) break;
    pollfd p{fd(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(deadline - now)) <= 0) continue;
    (void)drain([](const wire::ProcEvent&) {});
  }
  awaiting_ack_.reset();
  bool acked = awaited_error_.has_value();
  uint32_t ack_error = awaited_error_.value_or(0);
  if (!acked)
    return Error{std::string("the process connector did not acknowledge the ") + what + " within " +
                     std::to_string(timeout.count()) +
                     " ms (is this process outside the initial pid namespace, or is CONFIG_PROC_EVENTS off?)",
                 ETIMEDOUT};
  if (ack_error != 0)
    return Error::from_errno(
        std::string("the kernel refused the process connector ") + what + " (it needs CAP_NET_ADMIN)",
        static_cast<int>(ack_error));
  return {};
}

Result<void> ProcConnector::close() {
  if (!subscribed_) return {};
  subscribed_ = false;
  // No acknowledgement to wait for: since Linux 6.6 the kernel filters everything, its own acknowledgement
  // included, from a socket that has asked to ignore events.
  uint32_t seq = ++seq_;
  auto payload = wire::build_proc_subscription(wire::ProcSubscription::kIgnore, seq, seq);
  int sent = nl_send_simple(sock_.get(), NLMSG_DONE, 0, payload.data(), static_cast<int>(payload.size()));
  if (sent < 0) return Error{"cannot unsubscribe from the process connector: " + libnl_error(sent), EPROTO};
  return {};
}

void ProcConnector::account(const wire::ProcEvent& ev, bool& lost) {
  auto [it, first] = last_seq_.try_emplace(ev.cpu, ev.seq);
  if (first) return;
  uint32_t gap = ev.seq - it->second - 1;  // modulo 2^32
  // A huge "gap" is a reordering across a wrap, not a loss of billions.
  if (ev.seq != it->second + 1 && gap < (1u << 30)) {
    stats_.lost += gap;
    lost = true;
  }
  it->second = ev.seq;
}

Result<ProcConnector::Drained> ProcConnector::drain(const std::function<void(const wire::ProcEvent&)>& sink) {
  Drained out;
  std::vector<uint8_t> buf(64 * 1024);
  for (;;) {
    sockaddr_nl from{};
    socklen_t from_len = sizeof(from);
    ssize_t n = ::recvfrom(fd(), buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      if (errno == ENOBUFS) {
        ++stats_.overruns;
        out.lost = true;
        continue;
      }
      return Error::from_errno("cannot read the process connector", errno);
    }
    if (from.nl_pid != 0) {
      // Only the kernel speaks on this group; anything else is noise to drop.
      ++stats_.rejected;
      stats_.last_rejection = "message from port " + std::to_string(from.nl_pid) + ", not the kernel";
      continue;
    }
    auto batch = wire::decode_proc_events(std::span<const uint8_t>(buf.data(), static_cast<size_t>(n)));
    for (const auto& r : batch.rejected) {
      ++stats_.rejected;
      stats_.last_rejection = r.reason;
    }
    for (const auto& ev : batch.events) {
      // Since Linux 6.6 acknowledgements take a number in their CPU's sequence like events; before, their CPU is -1.
      if (ev.cpu != UINT32_MAX) account(ev, out.lost);
      if (ev.kind == wire::ProcEvent::Kind::kAck) {
        // Any process can make the kernel send one (a refused subscription is acknowledged too, to every
        // listener): only the one subscribe() waits for is looked at, and only while it waits. Nothing is kept.
        ++stats_.acks;
        if (awaiting_ack_ && ev.ack == *awaiting_ack_) awaited_error_ = ev.ack_error;
        continue;
      }
      ++stats_.events;
      ++out.events;
      sink(ev);
    }
  }
  return out;
}

}  // namespace idlepool::sys
