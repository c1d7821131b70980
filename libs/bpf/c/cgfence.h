/* SPDX-License-Identifier: UNLICENSED */
/*
 * cgfence.h — everything the eBPF programs (cgfence.bpf.c) and the TypeScript
 * loader (libs/bpf/src) both read. Fixed-width types, explicit padding fields,
 * no bool, no implicit holes; each constant is defined here once.
 *
 * The loader's copy of these layouts (src/layout.ts) is checked against this
 * file by src/layout.int.spec.ts, which compiles a probe program that prints
 * every offsetof/sizeof/constant the loader uses.
 */
#ifndef CGFENCE_H
#define CGFENCE_H

#include <linux/types.h>

/* config.mode */
#define CGF_MODE_ENFORCE 0
#define CGF_MODE_AUDIT 1

/* config.fail_mode: what happens to DNS when the proxy is dead (see config.liveness) */
#define CGF_FAIL_OPEN 0   /* stop redirecting: queries go to their original resolver */
#define CGF_FAIL_CLOSED 1 /* keep redirecting: DNS fails while the proxy is dead */

/* Address families as stored in events and socket state (not AF_* values). */
#define CGF_FAMILY_V4 4
#define CGF_FAMILY_V6 6

/* The well-known DNS port that gets redirected to the proxy. */
#define CGF_DNS_PORT 53

#define CGF_COMM_LEN 16

/* cgf_dns_ports: other ports a resolver answers on (DoT/DoQ 853 by default),
 * refused outright to the deploy cgroup on connect/sendmsg (never redirected:
 * the proxy speaks plain DNS only). Key: __u16 port, host order; value: __u64
 * refusals counted (audit mode: would-be refusals). At most this many ports. */
#define CGF_DNS_PORTS_MAX 16

/* config.liveness: bits saying how the kernel decides the proxy is alive.
 * CGF_LIVE_SOCKET: a UDP socket bound to 127.0.0.1:proxy_port exists (looked
 * up with bpf_sk_lookup_udp on every port-53 connect/sendmsg). The socket
 * vanishes only when the process holding it dies (or closes it), so no amount
 * of work in the proxy can make it look dead. Combined (AND) with the
 * heartbeat check when heartbeat_timeout_ns is non-zero. */
#define CGF_LIVE_SOCKET 1

/* The name backstop (cgf_names): keys are a 64-bit FNV-1a hash of a name's
 * lower-cased wire form (length-prefixed labels, without the terminating zero
 * byte), fed from its LAST byte to its first, so the kernel gets the hash of
 * every suffix in one backward pass. Value: CGF_NAME_* bits. */
#define CGF_NAME_EXACT 1    /* the name itself is listed */
#define CGF_NAME_WILDCARD 2 /* every strict subdomain of the name is listed (*.name) */
#define CGF_NAME_MAX 255    /* longest wire-format name, terminating zero included (RFC 1035) */
#define CGF_NAME_HASH_SEED_HI 0xcbf29ce4 /* FNV-1a 64 offset basis, high and low 32 bits */
#define CGF_NAME_HASH_SEED_LO 0x84222325
#define CGF_NAME_HASH_PRIME 0x100000001b3 /* FNV 64 prime */
#define CGF_DNS_HEADER_LEN 12

/* cgf_prefilter4: one slot per IPv4 /16, indexed by the top 16 bits of the
 * address in host order (addr >> CGF_PREFILTER4_SHIFT). Slot value (one byte):
 * 0 = nothing blocked or learned anywhere in that /16, non-zero = look it up. */
#define CGF_PREFILTER4_SHIFT 16
#define CGF_PREFILTER4_SLOTS 65536

/* Index of each per-CPU counter in the cgf_counters map. */
enum cgf_counter {
	CGF_CNT_DNS_REDIRECT = 0,     /* port-53 connect/sendmsg rewritten to the proxy */
	CGF_CNT_IP_BLOCK = 1,         /* connect/sendmsg refused (EPERM), enforce mode */
	CGF_CNT_IP_AUDIT = 2,         /* connect/sendmsg to a blocked address allowed, audit mode */
	CGF_CNT_SKB_DROP = 3,         /* egress packet to a blocked address dropped */
	CGF_CNT_SKB_AUDIT = 4,        /* egress packet to a blocked address passed, audit mode */
	CGF_CNT_RINGBUF_LOST = 5,     /* event not emitted: ring buffer full */
	CGF_CNT_FAILOPEN_BYPASS = 6,  /* DNS not redirected: heartbeat stale, fail open */
	CGF_CNT_FAILCLOSED_REDIRECT = 7, /* DNS redirected although heartbeat stale, fail closed */
	CGF_CNT_DNS_ATTRIBUTED = 8,   /* (client port, DNS id) -> process recorded */
	CGF_CNT_RECV_RESTORED = 9,    /* reply source rewritten back to the original resolver */
	CGF_CNT_MAX = 10,
};

/* Index of each per-CPU counter in the cgf_dns_counters map (a second map,
 * added after the first release: growing cgf_counters would make a pinned one
 * impossible to adopt). */
enum cgf_dns_counter {
	CGF_DCNT_NAME_DROP = 0,      /* port-53 UDP query for a listed name dropped on egress */
	CGF_DCNT_NAME_AUDIT = 1,     /* the same, passed because mode is audit */
	CGF_DCNT_UNREADABLE_DROP = 2, /* port-53 UDP datagram that is not a readable one-question query, dropped */
	CGF_DCNT_TCP_REFUSED = 3,    /* port-53 TCP connect refused: proxy dead, fail open */
	CGF_DCNT_PROXY_SOCKET_GONE = 4, /* port-53 destination seen while the proxy socket was missing */
	CGF_DCNT_MAX = 5,
};

/* cgf_event.kind */
enum cgf_event_kind {
	CGF_EV_IP_BLOCK = 1,   /* blocked destination refused / dropped */
	CGF_EV_IP_AUDIT = 2,   /* blocked destination allowed because mode is audit */
	CGF_EV_PROXY_DOWN = 3, /* first DNS query that bypassed a stale proxy (fail open) */
	CGF_EV_NAME_DROP = 4,  /* port-53 UDP query for a listed name (or unreadable) dropped on egress */
};

/* cgf_event.hook: which program saw it */
enum cgf_hook {
	CGF_HOOK_CONNECT = 1,
	CGF_HOOK_SENDMSG = 2,
	CGF_HOOK_SKB = 3,
};

/* Value of the single entry of cgf_config. Written by userspace only. */
struct cgf_config {
	__u16 proxy_port;           /* host byte order; 0 = redirect nothing */
	__u8 mode;                  /* CGF_MODE_* */
	__u8 fail_mode;             /* CGF_FAIL_* */
	__u8 liveness;              /* CGF_LIVE_* bits; 0 = heartbeat only */
	__u8 _pad0[3];
	__u64 heartbeat_ns;         /* CLOCK_MONOTONIC ns (bpf_ktime_get_ns) of a heartbeat; the later of this and cgf_heartbeat counts */
	__u64 heartbeat_timeout_ns; /* 0 = never consider the proxy dead */
};

/* Who did it: the task (and its cgroup) behind a socket operation. */
struct cgf_proc {
	__u32 pid;  /* kernel pid = thread id */
	__u32 tgid; /* process id (what ps shows) */
	__u32 uid;
	__u32 _pad0;
	__u64 cgroup_id;
	char comm[CGF_COMM_LEN];
};

/* One ring buffer record. */
struct cgf_event {
	__u64 time_ns; /* bpf_ktime_get_ns() */
	struct cgf_proc proc;
	__u8 kind;     /* enum cgf_event_kind */
	__u8 family;   /* CGF_FAMILY_V4 / CGF_FAMILY_V6 */
	__u8 protocol; /* IPPROTO_* */
	__u8 hook;     /* enum cgf_hook */
	__u16 dport;   /* host byte order */
	__u16 _pad0;
	__u8 daddr[16]; /* network order; v4 uses the first 4 bytes */
};

/* Key of cgf_dns_attr: a DNS query as the proxy sees it. */
struct cgf_dns_key {
	__u16 client_port; /* host byte order: the query's UDP/TCP source port */
	__u16 dns_id;      /* host byte order: DNS header transaction id */
};

/* LPM trie keys (prefixlen first, as the kernel requires). */
struct cgf_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct cgf_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Key of cgf_learned: one address, IPv4 stored as ::ffff:a.b.c.d. Value: __u64 expiry ns. */
struct cgf_addr_key {
	__u8 addr[16];
};

/* Per-socket state (socket local storage), written when a DNS destination is redirected. */
struct cgf_sock_state {
	struct cgf_proc owner;  /* task that connected/sent to port 53 */
	__u8 orig_addr[16];     /* original destination; IPv4 as ::ffff:a.b.c.d */
	__u16 orig_port;        /* network byte order */
	__u16 proxy_port;       /* host byte order: the port it was redirected to */
	__u8 orig_family;       /* CGF_FAMILY_*: family of the hook that redirected */
	__u8 _pad0[3];
};

/* Per-CPU scratch of the egress hook for the name backstop: the question
 * name as read (lower-cased in place) and which bytes start a label. */
struct cgf_name_scratch {
	__u8 name[256];
	__u8 label[256];
};

/* Per-client limit of UDP datagrams to the proxy (issue 12, fairness).
 * The proxy's UDP socket has one receive queue for every client: a client
 * that sends faster than the proxy reads fills it, and the kernel then drops
 * everyone's queries alike. The egress hook sees each datagram to the proxy
 * before it is queued, in the sender's own context (UDP is sent
 * synchronously), whether the socket is connected or not. There it charges
 * two buckets, the sending process's (tgid) and its cgroup's (a run), and
 * drops the datagram when either is empty: sendmsg then fails with EPERM and
 * nothing reaches the queue. The ingress hook gives the charge back when the
 * proxy's answer arrives. So a client has at most `window` queries the proxy
 * has not answered yet, whatever the proxy's speed. Time refills a bucket
 * (at `rate`) only once no answer came for CGF_RATE_QUIET_NS: that returns
 * the charge of queries that were never answered (dropped by the proxy, or
 * lost with a restarted proxy) without letting a flooder whose answers keep
 * coming grow its share. Audit mode only counts.
 *
 * Budgets are kept in nanoseconds of the rate: one datagram costs interval_ns
 * (1e9 / rate), a full bucket holds window_ns (interval_ns * window).
 * interval_ns 0 = that bucket is off. */
struct cgf_rate_config {
	__u64 proc_interval_ns;   /* per process (tgid) */
	__u64 proc_window_ns;
	__u64 cgroup_interval_ns; /* per cgroup (the sender's cgroup: a run, or the deploy cgroup) */
	__u64 cgroup_window_ns;
};

/* Value of cgf_rate_procs and cgf_rate_cgroups (kernel-only). */
struct cgf_rate_bucket {
	__s64 budget_ns;      /* what the bucket holds, in ns of its rate */
	__u64 refilled_ns;    /* bpf_ktime_get_ns of the last refill by time */
	__u64 answered_ns;    /* bpf_ktime_get_ns of the last answer (refund) */
};

/* No refill by time while an answer came within this (1 s). */
#define CGF_RATE_QUIET_NS 1000000000ULL

/* max_entries of the bucket maps (LRU: an evicted bucket comes back full,
 * which a flooder can provoke only by churning more processes than this
 * while its run's bucket, in a map of its own, still holds it back). */
#define CGF_RATE_PROCS_MAX 16384
#define CGF_RATE_CGROUPS_MAX 4096

/* Index of each per-CPU counter in cgf_rate_counters (a map of its own, for
 * the same reason as cgf_dns_counters). */
enum cgf_rate_counter {
	CGF_RCNT_PROC_LIMITED = 0,   /* datagram to the proxy refused: its process was over the per-process rate */
	CGF_RCNT_CGROUP_LIMITED = 1, /* datagram to the proxy refused: its cgroup was over the per-cgroup rate */
	CGF_RCNT_AUDIT = 2,          /* would have been refused, passed because mode is audit */
	CGF_RCNT_MAX = 3,
};

#endif /* CGFENCE_H */
