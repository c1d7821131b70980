// SPDX-License-Identifier: GPL-2.0
/*
 * cgfence data plane: cgroup eBPF programs attached to a deploy cgroup and
 * inherited by its children.
 *
 *   cgroup/connect4|6, cgroup/sendmsg4|6  port-53 destinations -> DNS proxy;
 *                                         blocked destinations and refused DNS ports
 *                                         (cgf_dns_ports: 853) -> EPERM (or audit event)
 *   cgroup/recvmsg4|6                     replies from the proxy get the original
 *                                         resolver address back
 *   cgroup_skb/egress                     drop packets to blocked addresses that got
 *                                         past the socket hooks; drop port-53 UDP
 *                                         queries for listed names that do not go
 *                                         to the proxy (the name backstop); record
 *                                         (client port, DNS id) -> process; refuse
 *                                         UDP to the proxy from a process or run
 *                                         with its window of unanswered queries
 *                                         full (client-rate.bpf.h)
 *   cgroup_skb/ingress                    an answer from the proxy gives its
 *                                         query's charge back (client-rate.bpf.h)
 *
 * Shared structs and constants live in cgfence.h. See ../README.md.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "cgfence.h"
#include "client-rate.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define LOOPBACK4 0x7f000001 /* 127.0.0.1, host order */

/* ---------------------------------------------------------------- maps -- */

/* One entry: the whole run-time configuration. Written only by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgf_config);
} cgf_config SEC(".maps");

/* One slot per enum cgf_counter, per CPU so increments never contend.
 * Userspace sums the CPUs. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CGF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cgf_counters SEC(".maps");

/* Kernel -> agent events. 256 KiB holds ~3,600 records of 72 (+8 header)
 * bytes: the agent drains it every 100 ms, so that is a burst of 36,000
 * blocks/s before anything is lost (and a loss is counted, never silent). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} cgf_events SEC(".maps");

/* (client port, DNS id) -> process that sent the query. An entry only has to
 * live from the moment the query leaves the client until the proxy reads it
 * (milliseconds). 16,384 is far above the queries a deploy has in flight;
 * LRU evicts the oldest so it can never fill up. Preallocated: ~1.5 MiB. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct cgf_dns_key);
	__type(value, struct cgf_proc);
} cgf_dns_attr SEC(".maps");

/* Single addresses learned at run time (e.g. from DNS answers), value =
 * expiry in bpf_ktime_get_ns() nanoseconds; expired entries are ignored here
 * and pruned by userspace. 65,536 covers every address a deploy's names can
 * resolve to with a wide margin; not an LRU because evicting a live entry
 * would silently unblock it. Not preallocated: memory grows with use. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct cgf_addr_key);
	__type(value, __u64);
} cgf_learned SEC(".maps");

/* IPv4 /16 prefilter in front of cgf_block4 and cgf_learned: slot i (the top
 * 16 bits of the address, host order) is 0 when no blocked CIDR and no learned
 * address touches that /16, so blocked4() answers "not blocked" with one
 * inlined array load instead of a trie walk and a hash lookup. Userspace keeps
 * it a superset of what the trie and cgf_learned hold at every moment: it
 * marks a new policy's /16s before swapping its trie in, marks a learned
 * address's /16 before inserting it, and clears only after a swap what
 * neither the trie in force nor any learned address needs. A /8 marks 256
 * slots, /0 all of them. One byte per slot (the kernel stores 8 per slot:
 * 512 KiB). IPv6 has no prefilter. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CGF_PREFILTER4_SLOTS);
	__type(key, __u32);
	__type(value, __u8);
} cgf_prefilter4 SEC(".maps");

/* Blocked CIDRs. The outer array has one slot holding the current LPM trie;
 * userspace builds a complete new trie (sized to the policy, any size) and
 * swaps the slot in one update, so a lookup sees either the old list or the
 * new one, never half of either. The inner definitions are only templates
 * (key/value size and flags must match the tries userspace creates). Sizes,
 * not BTF types: clang emits the key structs as forward declarations here. */
struct cgf_trie4 {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct cgf_lpm4_key));
	__uint(value_size, sizeof(__u32));
};

struct cgf_trie6 {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(struct cgf_lpm6_key));
	__uint(value_size, sizeof(__u32));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cgf_trie4);
} cgf_block4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cgf_trie6);
} cgf_block6 SEC(".maps");

/* Listed names for the backstop in the egress hook (fail open, or a socket
 * that got around the proxy). Same scheme as the tries: the outer array has
 * one slot holding a hash map built by userspace for each policy, exactly as
 * large as the policy's names (no fixed cap: about 100 B of kernel memory a
 * name), and swapped in with one update. Key: 64-bit hash of a name's wire
 * form (CGF_NAME_* in cgfence.h); value: CGF_NAME_EXACT | CGF_NAME_WILDCARD. */
struct cgf_names_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(key_size, sizeof(__u64));
	__uint(value_size, sizeof(__u8));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct cgf_names_inner);
} cgf_names SEC(".maps");

/* Refused DNS ports (see CGF_DNS_PORTS_MAX): a handful of ports, set by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGF_DNS_PORTS_MAX);
	__type(key, __u16);
	__type(value, __u64);
} cgf_dns_ports SEC(".maps");

/* One slot per enum cgf_dns_counter (name backstop, liveness), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CGF_DCNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cgf_dns_counters SEC(".maps");

/* The proxy heartbeat, CLOCK_MONOTONIC ns, written by the agent's heartbeat
 * thread alone (a map of its own so it never races a config update). One
 * entry. The later of this and cgf_config.heartbeat_ns counts. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} cgf_heartbeat SEC(".maps");

/* Scratch for parsing a question name on egress: 512 bytes do not fit the
 * 512-byte BPF stack next to the rest, so one per CPU here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgf_name_scratch);
} cgf_scratch SEC(".maps");

/* Per-socket state: original DNS destination (for recvmsg) and the task that
 * sent to it (for TCP attribution). Lives and dies with the socket, so it
 * needs no size and never goes stale. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct cgf_sock_state);
} cgf_sock SEC(".maps");

/* Heartbeat value for which a proxy_down event was already emitted, so a dead
 * proxy yields one event, not one per query. A race between CPUs can emit a
 * duplicate; that is harmless. */
__u64 proxy_down_reported_hb = 0;

/* ------------------------------------------------------------- helpers -- */

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&cgf_counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline void dcount(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&cgf_dns_counters, &idx);

	if (c)
		*c += 1;
}

static __always_inline struct cgf_config *get_config(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&cgf_config, &zero);
}

static __always_inline void fill_current(struct cgf_proc *p)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	p->pid = (__u32)pid_tgid;
	p->tgid = pid_tgid >> 32;
	p->uid = (__u32)bpf_get_current_uid_gid();
	p->_pad0 = 0;
	p->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

static __always_inline void emit(__u8 kind, __u8 hook, __u8 family, __u8 protocol,
				 const __u8 *addr16, __u16 dport)
{
	struct cgf_event *e = bpf_ringbuf_reserve(&cgf_events, sizeof(*e), 0);

	if (!e) {
		count(CGF_CNT_RINGBUF_LOST);
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	fill_current(&e->proc);
	e->kind = kind;
	e->family = family;
	e->protocol = protocol;
	e->hook = hook;
	e->dport = dport;
	e->_pad0 = 0;
	__builtin_memcpy(e->daddr, addr16, 16);
	bpf_ringbuf_submit(e, 0);
}

/* v4 address (network order) -> 16 bytes: the event/learned-key form.
 * learned keys want ::ffff:a.b.c.d, events want a.b.c.d + 12 zero bytes. */
static __always_inline void v4_mapped(__u8 out[16], __u32 addr_be)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr_be, 4);
}

static __always_inline void v4_event(__u8 out[16], __u32 addr_be)
{
	__builtin_memset(out, 0, 16);
	__builtin_memcpy(out, &addr_be, 4);
}

static __always_inline int is_v4_mapped(const __u32 a[4])
{
	return a[0] == 0 && a[1] == 0 && a[2] == bpf_htonl(0x0000ffff);
}

static __always_inline int learned_hit(const __u8 addr16[16])
{
	struct cgf_addr_key k;
	__u64 *expiry;

	__builtin_memcpy(k.addr, addr16, 16);
	expiry = bpf_map_lookup_elem(&cgf_learned, &k);
	return expiry && *expiry > bpf_ktime_get_ns();
}

static __always_inline int blocked4(__u32 addr_be)
{
	struct cgf_lpm4_key k = { .prefixlen = 32 };
	__u32 slot = bpf_ntohl(addr_be) >> CGF_PREFILTER4_SHIFT;
	__u8 mapped[16], *mark;
	__u32 zero = 0;
	void *trie;

	/* A clean /16 ends here. A missing slot (cannot happen: 16 bits index
	 * 65,536 slots) falls through to the full check. */
	mark = bpf_map_lookup_elem(&cgf_prefilter4, &slot);
	if (mark && *mark == 0)
		return 0;
	trie = bpf_map_lookup_elem(&cgf_block4, &zero);
	if (trie) {
		__builtin_memcpy(k.addr, &addr_be, 4);
		if (bpf_map_lookup_elem(trie, &k))
			return 1;
	}
	v4_mapped(mapped, addr_be);
	return learned_hit(mapped);
}

static __always_inline int blocked6(const __u32 a[4])
{
	struct cgf_lpm6_key k = { .prefixlen = 128 };
	__u32 zero = 0;
	void *trie;

	if (is_v4_mapped(a))
		return blocked4(a[3]);
	trie = bpf_map_lookup_elem(&cgf_block6, &zero);
	if (trie) {
		__builtin_memcpy(k.addr, a, 16);
		if (bpf_map_lookup_elem(trie, &k))
			return 1;
	}
	return learned_hit((const __u8 *)a);
}

/* Does the proxy's UDP socket (127.0.0.1:port, in this socket's network
 * namespace) exist? The kernel looks it up itself: it is there as long as the
 * process holding it lives, however busy that process is. */
static __always_inline int proxy_socket_exists(struct bpf_sock_addr *ctx, __u16 port)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.saddr = bpf_htonl(LOOPBACK4);
	t.ipv4.daddr = bpf_htonl(LOOPBACK4);
	t.ipv4.sport = bpf_htons(CGF_DNS_PORT);
	t.ipv4.dport = bpf_htons(port);
	sk = bpf_sk_lookup_udp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

static __always_inline __u64 last_heartbeat(struct cgf_config *cfg)
{
	__u32 zero = 0;
	__u64 *hb = bpf_map_lookup_elem(&cgf_heartbeat, &zero);
	__u64 a = cfg->heartbeat_ns, b = hb ? *hb : 0;

	return a > b ? a : b;
}

#define DNS_PASS 0     /* not redirected: goes where it was sent */
#define DNS_REDIRECT 1 /* to the proxy */
#define DNS_REFUSE 2   /* refused (EPERM) */

/* What to do with a DNS destination right now. Counts the fail-mode outcomes
 * and emits one proxy_down event per outage (keyed by the last heartbeat). */
static __always_inline int dns_decision(struct bpf_sock_addr *ctx, struct cgf_config *cfg, __u8 hook,
					__u8 family, __u8 protocol, const __u8 *addr16)
{
	__u64 now, hb = 0;
	int alive = 1;

	if (cfg->proxy_port == 0)
		return DNS_PASS;
	if ((cfg->liveness & CGF_LIVE_SOCKET) && !proxy_socket_exists(ctx, cfg->proxy_port)) {
		dcount(CGF_DCNT_PROXY_SOCKET_GONE);
		alive = 0;
	}
	if (cfg->heartbeat_timeout_ns != 0 || !alive) {
		now = bpf_ktime_get_ns();
		hb = last_heartbeat(cfg);
		if (cfg->heartbeat_timeout_ns != 0 && now > hb && now - hb > cfg->heartbeat_timeout_ns)
			alive = 0;
	}
	if (alive)
		return DNS_REDIRECT;
	if (cfg->fail_mode == CGF_FAIL_CLOSED) {
		count(CGF_CNT_FAILCLOSED_REDIRECT);
		return DNS_REDIRECT;
	}
	if (*(volatile __u64 *)&proxy_down_reported_hb != hb) {
		*(volatile __u64 *)&proxy_down_reported_hb = hb;
		emit(CGF_EV_PROXY_DOWN, hook, family, protocol, addr16, CGF_DNS_PORT);
	}
	/* Fail open. UDP goes direct; the egress hook still drops queries for
	 * listed names. TCP cannot be read query by query there (a stream), so
	 * port-53 TCP is refused while the proxy is dead. */
	if (protocol == IPPROTO_TCP) {
		dcount(CGF_DCNT_TCP_REFUSED);
		return DNS_REFUSE;
	}
	count(CGF_CNT_FAILOPEN_BYPASS);
	return DNS_PASS;
}

static __always_inline void remember_origin(struct bpf_sock_addr *ctx, const __u8 orig16[16],
					    __u8 family, __u16 proxy_port)
{
	struct bpf_sock *sk = ctx->sk;
	struct cgf_sock_state *st;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&cgf_sock, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	fill_current(&st->owner);
	__builtin_memcpy(st->orig_addr, orig16, 16);
	st->orig_port = (__u16)ctx->user_port;
	st->proxy_port = proxy_port;
	st->orig_family = family;
}

static __always_inline int l4_protocol(struct bpf_sock_addr *ctx)
{
	__u32 p = ctx->protocol;

	return p == IPPROTO_UDP || p == IPPROTO_TCP ? (int)p : 0;
}

/* ------------------------------------------------- connect / sendmsg -- */

/* True when dport is a refused DNS port (cgf_dns_ports); counts the refusal. */
static __always_inline int refused_dns_port(__u16 dport)
{
	__u64 *n = bpf_map_lookup_elem(&cgf_dns_ports, &dport);

	if (!n)
		return 0;
	__sync_fetch_and_add(n, 1);
	return 1;
}

static __always_inline int handle4(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct cgf_config *cfg = get_config();
	__u32 daddr = ctx->user_ip4;
	__u16 dport = bpf_ntohs((__u16)ctx->user_port);
	__u8 protocol = (__u8)ctx->protocol;
	__u8 addr16[16];

	if (!cfg)
		return 1;
	if (dport == CGF_DNS_PORT && l4_protocol(ctx)) {
		int dns;

		v4_event(addr16, daddr);
		dns = dns_decision(ctx, cfg, hook, CGF_FAMILY_V4, protocol, addr16);
		if (dns == DNS_REFUSE)
			return 0;
		if (dns == DNS_REDIRECT) {
			__u8 mapped[16];

			v4_mapped(mapped, daddr);
			remember_origin(ctx, mapped, CGF_FAMILY_V4, cfg->proxy_port);
			ctx->user_ip4 = bpf_htonl(LOOPBACK4);
			ctx->user_port = bpf_htons(cfg->proxy_port);
			count(CGF_CNT_DNS_REDIRECT);
			return 1;
		}
	}
	if (!blocked4(daddr) && !(l4_protocol(ctx) && refused_dns_port(dport)))
		return 1;
	v4_event(addr16, daddr);
	if (cfg->mode == CGF_MODE_AUDIT) {
		count(CGF_CNT_IP_AUDIT);
		emit(CGF_EV_IP_AUDIT, hook, CGF_FAMILY_V4, protocol, addr16, dport);
		return 1;
	}
	count(CGF_CNT_IP_BLOCK);
	emit(CGF_EV_IP_BLOCK, hook, CGF_FAMILY_V4, protocol, addr16, dport);
	return 0;
}

static __always_inline int handle6(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct cgf_config *cfg = get_config();
	__u16 dport = bpf_ntohs((__u16)ctx->user_port);
	__u8 protocol = (__u8)ctx->protocol;
	__u32 a[4];

	if (!cfg)
		return 1;
	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];

	if (dport == CGF_DNS_PORT && l4_protocol(ctx)) {
		int dns = dns_decision(ctx, cfg, hook, CGF_FAMILY_V6, protocol, (__u8 *)a);

		if (dns == DNS_REFUSE)
			return 0;
		if (dns == DNS_REDIRECT) {
			remember_origin(ctx, (__u8 *)a, CGF_FAMILY_V6, cfg->proxy_port);
			if (is_v4_mapped(a)) {
				/* dual-stack socket talking to IPv4: keep it IPv4 (::ffff:127.0.0.1) */
				ctx->user_ip6[0] = 0;
				ctx->user_ip6[1] = 0;
				ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
				ctx->user_ip6[3] = bpf_htonl(LOOPBACK4);
			} else {
				ctx->user_ip6[0] = 0;
				ctx->user_ip6[1] = 0;
				ctx->user_ip6[2] = 0;
				ctx->user_ip6[3] = bpf_htonl(1);
			}
			ctx->user_port = bpf_htons(cfg->proxy_port);
			count(CGF_CNT_DNS_REDIRECT);
			return 1;
		}
	}
	if (!blocked6(a) && !(l4_protocol(ctx) && refused_dns_port(dport)))
		return 1;
	if (cfg->mode == CGF_MODE_AUDIT) {
		count(CGF_CNT_IP_AUDIT);
		emit(CGF_EV_IP_AUDIT, hook, CGF_FAMILY_V6, protocol, (__u8 *)a, dport);
		return 1;
	}
	count(CGF_CNT_IP_BLOCK);
	emit(CGF_EV_IP_BLOCK, hook, CGF_FAMILY_V6, protocol, (__u8 *)a, dport);
	return 0;
}

SEC("cgroup/connect4")
int cgf_connect4(struct bpf_sock_addr *ctx)
{
	return handle4(ctx, CGF_HOOK_CONNECT);
}

SEC("cgroup/sendmsg4")
int cgf_sendmsg4(struct bpf_sock_addr *ctx)
{
	return handle4(ctx, CGF_HOOK_SENDMSG);
}

SEC("cgroup/connect6")
int cgf_connect6(struct bpf_sock_addr *ctx)
{
	return handle6(ctx, CGF_HOOK_CONNECT);
}

SEC("cgroup/sendmsg6")
int cgf_sendmsg6(struct bpf_sock_addr *ctx)
{
	return handle6(ctx, CGF_HOOK_SENDMSG);
}

/* ------------------------------------------------------------ recvmsg -- */

/* recvmsg hooks must return 1; they only rewrite the reported source. */

SEC("cgroup/recvmsg4")
int cgf_recvmsg4(struct bpf_sock_addr *ctx)
{
	struct cgf_sock_state *st;
	struct bpf_sock *sk;
	__u32 orig;

	if (ctx->user_ip4 != bpf_htonl(LOOPBACK4))
		return 1;
	sk = ctx->sk;
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&cgf_sock, sk, 0, 0);
	if (!st || st->orig_family != CGF_FAMILY_V4)
		return 1;
	if ((__u16)ctx->user_port != bpf_htons(st->proxy_port))
		return 1;
	__builtin_memcpy(&orig, st->orig_addr + 12, 4);
	ctx->user_ip4 = orig;
	ctx->user_port = st->orig_port;
	count(CGF_CNT_RECV_RESTORED);
	return 1;
}

SEC("cgroup/recvmsg6")
int cgf_recvmsg6(struct bpf_sock_addr *ctx)
{
	struct cgf_sock_state *st;
	struct bpf_sock *sk;
	__u32 a[4], o[4];
	int from_v6_proxy, from_v4_proxy;

	a[0] = ctx->user_ip6[0];
	a[1] = ctx->user_ip6[1];
	a[2] = ctx->user_ip6[2];
	a[3] = ctx->user_ip6[3];
	from_v6_proxy = a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1);
	/* a dual-stack socket that asked an IPv4 resolver hears ::ffff:127.0.0.1 */
	from_v4_proxy = is_v4_mapped(a) && a[3] == bpf_htonl(LOOPBACK4);
	if (!from_v6_proxy && !from_v4_proxy)
		return 1;
	sk = ctx->sk;
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&cgf_sock, sk, 0, 0);
	if (!st)
		return 1;
	if ((__u16)ctx->user_port != bpf_htons(st->proxy_port))
		return 1;
	__builtin_memcpy(o, st->orig_addr, 16);
	/* only restore an origin of the same kind as the proxy address heard */
	if (is_v4_mapped(o) != from_v4_proxy)
		return 1;
	ctx->user_ip6[0] = o[0];
	ctx->user_ip6[1] = o[1];
	ctx->user_ip6[2] = o[2];
	ctx->user_ip6[3] = o[3];
	ctx->user_port = st->orig_port;
	count(CGF_CNT_RECV_RESTORED);
	return 1;
}

/* ------------------------------------------------------------- egress -- */

/* Record which process sent the DNS query at payload offset dns_off.
 * UDP is sent synchronously from sendmsg, so the current task is the sender.
 * TCP segments can leave from softirq context (after an ACK), so TCP uses the
 * task recorded in the socket's storage at connect() time instead. */
static __always_inline void attribute(struct __sk_buff *skb, __u16 sport, __u32 dns_off,
				      __u8 protocol)
{
	struct cgf_dns_key key;
	struct cgf_proc proc;
	__u16 id_be;

	if (bpf_skb_load_bytes(skb, dns_off, &id_be, sizeof(id_be)) < 0)
		return;
	key.client_port = sport;
	key.dns_id = bpf_ntohs(id_be);

	if (protocol == IPPROTO_UDP) {
		fill_current(&proc);
		proc.cgroup_id = bpf_skb_cgroup_id(skb);
	} else {
		struct bpf_sock *sk = skb->sk;
		struct cgf_sock_state *st;

		if (!sk)
			return;
		sk = bpf_sk_fullsock(sk);
		if (!sk)
			return;
		st = bpf_sk_storage_get(&cgf_sock, sk, 0, 0);
		if (!st)
			return;
		__builtin_memcpy(&proc, &st->owner, sizeof(proc));
	}
	if (bpf_map_update_elem(&cgf_dns_attr, &key, &proc, BPF_ANY) == 0)
		count(CGF_CNT_DNS_ATTRIBUTED);
}

/* client_rate_admit() for a UDP datagram to the proxy, charged to the
 * socket's owner (the task that sent or connected it to port 53, whose
 * answers refund it: cgf_ingress), or to the sending task if the socket was
 * never redirected (sent to the proxy's port directly). UDP is sent from the
 * sender's own context, so "current" is the sender. */
static __always_inline int client_rate_admit_skb(struct __sk_buff *skb, __u8 mode)
{
	struct bpf_sock *sk = skb->sk;
	struct cgf_sock_state *st = 0;

	if (sk)
		sk = bpf_sk_fullsock(sk);
	if (sk)
		st = bpf_sk_storage_get(&cgf_sock, sk, 0, 0);
	if (st)
		return client_rate_admit(mode, st->owner.tgid, st->owner.cgroup_id);
	return client_rate_admit(mode, bpf_get_current_pid_tgid() >> 32, bpf_get_current_cgroup_id());
}

#define NAME_NOT_LISTED 0
#define NAME_LISTED 1
#define NAME_UNREADABLE 2

/* State of the two bpf_loop passes over a question name (on the stack). */
struct name_walk {
	__u64 h;     /* running hash (backward pass) */
	__u32 len;   /* bytes of the name area read into the scratch */
	__u32 next;  /* offset of the next label's length byte (forward pass) */
	__u32 end;   /* offset of the terminating zero */
	__u32 found_end;
	__u32 result;
	__u32 _pad;
};

/* Forward pass, one byte per call: marks label starts, lower-cases letters,
 * finds the end. Stops (1) at the end or at anything a query name cannot hold. */
static long name_forward(__u32 i, void *arg)
{
	struct name_walk *w = arg;
	struct cgf_name_scratch *s;
	__u32 zero = 0, at = i & 0xff;
	__u8 b;

	s = bpf_map_lookup_elem(&cgf_scratch, &zero);
	if (!s || i >= w->len) {
		w->result = NAME_UNREADABLE; /* runs past the packet (or the cap) */
		return 1;
	}
	b = s->name[at];
	if (i == w->next) {
		s->label[at] = 1;
		if (b == 0) {
			w->end = i;
			w->found_end = 1;
			return 1;
		}
		if (b > 63) {
			w->result = NAME_UNREADABLE; /* compression pointer or reserved label type */
			return 1;
		}
		w->next = i + 1 + b;
	} else {
		s->label[at] = 0;
		if (b >= 'A' && b <= 'Z')
			s->name[at] = b + ('a' - 'A');
	}
	return 0;
}

/* Backward pass, one byte per call from the last: hashes, and looks up the
 * hash of each suffix that starts on a label. */
static long name_backward(__u32 i, void *arg)
{
	struct name_walk *w = arg;
	struct cgf_name_scratch *s;
	__u32 zero = 0, at;
	__u64 key;
	__u8 *flags;
	void *names;

	if (i >= w->end)
		return 1;
	at = (w->end - 1 - i) & 0xff;
	s = bpf_map_lookup_elem(&cgf_scratch, &zero);
	if (!s)
		return 1;
	w->h = (w->h ^ s->name[at]) * CGF_NAME_HASH_PRIME;
	if (!s->label[at])
		return 0;
	names = bpf_map_lookup_elem(&cgf_names, &zero);
	if (!names)
		return 1;
	key = w->h;
	flags = bpf_map_lookup_elem(names, &key);
	if (flags && (*flags & (at == 0 ? CGF_NAME_EXACT : CGF_NAME_WILDCARD))) {
		w->result = NAME_LISTED;
		return 1;
	}
	return 0;
}

/* The name backstop: is the question of the DNS query at payload offset
 * dns_off for a listed name? One question only, labels of at most 63 bytes
 * and no compression pointer (a query's question has none), within the first
 * CGF_NAME_MAX bytes and within the packet; anything else is
 * NAME_UNREADABLE. Two bpf_loop passes of at most CGF_NAME_MAX steps (each
 * callback verified once): forward to find the label starts and lower-case,
 * backward to hash every suffix (the key scheme in cgfence.h) and look up
 * the ones that start on a label. */
static __always_inline int query_name_listed(struct __sk_buff *skb, __u32 dns_off)
{
	struct name_walk w = {};
	struct cgf_name_scratch *s;
	__u32 zero = 0, len;
	__u16 qdcount;

	if (bpf_skb_load_bytes(skb, dns_off + 4, &qdcount, sizeof(qdcount)) < 0)
		return NAME_UNREADABLE;
	if (qdcount != bpf_htons(1))
		return NAME_UNREADABLE;
	if (skb->len <= dns_off + CGF_DNS_HEADER_LEN)
		return NAME_UNREADABLE;
	len = skb->len - dns_off - CGF_DNS_HEADER_LEN;
	if (len > CGF_NAME_MAX)
		len = CGF_NAME_MAX;
	/* A no-op the compiler must keep: it bounds len for the verifier (1..255 bytes into name[256]). */
	barrier_var(len);
	len &= 0xff;
	if (len == 0)
		return NAME_UNREADABLE;
	s = bpf_map_lookup_elem(&cgf_scratch, &zero);
	if (!s)
		return NAME_UNREADABLE;
	if (bpf_skb_load_bytes(skb, dns_off + CGF_DNS_HEADER_LEN, s->name, len) < 0)
		return NAME_UNREADABLE;
	w.len = len;
	w.result = NAME_NOT_LISTED;
	bpf_loop(CGF_NAME_MAX, name_forward, &w, 0);
	if (w.result != NAME_NOT_LISTED)
		return w.result;
	if (!w.found_end)
		return NAME_UNREADABLE;
	w.h = ((__u64)CGF_NAME_HASH_SEED_HI << 32) | CGF_NAME_HASH_SEED_LO;
	bpf_loop(CGF_NAME_MAX, name_backward, &w, 0);
	return w.result;
}

struct l4_ports {
	__u16 sport;
	__u16 dport;
};

SEC("cgroup_skb/egress")
int cgf_egress(struct __sk_buff *skb)
{
	struct cgf_config *cfg = get_config();
	__u8 addr16[16], family, protocol;
	struct l4_ports ports;
	__u32 l4_off, v4 = 0, a[4] = {};
	int is_proxy_dst, blocked, has_l4 = 1;

	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 vihl;
		__u16 frag;

		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) < 0 ||
		    bpf_skb_load_bytes(skb, 9, &protocol, 1) < 0 ||
		    bpf_skb_load_bytes(skb, 6, &frag, 2) < 0 ||
		    bpf_skb_load_bytes(skb, 16, &v4, 4) < 0)
			return 1;
		family = CGF_FAMILY_V4;
		l4_off = (vihl & 0x0f) * 4;
		if (frag & bpf_htons(0x1fff))
			has_l4 = 0; /* non-first fragment: no ports */
		v4_event(addr16, v4);
		is_proxy_dst = v4 == bpf_htonl(LOOPBACK4);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 6, &protocol, 1) < 0 ||
		    bpf_skb_load_bytes(skb, 24, a, 16) < 0)
			return 1;
		family = CGF_FAMILY_V6;
		l4_off = 40; /* extension headers are not walked: no ports then */
		__builtin_memcpy(addr16, a, 16);
		is_proxy_dst = (a[0] == 0 && a[1] == 0 && a[2] == 0 && a[3] == bpf_htonl(1));
	} else {
		return 1;
	}

	if (protocol != IPPROTO_UDP && protocol != IPPROTO_TCP)
		has_l4 = 0;
	if (!has_l4 || bpf_skb_load_bytes(skb, l4_off, &ports, sizeof(ports)) < 0) {
		ports.sport = 0;
		ports.dport = 0;
		has_l4 = 0;
	}

	/* Traffic to the proxy itself is never dropped, whatever the policy says. */
	if (cfg && has_l4 && is_proxy_dst && cfg->proxy_port &&
	    ports.dport == bpf_htons(cfg->proxy_port)) {
		if (protocol == IPPROTO_UDP) {
			/* Per-client fairness: over its window, refused before the proxy's queue. */
			if (!client_rate_admit_skb(skb, cfg->mode))
				return 0;
			attribute(skb, bpf_ntohs(ports.sport), l4_off + 8, protocol);
		} else {
			__u8 doff;
			__u32 payload;

			/* TCP: DNS id sits after the 2-byte length prefix of the
			 * first data segment of each query. */
			if (bpf_skb_load_bytes(skb, l4_off + 12, &doff, 1) == 0) {
				payload = l4_off + (doff >> 4) * 4;
				if (skb->len >= payload + 4)
					attribute(skb, bpf_ntohs(ports.sport), payload + 2, protocol);
			}
		}
		return 1;
	}

	/* A DNS query that does not go to the proxy (fail open, or a socket
	 * connected while the proxy was dead): listed names get no answer. */
	if (has_l4 && protocol == IPPROTO_UDP && ports.dport == bpf_htons(CGF_DNS_PORT)) {
		int listed = query_name_listed(skb, l4_off + 8);

		if (listed != NAME_NOT_LISTED) {
			if (cfg && cfg->mode == CGF_MODE_AUDIT) {
				dcount(CGF_DCNT_NAME_AUDIT);
			} else {
				dcount(listed == NAME_LISTED ? CGF_DCNT_NAME_DROP : CGF_DCNT_UNREADABLE_DROP);
				emit(CGF_EV_NAME_DROP, CGF_HOOK_SKB, family, protocol, addr16, CGF_DNS_PORT);
				return 0;
			}
		}
	}

	/* Only now the blocked lookup: DNS packets to the proxy never pay for it. */
	blocked = family == CGF_FAMILY_V4 ? blocked4(v4) : blocked6(a);
	if (!blocked)
		return 1;
	if (cfg && cfg->mode == CGF_MODE_AUDIT) {
		count(CGF_CNT_SKB_AUDIT);
		return 1;
	}
	count(CGF_CNT_SKB_DROP);
	emit(CGF_EV_IP_BLOCK, CGF_HOOK_SKB, family, protocol, addr16, bpf_ntohs(ports.dport));
	return 0;
}

/* ------------------------------------------------------------ ingress -- */

/* Answers from the proxy (UDP from 127.0.0.1 or ::1, source port proxy_port)
 * give the charge of their query back to the process and run that sent it
 * (the socket's owner, recorded when it was redirected). Runs before the
 * socket's receive queue, so an answer counts even if the client never reads
 * it. Never drops anything. */
SEC("cgroup_skb/ingress")
int cgf_ingress(struct __sk_buff *skb)
{
	struct cgf_config *cfg = get_config();
	struct cgf_sock_state *st;
	struct bpf_sock *sk;
	__u32 l4_off, a[4];
	__u16 sport;
	__u8 protocol;

	if (!cfg || cfg->proxy_port == 0)
		return 1;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u8 vihl;
		__u32 saddr;

		if (bpf_skb_load_bytes(skb, 0, &vihl, 1) < 0 ||
		    bpf_skb_load_bytes(skb, 9, &protocol, 1) < 0 ||
		    bpf_skb_load_bytes(skb, 12, &saddr, 4) < 0)
			return 1;
		if (saddr != bpf_htonl(LOOPBACK4))
			return 1;
		l4_off = (vihl & 0x0f) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes(skb, 6, &protocol, 1) < 0 ||
		    bpf_skb_load_bytes(skb, 8, a, 16) < 0)
			return 1;
		if (a[0] != 0 || a[1] != 0 || a[2] != 0 || a[3] != bpf_htonl(1))
			return 1;
		l4_off = 40;
	} else {
		return 1;
	}
	if (protocol != IPPROTO_UDP || bpf_skb_load_bytes(skb, l4_off, &sport, 2) < 0 ||
	    sport != bpf_htons(cfg->proxy_port))
		return 1;
	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&cgf_sock, sk, 0, 0);
	if (st)
		client_rate_refund(st->owner.tgid, st->owner.cgroup_id);
	return 1;
}
