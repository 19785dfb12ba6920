// SPDX-License-Identifier: GPL-2.0
/*
 * idlepool's socket probe: counts accepts, request cycles and closes on registered listening sockets.
 *
 * User space registers a listener by its socket cookie (found by address through sock_diag) in `listeners`, and for
 * TCP also by local address in `tcp_listeners`/`tcp_ports`. The probe recognises the connections a listener hands
 * out, tracks them in `conns` (keyed by their own cookie; cookies are never reused, so a stale entry can never match
 * a new socket) and adds to the listener's counters.
 *
 * Three tiers of hooks; user space loads the cheapest one the running kernel accepts (see src/sys/probe.cpp):
 *   fentry:  fexit inet_accept/unix_accept (exact accepts), fexit tcp_recvmsg/unix_stream_recvmsg and fentry
 *            tcp_sendmsg/unix_stream_sendmsg (request cycles), fentry unix_release_sock and tp_btf inet_sock_set_state
 *            (closes). Only socket operations pay, a trampoline each.
 *   sock:    tp_btf inet_sock_set_state (TCP arrivals and closes), sk_data_ready (unix arrivals), sock_recv_length
 *            and sock_send_length (requests). Accepts are arrivals minus the listener's backlog (user space).
 *            These tracepoints appeared in Linux 6.3.
 *   syscall: tracepoints on accept/accept4 exit, plus inet_sock_set_state for TCP closes. No request counting:
 *            read/write/recv/send syscall tracepoints would tax every syscall of every process.
 *
 * An accept that began before the probe was attached (a worker blocked in accept() while the daemon starts) is not
 * seen by an exit hook of the fentry tier. Such a connection is recognised on first sight instead (its first receive
 * or send) and counted then; connections that already existed at registration are listed in `conns` by user space
 * beforehand, so they are not. The syscall tier recognises the listener from the accepted socket itself, so it needs
 * no entry hook. The unix listeners' addresses are learnt by the `iter/unix` iterator, run by user space at
 * registration.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "idlepool/probe_abi.h"
#include "idlepool.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Set by user space for the fentry tier, whose accept hook misses accepts that began before it was attached. */
const volatile bool accept_on_first_sight = false;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IDLEPOOL_MAX_LISTENERS);
	__type(key, __u64);
	__type(value, struct idlepool_listener_stats);
} listeners SEC(".maps");

/* LRU: the sock tier has no unix close hook, so entries of closed unix connections age out instead. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, IDLEPOOL_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct idlepool_conn);
} conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IDLEPOOL_MAX_LISTENERS);
	__type(key, struct idlepool_tcp_key);
	__type(value, __u64);
} tcp_listeners SEC(".maps");

/* Number of registered TCP listeners per local port: one array load rejects almost every foreign TCP socket before
 * any hash lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u32);
} tcp_ports SEC(".maps");

/* `struct unix_address *` of a registered unix listener -> its cookie; learnt when the probe first sees the
 * listener itself (an arrival or an accept). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IDLEPOOL_MAX_LISTENERS);
	__type(key, __u64);
	__type(value, __u64);
} unix_addrs SEC(".maps");

/* Listener cookie -> its first use, arrival and response since user space deleted the entry (see probe_abi.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, IDLEPOOL_MAX_LISTENERS);
	__type(key, __u64);
	__type(value, struct idlepool_first_use);
} first_use SEC(".maps");

static __always_inline void touch(struct idlepool_listener_stats *stats)
{
	stats->last_activity_ns = bpf_ktime_get_ns();
}

/* The listener's first-events entry, created zeroed when user space has re-armed it. Once it exists (the steady
 * state) this is one lookup. */
static __always_inline struct idlepool_first_use *firsts_of(__u64 listener)
{
	struct idlepool_first_use *f = bpf_map_lookup_elem(&first_use, &listener);
	struct idlepool_first_use zero = {};

	if (f)
		return f;
	bpf_map_update_elem(&first_use, &listener, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&first_use, &listener);
}

/* An accept or a request start: activity, and the first use since the pool was last stopped. */
static __always_inline void used(struct idlepool_listener_stats *stats, __u64 listener)
{
	struct idlepool_first_use *f = firsts_of(listener);
	__u64 now = bpf_ktime_get_ns();

	stats->last_activity_ns = now;
	if (f && !f->use_ns)
		f->use_ns = now;
}

/* A connection reached the listener: activity, and the first arrival since the pool was last stopped. */
static __always_inline void arrived(struct idlepool_listener_stats *stats, __u64 listener)
{
	struct idlepool_first_use *f = firsts_of(listener);
	__u64 now = bpf_ktime_get_ns();

	__sync_fetch_and_add(&stats->arrivals, 1);
	stats->last_activity_ns = now;
	if (f && !f->arrival_ns)
		f->arrival_ns = now;
}

static __always_inline struct idlepool_listener_stats *registered(__u64 cookie)
{
	if (!cookie)
		return NULL;
	return bpf_map_lookup_elem(&listeners, &cookie);
}

static __always_inline __u64 tcp_lookup(struct idlepool_tcp_key *key)
{
	__u64 *listener = bpf_map_lookup_elem(&tcp_listeners, key);

	return listener ? *listener : 0;
}

/* Cookie of the registered TCP listener whose port and address `sk` (an accepted socket) has, or 0. */
static __always_inline __u64 tcp_listener_of(const struct sock *sk, __u16 family, bool direct)
{
	struct idlepool_tcp_key key = {};
	__u32 port = direct ? sk->__sk_common.skc_num : BPF_CORE_READ(sk, __sk_common.skc_num);
	__u32 *nr = bpf_map_lookup_elem(&tcp_ports, &port);
	bool mapped = family == AF_INET;
	__u64 listener;

	if (!nr || !*nr)
		return 0;
	key.netns_ino =
	    direct ? sk->__sk_common.skc_net.net->ns.inum : BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	key.port = port;
	if (family == AF_INET) {
		__be32 v4 = direct ? sk->__sk_common.skc_rcv_saddr : BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);

		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &v4, sizeof(v4));
	} else {
		__u32 *a = (__u32 *)key.addr;

		if (direct) {
			a[0] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[0];
			a[1] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[1];
			a[2] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[2];
			a[3] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[3];
		} else {
			BPF_CORE_READ_INTO(&key.addr, sk, __sk_common.skc_v6_rcv_saddr);
		}
		mapped = !a[0] && !a[1] && a[2] == bpf_htonl(0xffff);
	}
	listener = tcp_lookup(&key);
	if (listener)
		return listener;
	/* Wildcard listeners: 0.0.0.0 for IPv4 (and v4-mapped), then :: (dual-stack IPv6). */
	__builtin_memset(&key.addr[12], 0, 4);
	if (mapped) {
		listener = tcp_lookup(&key);
		if (listener)
			return listener;
	}
	__builtin_memset(&key.addr, 0, sizeof(key.addr));
	return tcp_lookup(&key);
}

/* Cookie of the registered listener that handed out `sk`, or 0 if `sk` is not such a connection. */
static __always_inline __u64 listener_of(const struct sock *sk, bool direct)
{
	__u16 family = sk_family(sk, direct);
	__u64 addr, *listener;

	if (family == AF_UNIX) {
		addr = unix_addr_of(sk, direct);
		if (!addr)
			return 0;
		listener = bpf_map_lookup_elem(&unix_addrs, &addr);
		return listener ? *listener : 0;
	}
	if ((family == AF_INET || family == AF_INET6) && sk_protocol(sk, direct) == IPPROTO_TCP &&
	    sk_state(sk, direct) != TCP_LISTEN)
		return tcp_listener_of(sk, family, direct);
	return 0;
}

/* Starts tracking `sk` as a connection of `listener` (no-op if already tracked). Only for program types where
 * bpf_get_socket_cookie takes a socket pointer (tracing: fentry/fexit/tp_btf); it assigns a cookie if needed. */
static __always_inline struct idlepool_conn *track(struct sock *sk, __u64 listener)
{
	struct idlepool_conn init = {.listener_cookie = listener, .phase = IDLEPOOL_CONN_NEW};
	__u64 cookie = bpf_get_socket_cookie(sk);

	bpf_map_update_elem(&conns, &cookie, &init, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &cookie);
}

/* fentry tier: a connection the server uses whose accept was not counted was accepted by an accept() that began
 * before the probe was attached. Count it now. */
static __always_inline void accepted_on_first_sight(struct idlepool_conn *conn)
{
	struct idlepool_listener_stats *stats;

	if (!accept_on_first_sight || (conn->flags & IDLEPOOL_CONN_ACCEPTED))
		return;
	conn->flags |= IDLEPOOL_CONN_ACCEPTED;
	stats = registered(conn->listener_cookie);
	if (stats) {
		__sync_fetch_and_add(&stats->accepts, 1);
		used(stats, conn->listener_cookie);
	}
}

/* The tracked connection `sk`, recognising it on first sight (connections accepted before the probe was loaded, or
 * unix connections in the sock tier, which has no per-connection arrival hook). */
static __always_inline struct idlepool_conn *conn_of(struct sock *sk)
{
	__u64 cookie = sk_cookie(sk, true);
	struct idlepool_conn *conn = NULL;
	__u64 listener;

	if (cookie)
		conn = bpf_map_lookup_elem(&conns, &cookie);
	if (!conn) {
		listener = listener_of(sk, true);
		if (!listener)
			return NULL;
		conn = track(sk, listener);
		if (!conn)
			return NULL;
	}
	accepted_on_first_sight(conn);
	return conn;
}

/*
 * The end of a connection (its close, the peer's end of stream, a FIN either way). A connection the server has
 * answered on was last active when it last sent: a kept-alive connection that the web server closes after holding it
 * idle is not new activity, and a long response ends when its last byte went out. One that never got an answer (a
 * connect and close, a client that gave up) is dated now; so are all connections where sends are not seen (the
 * syscall tier).
 */
static __always_inline void ended(struct idlepool_conn *conn)
{
	struct idlepool_listener_stats *stats = registered(conn->listener_cookie);

	if (!stats)
		return;
	if (!(conn->flags & IDLEPOOL_CONN_RESPONDED)) {
		touch(stats);
		return;
	}
	if (conn->last_send_ns > stats->last_activity_ns)
		stats->last_activity_ns = conn->last_send_ns;
}

/*
 * Request cycles. A cycle is counted when its response starts: the first send after a receive. Counting at the
 * receive instead would miscount real servers: php-fpm answers before reading the empty FCGI_STDIN record that ends a
 * request, and reads it after the response (draining before close, or at the start of the next kept-alive request),
 * a receive after a send that begins no request. Activity is stamped at every phase change, so a request shows as
 * activity from its first byte. The listener's counters are touched once per phase; each send of a pool's connection
 * reads the clock once more (its `last_send_ns`), other sockets never do.
 */
static __always_inline void on_recv(struct sock *sk, int ret, int flags)
{
	struct idlepool_listener_stats *stats;
	struct idlepool_conn *conn;

	if (ret < 0 || (flags & MSG_PEEK))
		return;
	conn = conn_of(sk);
	if (!conn)
		return;
	if (ret > 0) {
		__u32 total = conn->recv_since_send + (__u32)ret;

		conn->recv_since_send = total < conn->recv_since_send ? ~0U : total;
	}
	if (ret > 0 && conn->phase == IDLEPOOL_CONN_RECEIVING)
		return;
	/* ret == 0 is the peer's end of stream: not a request, and not activity once the server has answered. */
	if (ret == 0) {
		ended(conn);
		return;
	}
	conn->phase = IDLEPOOL_CONN_RECEIVING;
	stats = registered(conn->listener_cookie);
	if (stats)
		used(stats, conn->listener_cookie);
}

static __always_inline void on_send(struct sock *sk, int ret)
{
	struct idlepool_listener_stats *stats;
	struct idlepool_conn *conn;
	bool responding;

	if (ret <= 0)
		return;
	conn = conn_of(sk);
	if (!conn)
		return;
	/* Every send of a pool's connection is dated (the end of a long response is when it went idle); the listener's
	 * counters are only touched at a phase change. */
	conn->last_send_ns = bpf_ktime_get_ns();
	conn->recv_since_send = 0;
	conn->flags |= IDLEPOOL_CONN_RESPONDED;
	if (conn->phase == IDLEPOOL_CONN_SENT)
		return;
	responding = conn->phase == IDLEPOOL_CONN_RECEIVING;
	conn->phase = IDLEPOOL_CONN_SENT;
	stats = registered(conn->listener_cookie);
	if (!stats)
		return;
	touch(stats);
	if (responding) {
		struct idlepool_first_use *f = firsts_of(conn->listener_cookie);

		__sync_fetch_and_add(&stats->requests, 1);
		if (f && !f->response_ns)
			f->response_ns = stats->last_activity_ns;
	}
}

static __always_inline void on_close(const struct sock *sk)
{
	struct idlepool_listener_stats *stats;
	struct idlepool_conn *conn;
	__u64 cookie = sk_cookie(sk, true);

	if (!cookie)
		return;
	conn = bpf_map_lookup_elem(&conns, &cookie);
	if (!conn)
		return;
	stats = registered(conn->listener_cookie);
	if (stats)
		__sync_fetch_and_add(&stats->closes, 1);
	ended(conn);
	bpf_map_delete_elem(&conns, &cookie);
}

static __always_inline void learn_unix_addr(const struct sock *listener_sk, __u64 listener)
{
	__u64 addr = unix_addr_of(listener_sk, true);

	if (addr)
		bpf_map_update_elem(&unix_addrs, &addr, &listener, BPF_ANY);
}

/* ---- fentry tier ------------------------------------------------------------------------------------------- */

/*
 * inet_accept and unix_accept are both proto_ops->accept: (sock, newsock, int flags, bool kern) up to 6.9 and
 * (sock, newsock, struct proto_accept_arg *arg) since 6.10 (commit 92ef0fd55ac8 "net: change proto and proto_ops
 * accept type"). Only the first two arguments are read, and the return value comes from bpf_get_func_ret(), whose
 * position does not depend on the argument count.
 */
static __always_inline int on_accept(void *ctx, struct socket *sock, struct socket *newsock)
{
	struct idlepool_listener_stats *stats;
	struct sock *listener_sk, *child;
	__u64 ret = 0, listener;

	if (bpf_get_func_ret(ctx, &ret) || (int)ret != 0)
		return 0;
	listener_sk = sock->sk;
	if (!listener_sk)
		return 0;
	listener = sk_cookie(listener_sk, true);
	stats = registered(listener);
	if (!stats)
		return 0;
	__sync_fetch_and_add(&stats->accepts, 1);
	used(stats, listener);
	if (sk_family(listener_sk, true) == AF_UNIX)
		learn_unix_addr(listener_sk, listener);
	child = newsock->sk;
	if (child) {
		struct idlepool_conn *conn = track(child, listener);

		if (conn)
			conn->flags |= IDLEPOOL_CONN_ACCEPTED;
	}
	return 0;
}

SEC("fexit/inet_accept")
int BPF_PROG(fexit_inet_accept, struct socket *sock, struct socket *newsock)
{
	return on_accept(ctx, sock, newsock);
}

SEC("fexit/unix_accept")
int BPF_PROG(fexit_unix_accept, struct socket *sock, struct socket *newsock)
{
	return on_accept(ctx, sock, newsock);
}

/* tcp_recvmsg(sk, msg, len, flags, addr_len): flags is the fourth argument since 5.19 (nonblock removed). */
SEC("fexit/tcp_recvmsg")
int BPF_PROG(fexit_tcp_recvmsg, struct sock *sk, struct msghdr *msg, size_t len, int flags)
{
	__u64 ret = 0;

	if (!bpf_get_func_ret(ctx, &ret))
		on_recv(sk, (int)ret, flags);
	return 0;
}

SEC("fexit/unix_stream_recvmsg")
int BPF_PROG(fexit_unix_recvmsg, struct socket *sock, struct msghdr *msg, size_t size, int flags)
{
	__u64 ret = 0;
	struct sock *sk = sock->sk;

	if (sk && !bpf_get_func_ret(ctx, &ret))
		on_recv(sk, (int)ret, flags);
	return 0;
}

/* A send only moves the connection's phase: the entry hook is enough and costs half an exit hook. */
SEC("fentry/tcp_sendmsg")
int BPF_PROG(fentry_tcp_sendmsg, struct sock *sk)
{
	on_send(sk, 1);
	return 0;
}

SEC("fentry/unix_stream_sendmsg")
int BPF_PROG(fentry_unix_sendmsg, struct socket *sock)
{
	struct sock *sk = sock->sk;

	if (sk)
		on_send(sk, 1);
	return 0;
}

SEC("fentry/unix_release_sock")
int BPF_PROG(fentry_unix_release, struct sock *sk)
{
	on_close(sk);
	return 0;
}

/* ---- sock tier (also used by the others for TCP arrivals and closes) ---------------------------------------- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_inet_set_state, const struct sock *sk, const int oldstate, const int newstate)
{
	struct idlepool_listener_stats *stats;
	struct idlepool_conn *conn;
	__u64 listener;

	if (!sk || sk_protocol(sk, true) != IPPROTO_TCP)
		return 0;
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		/* A passively opened connection finished its handshake and sits in its listener's accept queue. */
		listener = tcp_listener_of(sk, sk_family(sk, true), true);
		stats = registered(listener);
		if (!stats)
			return 0;
		arrived(stats, listener);
		track((struct sock *)sk, listener);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		on_close(sk);
		return 0;
	}
	/* Any other change of a tracked connection (a FIN sent or received) is its end beginning. */
	{
		__u64 cookie = sk_cookie(sk, true);

		conn = cookie ? bpf_map_lookup_elem(&conns, &cookie) : NULL;
		if (conn)
			ended(conn);
	}
	return 0;
}

SEC("tp_btf/sk_data_ready")
int BPF_PROG(tp_sk_data_ready, const struct sock *sk)
{
	struct idlepool_listener_stats *stats;
	__u64 listener;

	/* TCP arrivals are counted at the end of the handshake (above); here only unix connects to a listener. */
	if (!sk || sk_family(sk, true) != AF_UNIX || sk_state(sk, true) != TCP_LISTEN)
		return 0;
	listener = sk_cookie(sk, true);
	stats = registered(listener);
	if (!stats)
		return 0;
	learn_unix_addr(sk, listener);
	arrived(stats, listener);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(tp_sock_recv, struct sock *sk, int ret, int flags)
{
	if (sk)
		on_recv(sk, ret, flags);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(tp_sock_send, struct sock *sk, int ret, int flags)
{
	if (sk)
		on_send(sk, ret);
	return 0;
}

/* ---- syscall tier -------------------------------------------------------------------------------------------- */

/* The socket behind `fd` of the current task, read through task->files. */
static __always_inline const struct sock *sock_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds, *file = NULL;
	struct socket *sock;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	/* accept() just returned this fd, so it is a socket and private_data is its struct socket. */
	sock = BPF_CORE_READ(file, private_data);
	return sock ? BPF_CORE_READ(sock, sk) : NULL;
}

/* accept() returned `ret`: the new connection's own address (TCP) or shared unix address names its listener. */
static __always_inline int accept_exit(long ret)
{
	struct idlepool_listener_stats *stats;
	struct idlepool_conn *conn;
	const struct sock *sk;
	__u64 cookie, listener;

	if (ret < 0)
		return 0;
	sk = sock_of_fd((__u32)ret);
	if (!sk)
		return 0;
	cookie = sk_cookie(sk, false);
	conn = cookie ? bpf_map_lookup_elem(&conns, &cookie) : NULL;
	listener = conn ? conn->listener_cookie : listener_of(sk, false);
	stats = registered(listener);
	if (!stats)
		return 0;
	__sync_fetch_and_add(&stats->accepts, 1);
	used(stats, listener);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int tp_exit_accept(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int tp_exit_accept4(struct trace_event_raw_sys_exit *ctx)
{
	return accept_exit(ctx->ret);
}

/* ---- all tiers: learning unix listeners' addresses ---------------------------------------------------------- */

/* Run by user space (read() on an iterator fd) after registering unix listeners: walks every unix socket and
 * records the address of each registered listener, so its connections are recognised from their first event. */
SEC("iter/unix")
int iter_unix_listeners(struct bpf_iter__unix *ctx)
{
	struct unix_sock *u = ctx->unix_sk;
	__u64 listener, addr;

	if (!u || u->sk.__sk_common.skc_state != TCP_LISTEN)
		return 0;
	listener = u->sk.__sk_common.skc_cookie.counter;
	addr = (__u64)u->addr;
	if (addr && registered(listener))
		bpf_map_update_elem(&unix_addrs, &addr, &listener, BPF_ANY);
	return 0;
}
