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

/*
 * Socket field readers. Tracing programs (fentry/fexit, tp_btf, iterators) hold BTF-typed socket pointers and read
 * fields with plain loads (`direct`), which cost next to nothing; classic tracepoints (the syscall tier) only have
 * raw addresses and must call bpf_probe_read_kernel for every field. Callers pass `direct` as a literal, so after
 * inlining the compiler keeps one branch and the verifier never sees the other.
 */

/* Socket cookie if one was ever assigned (sock_diag, SO_COOKIE or bpf_get_socket_cookie do), 0 otherwise.
 * Reading it never assigns one. */
static __always_inline __u64 sk_cookie(const struct sock *sk, bool direct)
{
	return direct ? sk->__sk_common.skc_cookie.counter : BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

static __always_inline __u16 sk_family(const struct sock *sk, bool direct)
{
	return direct ? sk->__sk_common.skc_family : BPF_CORE_READ(sk, __sk_common.skc_family);
}

static __always_inline __u8 sk_state(const struct sock *sk, bool direct)
{
	return direct ? sk->__sk_common.skc_state : BPF_CORE_READ(sk, __sk_common.skc_state);
}

static __always_inline __u16 sk_protocol(const struct sock *sk, bool direct)
{
	return direct ? sk->sk_protocol : BPF_CORE_READ(sk, sk_protocol);
}

/* The `struct unix_address *` a unix socket is bound to. A listener's accepted sockets share their listener's
 * pointer (unix_stream_connect: `smp_store_release(&newu->addr, otheru->addr)`), which is how the probe recognises
 * them without an accept hook. A direct read goes through bpf_skc_to_unix_sock(): the verifier only lets a program
 * read a struct sock as the struct it is typed as. */
static __always_inline __u64 unix_addr_of(const struct sock *sk, bool direct)
{
	if (direct) {
		struct unix_sock *u = bpf_skc_to_unix_sock((void *)sk);

		return u ? (__u64)u->addr : 0;
	}
	return (__u64)BPF_CORE_READ((const struct unix_sock *)sk, addr);
}

#endif /* IDLEPOOL_BPF_H */
