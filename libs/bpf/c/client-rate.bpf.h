/* SPDX-License-Identifier: GPL-2.0 */
/*
 * client-rate.bpf.h: the per-client limit of UDP datagrams to the DNS proxy
 * (struct cgf_rate_config in cgfence.h says why and how). Included by
 * cgfence.bpf.c only: its egress hook calls client_rate_admit() for every
 * UDP datagram to the proxy, its ingress hook client_rate_refund() for every
 * answer from it.
 */
#ifndef CGF_CLIENT_RATE_BPF_H
#define CGF_CLIENT_RATE_BPF_H

/* One entry, written by userspace only. All zero (a fresh map) = no limit. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct cgf_rate_config);
} cgf_rate_config SEC(".maps");

/* tgid -> bucket. One entry per process that sent DNS recently; 16,384 is far
 * above the processes of all runs on a host asking DNS within the same
 * second. LRU so it never fills (an evicted bucket comes back full: a
 * flooder churning processes to provoke that is still held by its run's
 * bucket, in a map of its own). Preallocated: ~1 MiB. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CGF_RATE_PROCS_MAX);
	__type(key, __u32);
	__type(value, struct cgf_rate_bucket);
} cgf_rate_procs SEC(".maps");

/* cgroup id -> bucket. One entry per run (cgroup) that sent DNS recently;
 * 4,096 runs at once on one host is far beyond any deploy host. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CGF_RATE_CGROUPS_MAX);
	__type(key, __u64);
	__type(value, struct cgf_rate_bucket);
} cgf_rate_cgroups SEC(".maps");

/* One slot per enum cgf_rate_counter, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CGF_RCNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cgf_rate_counters SEC(".maps");

static __always_inline void rate_count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&cgf_rate_counters, &idx);

	if (c)
		*c += 1;
}

/* The bucket of `key` in `map` (created full), refilled by time if no
 * answer came for CGF_RATE_QUIET_NS, and capped at a full bucket. NULL only
 * if the map cannot hold it (then the datagram passes). */
static __always_inline struct cgf_rate_bucket *bucket(void *map, const void *key, __u64 now,
						      __u64 window_ns)
{
	struct cgf_rate_bucket *b = bpf_map_lookup_elem(map, key), fresh = {};

	if (!b) {
		fresh.budget_ns = (__s64)window_ns;
		fresh.refilled_ns = now;
		bpf_map_update_elem(map, key, &fresh, BPF_NOEXIST);
		return bpf_map_lookup_elem(map, key);
	}
	if (now - b->answered_ns > CGF_RATE_QUIET_NS && now > b->refilled_ns)
		b->budget_ns += (__s64)(now - b->refilled_ns);
	b->refilled_ns = now;
	if (b->budget_ns > (__s64)window_ns)
		b->budget_ns = (__s64)window_ns;
	return b;
}

/* Charges the datagram to its process's and its cgroup's bucket (those of
 * the socket's owner, which its answers refund too); returns 0
 * when it must be dropped (enforce mode and a bucket without a datagram's
 * worth). A refused datagram charges neither bucket. Charges and refunds are
 * atomic adds; the refill and cap are plain writes, so two CPUs at once can
 * at worst let a datagram or two more through, never fewer. */
static __always_inline int client_rate_admit(__u8 mode, __u32 tgid, __u64 cgroup_id)
{
	__u32 zero = 0;
	__u64 now;
	struct cgf_rate_config *rc = bpf_map_lookup_elem(&cgf_rate_config, &zero);
	struct cgf_rate_bucket *pb = 0, *cb = 0;
	int over = -1;

	if (!rc || (rc->proc_interval_ns == 0 && rc->cgroup_interval_ns == 0))
		return 1;
	now = bpf_ktime_get_ns();
	if (rc->proc_interval_ns != 0) {
		pb = bucket(&cgf_rate_procs, &tgid, now, rc->proc_window_ns);
		if (pb && pb->budget_ns < (__s64)rc->proc_interval_ns)
			over = CGF_RCNT_PROC_LIMITED;
	}
	if (over < 0 && rc->cgroup_interval_ns != 0) {
		cb = bucket(&cgf_rate_cgroups, &cgroup_id, now, rc->cgroup_window_ns);
		if (cb && cb->budget_ns < (__s64)rc->cgroup_interval_ns)
			over = CGF_RCNT_CGROUP_LIMITED;
	}
	if (over >= 0) {
		if (mode == CGF_MODE_AUDIT) {
			rate_count(CGF_RCNT_AUDIT);
			return 1;
		}
		rate_count(over);
		return 0;
	}
	if (pb)
		__sync_fetch_and_add(&pb->budget_ns, -(__s64)rc->proc_interval_ns);
	if (cb)
		__sync_fetch_and_add(&cb->budget_ns, -(__s64)rc->cgroup_interval_ns);
	return 1;
}

/* An answer from the proxy arrived for a socket of process `tgid` in cgroup
 * `cgroup_id` (the ingress hook): its query's charge goes back to both
 * buckets (the next admit caps them at full). */
static __always_inline void client_rate_refund(__u32 tgid, __u64 cgroup_id)
{
	__u32 zero = 0;
	struct cgf_rate_config *rc = bpf_map_lookup_elem(&cgf_rate_config, &zero);
	struct cgf_rate_bucket *b;
	__u64 now;

	if (!rc || (rc->proc_interval_ns == 0 && rc->cgroup_interval_ns == 0))
		return;
	now = bpf_ktime_get_ns();
	if (rc->proc_interval_ns != 0) {
		b = bpf_map_lookup_elem(&cgf_rate_procs, &tgid);
		if (b) {
			__sync_fetch_and_add(&b->budget_ns, (__s64)rc->proc_interval_ns);
			b->answered_ns = now;
		}
	}
	if (rc->cgroup_interval_ns != 0) {
		b = bpf_map_lookup_elem(&cgf_rate_cgroups, &cgroup_id);
		if (b) {
			__sync_fetch_and_add(&b->budget_ns, (__s64)rc->cgroup_interval_ns);
			b->answered_ns = now;
		}
	}
}

#endif /* CGF_CLIENT_RATE_BPF_H */
