// The probe's loader and map owner. The only translation unit that includes the skeleton.
#include "idlepool/sys/probe.h"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/capability.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "idlepool.skel.h"
#include "idlepool/probe_abi.h"
#include "idlepool/sys/sock_diag.h"
#include "listener_match.h"

static_assert(sizeof(idlepool_listener_stats) == 48, "ABI: idlepool_listener_stats layout changed");
static_assert(sizeof(idlepool_conn) == 32, "ABI: idlepool_conn layout changed");
static_assert(sizeof(idlepool_tcp_key) == 24, "ABI: idlepool_tcp_key layout changed");
static_assert(sizeof(idlepool_first_use) == 24, "ABI: idlepool_first_use layout changed");

namespace idlepool::sys {
namespace {

// ---- libbpf ownership -----------------------------------------------------------------------------------------

struct SkeletonDeleter {
  void operator()(idlepool_bpf* skel) const { idlepool_bpf__destroy(skel); }
};
using Skeleton = std::unique_ptr<idlepool_bpf, SkeletonDeleter>;

struct LinkDeleter {
  void operator()(bpf_link* link) const { bpf_link__destroy(link); }
};
using Link = std::unique_ptr<bpf_link, LinkDeleter>;

struct BtfDeleter {
  void operator()(btf* b) const { btf__free(b); }
};
using Btf = std::unique_ptr<btf, BtfDeleter>;

// Collects what libbpf prints while a tier is tried, so that a failure can say why in one line instead of libbpf's
// default stderr noise. libbpf's print hook is process-wide; the collector is per thread and scoped.
class LibbpfLog {
 public:
  LibbpfLog() : previous_(libbpf_set_print(&LibbpfLog::print)) { current_ = this; }
  ~LibbpfLog() {
    libbpf_set_print(previous_);
    current_ = nullptr;
  }
  LibbpfLog(const LibbpfLog&) = delete;
  LibbpfLog& operator=(const LibbpfLog&) = delete;

  // The most specific line: the first warning that says something failed, else the last warning.
  std::string reason() const {
    for (const auto& l : warnings_)
      if (l.find("fail") != std::string::npos || l.find("error") != std::string::npos) return l;
    return warnings_.empty() ? std::string() : warnings_.back();
  }
  void clear() { warnings_.clear(); }

 private:
  static int print(enum libbpf_print_level level, const char* fmt, va_list args) {
    if (level == LIBBPF_DEBUG || current_ == nullptr) return 0;
    char line[512];
    vsnprintf(line, sizeof(line), fmt, args);
    std::string s(line);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (s.rfind("libbpf: ", 0) == 0) s.erase(0, 8);
    if (!s.empty()) current_->warnings_.push_back(s);
    return 0;
  }

  static thread_local LibbpfLog* current_;
  libbpf_print_fn_t previous_;
  std::vector<std::string> warnings_;
};
thread_local LibbpfLog* LibbpfLog::current_ = nullptr;

// ---- tiers ------------------------------------------------------------------------------------------------------

// A tier: its programs (the skeleton's own fields, never looked up by name) and what it counts.
struct TierPlan {
  Tier tier;
  std::vector<bpf_program*> (*programs)(const idlepool_bpf* skel);
  Tier accepts, requests, unix_closes;
};

// Closes: TCP through inet_sock_set_state in every tier; unix only where unix_release_sock can be hooked.
const TierPlan kFentryPlan{
    Tier::kFentry,
    [](const idlepool_bpf* s) {
      return std::vector<bpf_program*>{
          s->progs.fexit_inet_accept,   s->progs.fexit_unix_accept,  s->progs.fexit_tcp_recvmsg,
          s->progs.fexit_unix_recvmsg,  s->progs.fentry_tcp_sendmsg, s->progs.fentry_unix_sendmsg,
          s->progs.fentry_unix_release, s->progs.tp_inet_set_state,  s->progs.iter_unix_listeners};
    },
    Tier::kFentry, Tier::kFentry, Tier::kFentry};
const TierPlan kSockPlan{Tier::kSock,
                         [](const idlepool_bpf* s) {
                           return std::vector<bpf_program*>{s->progs.tp_inet_set_state, s->progs.tp_sk_data_ready,
                                                            s->progs.tp_sock_recv, s->progs.tp_sock_send,
                                                            s->progs.iter_unix_listeners};
                         },
                         Tier::kSock, Tier::kSock, Tier::kUnavailable};
const TierPlan kSyscallPlan{Tier::kSyscall,
                            [](const idlepool_bpf* s) {
                              return std::vector<bpf_program*>{s->progs.tp_exit_accept, s->progs.tp_exit_accept4,
                                                               s->progs.tp_inet_set_state,
                                                               s->progs.iter_unix_listeners};
                            },
                            Tier::kSyscall, Tier::kUnavailable, Tier::kUnavailable};

// Kernel functions and tracepoints each tier hooks, checked in the kernel's BTF before trying to load, so that the
// reason a tier is passed over names what is missing.
struct Requirement {
  const char* btf_name;
  int kind;
  const char* what;
};

std::vector<Requirement> requirements(Tier tier) {
  switch (tier) {
    case Tier::kFentry:
      return {{"inet_accept", BTF_KIND_FUNC, "function inet_accept"},
              {"unix_accept", BTF_KIND_FUNC, "function unix_accept"},
              {"tcp_recvmsg", BTF_KIND_FUNC, "function tcp_recvmsg"},
              {"unix_stream_recvmsg", BTF_KIND_FUNC, "function unix_stream_recvmsg"},
              {"tcp_sendmsg", BTF_KIND_FUNC, "function tcp_sendmsg"},
              {"unix_stream_sendmsg", BTF_KIND_FUNC, "function unix_stream_sendmsg"},
              {"unix_release_sock", BTF_KIND_FUNC, "function unix_release_sock"},
              {"btf_trace_inet_sock_set_state", BTF_KIND_TYPEDEF, "tracepoint sock:inet_sock_set_state"},
              {"bpf_iter__unix", BTF_KIND_STRUCT, "BPF unix socket iterator (Linux 5.17+)"}};
    case Tier::kSock:
      return {{"btf_trace_inet_sock_set_state", BTF_KIND_TYPEDEF, "tracepoint sock:inet_sock_set_state"},
              {"btf_trace_sk_data_ready", BTF_KIND_TYPEDEF, "tracepoint sock:sk_data_ready (Linux 6.3+)"},
              {"btf_trace_sock_recv_length", BTF_KIND_TYPEDEF, "tracepoint sock:sock_recv_length (Linux 6.3+)"},
              {"btf_trace_sock_send_length", BTF_KIND_TYPEDEF, "tracepoint sock:sock_send_length (Linux 6.3+)"},
              {"bpf_iter__unix", BTF_KIND_STRUCT, "BPF unix socket iterator (Linux 5.17+)"}};
    case Tier::kSyscall:
      return {{"btf_trace_inet_sock_set_state", BTF_KIND_TYPEDEF, "tracepoint sock:inet_sock_set_state"},
              {"bpf_iter__unix", BTF_KIND_STRUCT, "BPF unix socket iterator (Linux 5.17+)"}};
    case Tier::kUnavailable:
      break;
  }
  return {};
}

bool has_capability(int cap) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[cap / 32].effective & (1u << (cap % 32))) != 0;
}

struct Loaded {
  Skeleton skel;
  std::vector<Link> links;
  bpf_link* unix_iter = nullptr;  // owned by `links`
};

Result<Loaded> try_tier(const TierPlan& plan, const ProbeOptions& options, const btf* kernel_btf) {
  for (const auto& req : requirements(plan.tier)) {
    if (btf__find_by_name_kind(kernel_btf, req.btf_name, req.kind) < 0)
      return Error{"the kernel has no " + std::string(req.what), ENOENT};
  }
  LibbpfLog log;
  LIBBPF_OPTS(bpf_object_open_opts, open_opts);
  if (options.btf_path != "/sys/kernel/btf/vmlinux") open_opts.btf_custom_path = options.btf_path.c_str();
  Skeleton skel(idlepool_bpf__open_opts(&open_opts));
  if (!skel) return Error::from_errno("cannot open the probe object", errno);
  // Only the tier's programs are loaded; every other one is left out of the kernel altogether.
  const std::vector<bpf_program*> wanted = plan.programs(skel.get());
  bpf_program* prog = nullptr;
  bpf_object__for_each_program(prog, skel->obj) {
    bpf_program__set_autoload(prog, std::find(wanted.begin(), wanted.end(), prog) != wanted.end());
  }
  skel->rodata->accept_on_first_sight = plan.tier == Tier::kFentry;
  if (int err = idlepool_bpf__load(skel.get()); err != 0) {
    std::string why = log.reason();
    return Error{"load failed: " + std::string(std::strerror(-err)) + (why.empty() ? "" : " (" + why + ")"), -err};
  }
  Loaded loaded{std::move(skel), {}};
  // Every program attached, or the tier fails: a probe with a hook missing would count wrong, silently.
  for (bpf_program* p : plan.programs(loaded.skel.get())) {
    const char* name = bpf_program__name(p);
    log.clear();
    Link link(bpf_program__attach(p));
    if (!link) {
      int err = errno;
      std::string why = log.reason();
      return Error{
          "attaching " + std::string(name) + " failed: " + std::strerror(err) + (why.empty() ? "" : " (" + why + ")"),
          err};
    }
    if (p == loaded.skel->progs.iter_unix_listeners) loaded.unix_iter = link.get();
    loaded.links.push_back(std::move(link));
  }
  if (!loaded.unix_iter) return Error{"the unix socket iterator was not attached", ENOENT};
  return loaded;
}

// ---- registration -----------------------------------------------------------------------------------------------

constexpr uint32_t kTcpDumpStates =
    (1u << wire::kTcpListen) | (1u << wire::kTcpEstablished) | (1u << wire::kTcpCloseWait);
constexpr uint32_t kUnixDumpStates = (1u << wire::kTcpListen) | (1u << wire::kTcpEstablished);

struct Registration {
  SocketAddress address;
  SocketAddress bound;
  bool listening = false;
  uint64_t cookie = 0;
  uint32_t inode = 0;
  bool v6only = false;
  // Unix: the file it is bound to, (ino, dev) as sock_diag says; its accepted connections report the same.
  std::optional<std::pair<uint64_t, uint32_t>> unix_file;
  // Counts of earlier sockets at this address (the socket unit was restarted), carried forward.
  uint64_t base_accepts = 0, base_requests = 0, base_closes = 0, base_activity_ns = 0;
  uint64_t reported_accepts = 0;  // sock tier: derived accepts never go backwards
};

// An accepted connection as sock_diag shows it: its cookie (the probe's key), inode, and bytes waiting each way.
struct Connection {
  uint64_t cookie = 0;
  uint32_t inode = 0;
  uint32_t rqueue = 0;  // received, not yet read by the server
  uint32_t wqueue = 0;  // sent, not yet taken by the client (unix) or acknowledged (TCP)
};

struct KernelEntry {
  int refs = 0;
  bool tcp = false;
  idlepool_tcp_key tcp_key{};
};

SocketAddress bound_of(const wire::InetSocketInfo& s) {
  SocketAddress a;
  a.kind = SocketAddress::Kind::kTcp;
  a.ip = s.local_ip;
  a.ipv4 = s.family == AF_INET;
  a.port = s.local_port;
  return a;
}

SocketAddress bound_of(const wire::UnixSocketInfo& s) {
  SocketAddress a;
  a.kind = SocketAddress::Kind::kUnix;
  a.path = s.name;
  a.abstract = s.abstract;
  return a;
}

// What one read sees of the host's sockets.
struct SocketView {
  std::vector<wire::InetSocketInfo> tcp;
  std::vector<wire::UnixSocketInfo> unix_sockets;
};

}  // namespace

std::string_view to_string(Tier tier) {
  switch (tier) {
    case Tier::kFentry:
      return "fentry";
    case Tier::kSock:
      return "sock";
    case Tier::kSyscall:
      return "syscall";
    case Tier::kUnavailable:
      return "unavailable";
  }
  return "unavailable";
}

Result<TierChoice> parse_tier_choice(std::string_view text) {
  if (text == "auto") return TierChoice::kAuto;
  if (text == "fentry") return TierChoice::kFentry;
  if (text == "sock") return TierChoice::kSock;
  if (text == "syscall") return TierChoice::kSyscall;
  return Error{"unknown tier '" + std::string(text) + "': expected auto, fentry, sock or syscall"};
}

class Probe::Impl {
 public:
  Impl(Loaded loaded, TierReport report, SockDiag diag, uint32_t netns, ProbeOptions options)
      : loaded_(std::move(loaded)),
        report_(std::move(report)),
        diag_(std::move(diag)),
        netns_(netns),
        options_(std::move(options)) {}

  const TierReport& tiers() const { return report_; }

  Result<ListenerId> add(const SocketAddress& address) {
    auto view = dump(address.is_tcp(), address.is_unix());
    if (!view) return view.error();
    return add_in(address, *view);
  }

  // One socket dump and one run of the unix iterator for the whole batch (a thousand pools at start: one pass each,
  // not a thousand).
  std::vector<Result<ListenerId>> add_many(const std::vector<SocketAddress>& addresses) {
    bool tcp = false, unix_sockets = false;
    for (const auto& a : addresses) (a.is_tcp() ? tcp : unix_sockets) = true;
    std::vector<Result<ListenerId>> out;
    out.reserve(addresses.size());
    auto view = dump(tcp, unix_sockets);
    batching_ = true;
    learn_pending_ = false;
    for (const auto& a : addresses) out.push_back(view ? add_in(a, *view) : Result<ListenerId>(view.error()));
    batching_ = false;
    if (learn_pending_) {
      if (auto learnt = learn_unix_listeners(); !learnt) {
        for (size_t i = 0; i < out.size(); ++i)
          if (out[i] && addresses[i].is_unix()) {
            (void)remove(*out[i]);
            out[i] = learnt.error();
          }
      }
    }
    return out;
  }

  Result<ListenerId> add_in(const SocketAddress& address, const SocketView& view) {
    Registration reg;
    reg.address = address;
    if (!resolve(reg, view))
      return Error{"no listening socket at " + address.to_string() +
                       (address.is_tcp() ? " (no TCP listener on that address and port)"
                                         : " (no listening unix stream socket bound to that path)"),
                   ENOENT};
    if (auto r = retain(reg, view); !r) return r.error();
    ListenerId id = next_id_++;
    regs_.emplace(id, std::move(reg));
    return id;
  }

  void rearm(ListenerId id) {
    auto it = regs_.find(id);
    if (it == regs_.end() || !it->second.listening) return;
    bpf_map__delete_elem(loaded_.skel->maps.first_use, &it->second.cookie, sizeof(it->second.cookie), 0);
  }

  Result<void> remove(ListenerId id) {
    auto it = regs_.find(id);
    if (it == regs_.end()) return Error{"no registered listener with id " + std::to_string(id), ENOENT};
    if (it->second.listening) release(it->second.cookie);
    regs_.erase(it);
    return {};
  }

  Result<std::vector<ListenerSnapshot>> read() {
    bool tcp = false, unix_sockets = false;
    for (const auto& [id, reg] : regs_) (reg.address.is_tcp() ? tcp : unix_sockets) = true;
    auto view = dump(tcp, unix_sockets);
    if (!view) return view.error();
    follow_replaced_listeners(*view);
    std::vector<TcpListenerRef> tcp_refs;
    std::vector<ListenerId> tcp_ids;
    for (const auto& [id, reg] : regs_) {
      if (!reg.address.is_tcp() || !reg.listening) continue;
      tcp_refs.push_back(tcp_ref(reg));
      tcp_ids.push_back(id);
    }
    std::map<ListenerId, std::vector<Connection>> tcp_conns;
    std::map<uint64_t, const wire::InetSocketInfo*> tcp_listeners;
    for (const auto& s : view->tcp) {
      if (s.state == wire::kTcpListen) {
        tcp_listeners[s.cookie] = &s;
        continue;
      }
      int i = attribute_tcp_connection(s, tcp_refs);
      if (i >= 0) tcp_conns[tcp_ids[static_cast<size_t>(i)]].push_back({s.cookie, s.inode, s.rqueue, s.wqueue});
    }
    std::map<uint64_t, const wire::UnixSocketInfo*> unix_listeners;
    for (const auto& s : view->unix_sockets)
      if (s.state == wire::kTcpListen) unix_listeners[s.cookie] = &s;

    std::vector<ListenerSnapshot> out;
    out.reserve(regs_.size());
    for (auto& [id, reg] : regs_) {
      ListenerSnapshot snap;
      snap.id = id;
      snap.address = reg.address;
      snap.bound = reg.bound;
      snap.listening = reg.listening;
      snap.cookie = reg.cookie;
      snap.inode = reg.inode;
      snap.unix_file = reg.unix_file;
      idlepool_listener_stats stats{};
      if (reg.listening) {
        stats = kernel_stats(reg.cookie);
        std::vector<Connection> conns;
        if (reg.address.is_tcp()) {
          auto l = tcp_listeners.find(reg.cookie);
          snap.backlog = l != tcp_listeners.end() ? l->second->rqueue : 0;
          conns = std::move(tcp_conns[id]);
        } else {
          auto l = unix_listeners.find(reg.cookie);
          snap.backlog = l != unix_listeners.end() ? l->second->rqueue : 0;
          conns = unix_accepted(reg, *view);
        }
        // TCP: the established connections include those still queued (sock_diag cannot tell them apart).
        uint32_t accepted = static_cast<uint32_t>(conns.size());
        if (reg.address.is_tcp()) accepted = accepted > snap.backlog ? accepted - snap.backlog : 0;
        uint64_t last_send = classify(conns, snap);
        snap.active = accepted;
        stats.last_activity_ns = std::max<uint64_t>(stats.last_activity_ns, last_send);
      }
      uint64_t accepts = current_accepts(stats, snap.backlog);
      snap.accepts = std::max(reg.reported_accepts, reg.base_accepts + accepts);
      reg.reported_accepts = snap.accepts;
      if (report_.requests != Tier::kUnavailable) snap.requests = reg.base_requests + stats.requests;
      Tier closes_tier = reg.address.is_tcp() ? report_.tcp_closes : report_.unix_closes;
      if (closes_tier != Tier::kUnavailable) snap.closes = reg.base_closes + stats.closes;
      snap.last_activity_ns = std::max<uint64_t>(reg.base_activity_ns, stats.last_activity_ns);
      if (reg.listening) {
        idlepool_first_use first{};
        if (bpf_map__lookup_elem(loaded_.skel->maps.first_use, &reg.cookie, sizeof(reg.cookie), &first, sizeof(first),
                                 0) == 0) {
          snap.first_use_ns = first.use_ns;
          snap.first_arrival_ns = first.arrival_ns;
          snap.first_response_ns = first.response_ns;
        }
      }
      out.push_back(std::move(snap));
    }
    return out;
  }

 private:
  Result<SocketView> dump(bool tcp, bool unix_sockets) {
    SocketView view;
    if (tcp) {
      for (uint8_t family : {uint8_t{AF_INET}, uint8_t{AF_INET6}}) {
        auto sockets = diag_.dump_tcp(family, kTcpDumpStates);
        if (!sockets) return sockets.error();
        view.tcp.insert(view.tcp.end(), sockets->begin(), sockets->end());
      }
    }
    if (unix_sockets) {
      auto sockets = diag_.dump_unix(kUnixDumpStates);
      if (!sockets) return sockets.error();
      view.unix_sockets = std::move(*sockets);
    }
    return view;
  }

  // Finds the listener of reg.address in `view` and fills reg; false if there is none.
  // Finds the listener of reg.address in `view` that idlepool may trust (ListenerTrust) and fills reg; false if
  // there is none.
  bool resolve(Registration& reg, const SocketView& view) const {
    ListenerTrust trust;
    trust.owner_uid = options_.trusted_owner;
    if (reg.address.is_tcp()) {
      const auto* l = match_tcp_listener(reg.address, view.tcp, trust);
      if (l == nullptr) return false;
      reg.bound = bound_of(*l);
      reg.cookie = l->cookie;
      reg.inode = l->inode;
      reg.v6only = l->v6only;
    } else {
      if (!reg.address.abstract) trust.unix_file = socket_file_at(reg.address.path);
      const auto* l = match_unix_listener(reg.address, view.unix_sockets, trust);
      if (l == nullptr) return false;
      reg.bound = bound_of(*l);
      reg.cookie = l->cookie;
      reg.inode = l->inode;
      if (l->has_vfs) reg.unix_file = std::pair{l->vfs_ino, l->vfs_dev};
    }
    reg.listening = true;
    return true;
  }

  // A registered listener whose socket is gone was replaced (socket unit restarted) or is not listening now.
  void follow_replaced_listeners(const SocketView& view) {
    std::set<uint64_t> live;
    for (const auto& s : view.tcp)
      if (s.state == wire::kTcpListen) live.insert(s.cookie);
    for (const auto& s : view.unix_sockets)
      if (s.state == wire::kTcpListen) live.insert(s.cookie);
    for (auto& [id, reg] : regs_) {
      if (reg.listening && live.count(reg.cookie)) continue;
      if (reg.listening) {
        // Carry the old socket's counts forward before forgetting it.
        auto stats = kernel_stats(reg.cookie);
        reg.base_accepts = std::max(reg.reported_accepts, reg.base_accepts + current_accepts(stats, 0));
        reg.base_requests += stats.requests;
        reg.base_closes += stats.closes;
        reg.base_activity_ns = std::max<uint64_t>(reg.base_activity_ns, stats.last_activity_ns);
        release(reg.cookie);
        reg.listening = false;
        reg.cookie = 0;
        reg.inode = 0;
      }
      Registration next = reg;
      next.unix_file.reset();
      if (resolve(next, view) && retain(next, view)) reg = next;
    }
  }

  // Accepted unix connections of the listener `listener_cookie` bound to `bound`: they share its name. Connections
  // still queued are told apart by their peer, which the listener lists among its queued peers.
  // Accepted unix connections of `reg`'s listener: they are bound to its file (or, where the kernel does not say,
  // share its name). A same-named socket another mount namespace bound has another file, and its connections are
  // not this pool's. Connections still queued are told apart by their peer, which the listener lists.
  static bool belongs_to(const wire::UnixSocketInfo& s, const Registration& reg) {
    if (s.state != wire::kTcpEstablished || !s.has_name || s.abstract != reg.bound.abstract) return false;
    if (reg.unix_file) return s.has_vfs && s.vfs_ino == reg.unix_file->first && s.vfs_dev == reg.unix_file->second;
    return s.name == reg.bound.path;
  }

  static std::vector<Connection> unix_accepted(const Registration& reg, const SocketView& view) {
    std::set<uint32_t> queued;
    for (const auto& s : view.unix_sockets)
      if (s.state == wire::kTcpListen && s.cookie == reg.cookie)
        queued.insert(s.queued_peers.begin(), s.queued_peers.end());
    std::vector<Connection> out;
    for (const auto& s : view.unix_sockets)
      if (belongs_to(s, reg) && !queued.count(s.peer_inode)) out.push_back({s.cookie, s.inode, s.rqueue, s.wqueue});
    return out;
  }

  // Lists the connections among `conns` that the server answered on, with no byte waiting either way, into
  // snap.answered. Returns the latest send on any of them (an open connection's long response ends at its last send).
  uint64_t classify(const std::vector<Connection>& conns, ListenerSnapshot& snap) const {
    uint64_t last_send = 0;
    for (const auto& c : conns) {
      idlepool_conn conn{};
      if (bpf_map__lookup_elem(loaded_.skel->maps.conns, &c.cookie, sizeof(c.cookie), &conn, sizeof(conn), 0) != 0)
        continue;
      last_send = std::max<uint64_t>(last_send, conn.last_send_ns);
      if ((conn.flags & IDLEPOOL_CONN_RESPONDED) && c.rqueue == 0 && c.wqueue == 0)
        snap.answered.push_back({c.inode, conn.recv_since_send});
    }
    return last_send;
  }

  uint64_t current_accepts(const idlepool_listener_stats& stats, uint32_t backlog) const {
    if (report_.accepts != Tier::kSock) return stats.accepts;
    // Sock tier: every arrival is accepted or still waiting in the backlog.
    return stats.arrivals > backlog ? stats.arrivals - backlog : 0;
  }

  idlepool_listener_stats kernel_stats(uint64_t cookie) const {
    idlepool_listener_stats stats{};
    if (bpf_map__lookup_elem(loaded_.skel->maps.listeners, &cookie, sizeof(cookie), &stats, sizeof(stats), 0) != 0)
      return idlepool_listener_stats{};
    return stats;
  }

  // Starts counting on reg's socket (once per socket, however many ids refer to it).
  Result<void> retain(const Registration& reg, const SocketView& view) {
    auto& entry = kernel_[reg.cookie];
    if (entry.refs++ > 0) return {};
    idlepool_listener_stats stats{};
    stats.abi_version = IDLEPOOL_PROBE_ABI_VERSION;
    stats.kind = reg.address.is_tcp() ? IDLEPOOL_KIND_TCP : IDLEPOOL_KIND_UNIX;
    // Connections already queued have arrived: accepts derived as arrivals - backlog start at 0.
    stats.arrivals = backlog_of(reg.cookie, view);
    if (bpf_map__update_elem(loaded_.skel->maps.listeners, &reg.cookie, sizeof(reg.cookie), &stats, sizeof(stats),
                             BPF_ANY) != 0) {
      int err = errno;
      kernel_.erase(reg.cookie);
      return Error::from_errno("cannot register " + reg.address.to_string() + " with the probe", err);
    }
    if (reg.address.is_tcp()) {
      entry.tcp = true;
      entry.tcp_key.netns_ino = netns_;
      entry.tcp_key.port = reg.bound.port;
      std::memcpy(entry.tcp_key.addr, reg.bound.ip.data(), 16);
      if (bpf_map__update_elem(loaded_.skel->maps.tcp_listeners, &entry.tcp_key, sizeof(entry.tcp_key), &reg.cookie,
                               sizeof(reg.cookie), BPF_ANY) != 0) {
        int err = errno;
        entry.tcp = false;  // not in the map: nothing of it to delete
        release(reg.cookie);
        return Error::from_errno("cannot register " + reg.address.to_string() + " with the probe", err);
      }
      adjust_port(reg.bound.port, +1);
    } else if (batching_) {
      learn_pending_ = true;  // add_many() runs the iterator once for the whole batch
    } else if (auto learnt = learn_unix_listeners(); !learnt) {
      release(reg.cookie);
      return learnt;
    }
    adopt_existing_connections(reg, view);
    return {};
  }

  static uint32_t backlog_of(uint64_t cookie, const SocketView& view) {
    for (const auto& s : view.tcp)
      if (s.state == wire::kTcpListen && s.cookie == cookie) return s.rqueue;
    for (const auto& s : view.unix_sockets)
      if (s.state == wire::kTcpListen && s.cookie == cookie) return s.rqueue;
    return 0;
  }

  // Lists the connections `reg`'s socket already has, so that the probe neither takes them for new accepts nor
  // misses their requests.
  void adopt_existing_connections(const Registration& reg, const SocketView& view) {
    idlepool_conn conn{};
    conn.listener_cookie = reg.cookie;
    conn.phase = IDLEPOOL_CONN_NEW;
    // Accepted or still queued: sock_diag cannot tell for TCP; taken as accepted, so none is counted as new.
    conn.flags = IDLEPOOL_CONN_ACCEPTED;
    auto adopt = [&](uint64_t cookie) {
      bpf_map__update_elem(loaded_.skel->maps.conns, &cookie, sizeof(cookie), &conn, sizeof(conn), BPF_NOEXIST);
    };
    if (reg.address.is_tcp()) {
      std::vector<TcpListenerRef> refs{tcp_ref(reg)};
      for (const auto& [id, other] : regs_)
        if (other.listening && other.address.is_tcp() && other.cookie != reg.cookie) refs.push_back(tcp_ref(other));
      for (const auto& s : view.tcp)
        if (s.state != wire::kTcpListen && attribute_tcp_connection(s, refs) == 0) adopt(s.cookie);
    } else {
      for (const auto& s : view.unix_sockets)
        if (belongs_to(s, reg)) adopt(s.cookie);
    }
  }

  // Runs the unix socket iterator, which records the address of every registered unix listener.
  Result<void> learn_unix_listeners() {
    UniqueFd iter(bpf_iter_create(bpf_link__fd(loaded_.unix_iter)));
    if (!iter.valid()) return Error::from_errno("cannot run the unix socket iterator", errno);
    char buf[256];
    ssize_t n;
    while ((n = ::read(iter.get(), buf, sizeof(buf))) > 0) {
    }
    if (n < 0) return Error::from_errno("unix socket iterator failed", errno);
    return {};
  }

  static TcpListenerRef tcp_ref(const Registration& reg) {
    return {reg.bound.ip, reg.bound.port, reg.bound.is_wildcard(), reg.bound.ipv4, reg.v6only};
  }

  void release(uint64_t cookie) {
    auto it = kernel_.find(cookie);
    if (it == kernel_.end() || --it->second.refs > 0) return;
    bpf_map__delete_elem(loaded_.skel->maps.listeners, &cookie, sizeof(cookie), 0);
    bpf_map__delete_elem(loaded_.skel->maps.first_use, &cookie, sizeof(cookie), 0);
    if (it->second.tcp) {
      bpf_map__delete_elem(loaded_.skel->maps.tcp_listeners, &it->second.tcp_key, sizeof(it->second.tcp_key), 0);
      adjust_port(it->second.tcp_key.port, -1);
    }
    delete_where<uint64_t>(loaded_.skel->maps.unix_addrs, cookie, [](const uint64_t& v) { return v; });
    delete_where<idlepool_conn>(loaded_.skel->maps.conns, cookie,
                                [](const idlepool_conn& c) { return uint64_t{c.listener_cookie}; });
    kernel_.erase(it);
  }

  void adjust_port(uint16_t port, int delta) {
    uint32_t key = port, count = 0;
    bpf_map__lookup_elem(loaded_.skel->maps.tcp_ports, &key, sizeof(key), &count, sizeof(count), 0);
    count = delta > 0 ? count + 1 : (count > 0 ? count - 1 : 0);
    bpf_map__update_elem(loaded_.skel->maps.tcp_ports, &key, sizeof(key), &count, sizeof(count), BPF_ANY);
  }

  // Deletes every entry of `map` (u64 keys) whose value `owner` says belongs to `cookie`.
  template <class Value>
  static void delete_where(bpf_map* map, uint64_t cookie, uint64_t (*owner)(const Value&)) {
    std::vector<uint64_t> doomed;
    uint64_t key = 0, next = 0;
    const void* prev = nullptr;
    while (bpf_map__get_next_key(map, prev, &next, sizeof(next)) == 0) {
      Value v{};
      if (bpf_map__lookup_elem(map, &next, sizeof(next), &v, sizeof(v), 0) == 0 && owner(v) == cookie)
        doomed.push_back(next);
      key = next;
      prev = &key;
    }
    for (uint64_t k : doomed) bpf_map__delete_elem(map, &k, sizeof(k), 0);
  }

  Loaded loaded_;
  TierReport report_;
  SockDiag diag_;
  uint32_t netns_;
  ProbeOptions options_;
  ListenerId next_id_ = 1;
  bool batching_ = false;       // inside add_many()
  bool learn_pending_ = false;  // a unix listener was added in the batch: the iterator runs once at its end
  std::map<ListenerId, Registration> regs_;
  std::map<uint64_t, KernelEntry> kernel_;
};

Result<std::unique_ptr<Probe>> Probe::load(const ProbeOptions& options) {
  // CAP_BPF is 39 and CAP_PERFMON 38 (Linux 5.8); older headers lack the names.
  constexpr int kCapPerfmon = 38, kCapBpf = 39;
  if (!has_capability(CAP_SYS_ADMIN) && !(has_capability(kCapBpf) && has_capability(kCapPerfmon)))
    return Error{
        "loading the probe needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN); this process has "
        "neither",
        EPERM};
  if (::access(options.btf_path.c_str(), R_OK) != 0)
    return Error{"kernel BTF not found at " + options.btf_path +
                     " (the probe needs a kernel built with CONFIG_DEBUG_INFO_BTF=y)",
                 ENOENT};
  Btf kernel_btf(btf__parse(options.btf_path.c_str(), nullptr));
  if (!kernel_btf)
    return Error{"cannot read kernel BTF from " + options.btf_path + ": " + std::strerror(errno) + " (not a BTF file?)",
                 errno};

  std::vector<const TierPlan*> plans;
  switch (options.tier) {
    case TierChoice::kAuto:
      plans = {&kFentryPlan, &kSockPlan, &kSyscallPlan};
      break;
    case TierChoice::kFentry:
      plans = {&kFentryPlan};
      break;
    case TierChoice::kSock:
      plans = {&kSockPlan};
      break;
    case TierChoice::kSyscall:
      plans = {&kSyscallPlan};
      break;
  }
  TierReport report;
  for (const TierPlan* plan : plans) {
    auto loaded = try_tier(*plan, options, kernel_btf.get());
    if (!loaded) {
      report.passed_over.push_back(std::string(to_string(plan->tier)) + ": " + loaded.error().message);
      continue;
    }
    report.loaded = plan->tier;
    report.accepts = plan->accepts;
    report.requests = plan->requests;
    report.tcp_closes = plan->tier == Tier::kFentry ? Tier::kFentry : Tier::kSock;
    report.unix_closes = plan->unix_closes;
    auto diag = SockDiag::open();
    if (!diag) return diag.error();
    auto netns = current_netns_inode();
    if (!netns) return netns.error();
    return std::unique_ptr<Probe>(
        new Probe(std::make_unique<Impl>(std::move(*loaded), std::move(report), std::move(*diag), *netns, options)));
  }
  std::string message = "cannot load the probe at any tier:";
  for (const auto& p : report.passed_over) message += "\n  " + p;
  return Error{message, ENOTSUP};
}

Probe::Probe(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Probe::~Probe() = default;
const TierReport& Probe::tiers() const { return impl_->tiers(); }
Result<ListenerId> Probe::add(const SocketAddress& address) { return impl_->add(address); }
Result<void> Probe::remove(ListenerId id) { return impl_->remove(id); }
std::vector<Result<ListenerId>> Probe::add_many(const std::vector<SocketAddress>& addresses) {
  return impl_->add_many(addresses);
}
Result<std::vector<ListenerSnapshot>> Probe::read() { return impl_->read(); }
void Probe::rearm(ListenerId id) { impl_->rearm(id); }

}  // namespace idlepool::sys
