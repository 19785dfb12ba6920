/* SPDX-License-Identifier: GPL-2.0 */
/* BPF-only helpers of the idlepool probe: constants vmlinux.h cannot carry (they are #defines in the kernel) and
 * CO-RE readers of socket fields. */
#ifndef IDLEPOOL_BPF_H
#define IDLEPOOL_BPF_H

#include <bpf/bpf_core_read.h>

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define MSG_PEEK 2

/* Socket cookie if one was ever assigned (sock_diag, SO_COOKIE or bpf_get_socket_cookie do), 0 otherwise.
 * Reading it never assigns one, so this is usable from every program type. */
static __always_inline __u64 sk_cookie(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

static __always_inline __u16 sk_family(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_family);
}

static __always_inline __u8 sk_state(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_state);
}

static __always_inline __u16 sk_protocol(const struct sock *sk)
{
	return BPF_CORE_READ(sk, sk_protocol);
}

/* The `struct unix_address *` a unix socket is bound to. A listener's accepted sockets share their listener's
 * pointer (unix_stream_connect: `smp_store_release(&newu->addr, otheru->addr)`), which is how the probe recognises
 * them without an accept hook. */
static __always_inline __u64 unix_addr_of(const struct sock *sk)
{
	const struct unix_sock *u = (const struct unix_sock *)sk;

	return (__u64)BPF_CORE_READ(u, addr);
}

#endif /* IDLEPOOL_BPF_H */
