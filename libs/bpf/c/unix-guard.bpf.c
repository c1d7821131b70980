// SPDX-License-Identifier: GPL-2.0
/*
 * cgfence unix-socket guard: refuses connections from the deploy cgroup to
 * the unix sockets of resolving daemons (nscd, systemd-resolved's varlink,
 * sssd's nss responder), so glibc falls back to DNS on port 53, which the
 * proxy sees. A separate object from cgfence.bpf.c: it needs kernel 6.7+
 * (BPF_CGROUP_UNIX_CONNECT/SENDMSG) and must fail alone on older kernels.
 *
 *   connect_unix  connect() to a listed path           -> EPERM (audit: allowed)
 *   sendmsg_unix  sendto() of an unconnected datagram  -> EPERM (audit: allowed)
 *
 * Debian 12's libbpf (1.1) and uapi headers (6.1) do not know these attach
 * types: the programs sit in sections libbpf does not recognise, and the
 * loader (src/unix-guard.ts) sets the program type (CGROUP_SOCK_ADDR) and the
 * numeric expected attach type itself. The kernel-side context
 * (struct bpf_sock_addr_kern) is declared here with CO-RE relocations;
 * src/unix-guard.int.spec.ts checks the numbers against the kernel's BTF.
 *
 * cgf_config, cgf_events and cgf_counters are the main object's maps (the
 * loader reuses their fds): the mode, the ring buffer and its loss counter
 * are shared.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "cgfence.h"
#include "unix-guard.h"

char LICENSE[] SEC("license") = "GPL";

/* The kernel's context behind struct bpf_sock_addr (include/linux/filter.h);
 * field offsets are relocated against the running kernel's BTF. */
struct bpf_sock_addr_kern {
	void *sk;
	void *uaddr;
	__u32 uaddrlen;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

/* Same definitions as in cgfence.bpf.c; replaced by the main object's maps. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgf_config);
} cgf_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} cgf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CGF_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cgf_counters SEC(".maps");

/* The refused socket paths, written by the agent; the value counts refusals. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CGF_UNIX_PATHS_MAX);
	__type(key, struct cgf_unix_key);
	__type(value, struct cgf_unix_value);
} cgf_unix_paths SEC(".maps");

/* sockaddr_un's sun_path starts after the 2-byte family. */
#define SUN_PATH_OFFSET 2

static __always_inline void emit_unix(__u8 kind, __u8 hook, __u32 id)
{
	struct cgf_event *e = bpf_ringbuf_reserve(&cgf_events, sizeof(*e), 0);
	__u64 pid_tgid;

	if (!e) {
		__u32 idx = CGF_CNT_RINGBUF_LOST;
		__u64 *c = bpf_map_lookup_elem(&cgf_counters, &idx);

		if (c)
			*c += 1; /* the per-path counter still counts the refusal */
		return;
	}
	e->time_ns = bpf_ktime_get_ns();
	pid_tgid = bpf_get_current_pid_tgid();
	e->proc.pid = (__u32)pid_tgid;
	e->proc.tgid = pid_tgid >> 32;
	e->proc.uid = (__u32)bpf_get_current_uid_gid();
	e->proc._pad0 = 0;
	e->proc.cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->proc.comm, sizeof(e->proc.comm));
	e->kind = kind;
	e->family = CGF_FAMILY_UNIX;
	e->protocol = 0;
	e->hook = hook;
	e->dport = 0;
	e->_pad0 = 0;
	__builtin_memset(e->daddr, 0, sizeof(e->daddr));
	__builtin_memcpy(e->daddr, &id, sizeof(id));
	bpf_ringbuf_submit(e, 0);
}

/* 1: allow, 0: refuse (EPERM). */
static __always_inline int guard(struct bpf_sock_addr *ctx, __u8 hook)
{
	struct bpf_sock_addr_kern *sa = bpf_cast_to_kern_ctx(ctx);
	struct cgf_unix_key key = {};
	struct cgf_unix_value *v;
	struct cgf_config *cfg;
	__u32 zero = 0, limit, len = 0;
	int abstract, done = 0;
	char *uaddr;

	if (!sa)
		return 1;
	limit = sa->uaddrlen;
	uaddr = sa->uaddr;
	if (limit <= SUN_PATH_OFFSET || !uaddr)
		return 1; /* unnamed (autobind) address: nothing to match */
	limit -= SUN_PATH_OFFSET;
	if (limit > CGF_UNIX_PATH_LEN)
		limit = CGF_UNIX_PATH_LEN;
	/* The kernel's copy of the address (a sockaddr_storage): 108 bytes are
	 * always readable; only the first `limit` are the caller's. */
	if (bpf_probe_read_kernel(key.path, sizeof(key.path), uaddr + SUN_PATH_OFFSET) != 0)
		return 1;
	/* A pathname ends at its first NUL; an abstract name (leading NUL) is
	 * every byte up to the address length, as the kernel reads them. */
	abstract = key.path[0] == 0;
#pragma unroll
	for (int i = 0; i < CGF_UNIX_PATH_LEN; i++) {
		if (i >= limit || (!abstract && key.path[i] == 0))
			done = 1;
		if (done)
			key.path[i] = 0;
		else
			len = i + 1;
	}
	key.len = len;
	v = bpf_map_lookup_elem(&cgf_unix_paths, &key);
	if (!v)
		return 1;
	__sync_fetch_and_add(&v->refusals, 1);
	cfg = bpf_map_lookup_elem(&cgf_config, &zero);
	if (cfg && cfg->mode == CGF_MODE_AUDIT) {
		emit_unix(CGF_EV_UNIX_AUDIT, hook, v->id);
		return 1;
	}
	emit_unix(CGF_EV_UNIX_REFUSED, hook, v->id);
	return 0;
}

/* Sections libbpf 1.1 does not know: the loader sets type and attach type. */
SEC("cgfence_unix_connect")
int cgf_connect_unix(struct bpf_sock_addr *ctx)
{
	return guard(ctx, CGF_HOOK_CONNECT);
}

SEC("cgfence_unix_sendmsg")
int cgf_sendmsg_unix(struct bpf_sock_addr *ctx)
{
	return guard(ctx, CGF_HOOK_SENDMSG);
}
