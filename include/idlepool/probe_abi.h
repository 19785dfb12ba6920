/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one layout shared by the kernel probe (bpf/idlepool.bpf.c) and user space (src/sys/probe.cpp).
 * Every map key and value the two sides exchange is defined here and nowhere else. Fixed-width fields only;
 * user space static_asserts the sizes. Bump IDLEPOOL_PROBE_ABI_VERSION on any change.
 */
#ifndef IDLEPOOL_PROBE_ABI_H
#define IDLEPOOL_PROBE_ABI_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define IDLEPOOL_PROBE_ABI_VERSION 5

/* Capacities of the probe's maps. */
#define IDLEPOOL_MAX_LISTENERS 16384
#define IDLEPOOL_MAX_CONNS 65536

/* What a listener is. */
enum idlepool_listener_kind {
	IDLEPOOL_KIND_TCP = 1,
	IDLEPOOL_KIND_UNIX = 2,
};

/*
 * Per registered listening socket, keyed by the listener's socket cookie (sock_diag assigns it). User space inserts
 * a zeroed entry with `abi_version` and `kind` set; the probe only adds to the counters and stores timestamps.
 */
struct idlepool_listener_stats {
	__u32 abi_version;
	__u32 kind;
	/* Connections that reached the listener (sock tier: TCP handshake done, unix connect queued). */
	__u64 arrivals;
	/* Connections accepted by a process (fentry and syscall tiers). */
	__u64 accepts;
	/* Request cycles: counted when a response starts, i.e. at the first send after a receive. */
	__u64 requests;
	/* Accepted connections seen closing. */
	__u64 closes;
	/* bpf_ktime_get_ns() (CLOCK_MONOTONIC) of the latest arrival, accept, request, response or close. */
	__u64 last_activity_ns;
};

/*
 * Map `first_use`: listener cookie -> the first events on it since user space last deleted the entry (it does when
 * the pool stops: the next entry dates the wake), each bpf_ktime_get_ns(), 0 until it happens. Kept apart from the
 * counters so that re-arming never races with the probe's atomic adds. The probe creates the entry zeroed and sets
 * each field once.
 */
struct idlepool_first_use {
	/* The first accept or request start. */
	__u64 use_ns;
	/* The first connection that reached the listener (what woke a stopped pool). */
	__u64 arrival_ns;
	/* The first response's start (the first send after a receive on one of its connections). */
	__u64 response_ns;
};

/* Phases of an accepted connection, for request counting. */
enum idlepool_conn_phase {
	IDLEPOOL_CONN_NEW = 0,
	IDLEPOOL_CONN_RECEIVING = 1,
	IDLEPOOL_CONN_SENT = 2,
};

/* idlepool_conn.flags */
enum idlepool_conn_flags {
	/* An accept of this connection was counted (or it existed before registration). */
	IDLEPOOL_CONN_ACCEPTED = 1,
	/* The server has sent on it: it answered at least once. */
	IDLEPOOL_CONN_RESPONDED = 2,
};

/* Per connection of a registered listener (queued or accepted), keyed by the connection's socket cookie. */
struct idlepool_conn {
	__u64 listener_cookie;
	__u32 phase;
	__u32 flags;
	/* bpf_ktime_get_ns() of the server's latest send on it: when its latest response (or part of one) went out. */
	__u64 last_send_ns;
	/* Bytes the server received on it since its latest send (saturating). A kept-alive connection whose response
	 * is complete has received nothing since, or only what ends the request (php-fpm reads the request's empty
	 * FCGI_STDIN record, 8 bytes, after answering). */
	__u32 recv_since_send;
	__u32 reserved;
};

/*
 * A TCP listener's local address, to recognise the connections it hands out: an accepted socket keeps its listener's
 * local port and, unless the listener is a wildcard, its local address. IPv4 addresses are stored v4-mapped
 * (::ffff:a.b.c.d); a wildcard listener is stored as ::ffff:0.0.0.0 (IPv4) or :: (IPv6).
 */
struct idlepool_tcp_key {
	__u32 netns_ino;
	__u16 port; /* host byte order */
	__u16 reserved;
	__u8 addr[16];
};

#endif /* IDLEPOOL_PROBE_ABI_H */
