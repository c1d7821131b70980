/* SPDX-License-Identifier: GPL-2.0 */
/*
 * client-rate.bpf.h: the per-client rate limit of UDP datagrams to the DNS
 * proxy (struct cgf_rate_config in cgfence.h says why and how). Included by
 * cgfence.bpf.c only; its egress hook calls client_rate_admit() for every UDP
 * datagram to the proxy.
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

/* tgid -> GCRA schedule (ns). One entry per process that sent DNS recently;
 * 16,384 is far above the processes of all runs on a host asking DNS within
 * the same second. LRU so it never fills; preallocated: ~1 MiB. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CGF_RATE_PROCS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} cgf_rate_procs SEC(".maps");

/* cgroup id -> GCRA schedule (ns). One entry per run (cgroup) that sent DNS
 * recently; 4,096 runs at once on one host is far beyond any deploy host. A
 * map apart from cgf_rate_procs so churning processes cannot evict it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CGF_RATE_CGROUPS_MAX);
	__type(key, __u64);
	__type(value, __u64);
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

/* A bucket's schedule after one more datagram at `now`, or 0 when the
 * datagram is over the rate (the schedule is more than burst_ns ahead).
 * A bucket seen for the first time (tat 0) starts full. */
static __always_inline __u64 gcra_next(__u64 tat, __u64 now, __u64 interval_ns, __u64 burst_ns)
{
	__u64 start = tat > now ? tat : now;

	if (start - now > burst_ns)
		return 0;
	return start + interval_ns;
}

/* Charges the datagram to its process's and its cgroup's bucket; returns 0
 * when it must be dropped (enforce mode and a bucket empty). A refused
 * datagram charges neither bucket, so a flooder gets exactly the rate.
 * Two CPUs charging the same bucket at once may both pass on one slot (the
 * update is not atomic): the limit can only be exceeded by that race, never
 * tightened. */
static __always_inline int client_rate_admit(__u8 mode)
{
	__u32 zero = 0, tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 cgroup_id = bpf_get_current_cgroup_id();
	struct cgf_rate_config *rc = bpf_map_lookup_elem(&cgf_rate_config, &zero);
	__u64 now, proc_next = 0, cg_next = 0, *proc_tat = 0, *cg_tat = 0;
	int over = -1;

	if (!rc || (rc->proc_interval_ns == 0 && rc->cgroup_interval_ns == 0))
		return 1;
	now = bpf_ktime_get_ns();
	if (rc->proc_interval_ns != 0) {
		proc_tat = bpf_map_lookup_elem(&cgf_rate_procs, &tgid);
		proc_next = gcra_next(proc_tat ? *proc_tat : 0, now, rc->proc_interval_ns, rc->proc_burst_ns);
		if (proc_next == 0)
			over = CGF_RCNT_PROC_LIMITED;
	}
	if (over < 0 && rc->cgroup_interval_ns != 0) {
		cg_tat = bpf_map_lookup_elem(&cgf_rate_cgroups, &cgroup_id);
		cg_next = gcra_next(cg_tat ? *cg_tat : 0, now, rc->cgroup_interval_ns, rc->cgroup_burst_ns);
		if (cg_next == 0)
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
	if (rc->proc_interval_ns != 0) {
		if (proc_tat)
			*proc_tat = proc_next;
		else
			bpf_map_update_elem(&cgf_rate_procs, &tgid, &proc_next, BPF_ANY);
	}
	if (rc->cgroup_interval_ns != 0) {
		if (cg_tat)
			*cg_tat = cg_next;
		else
			bpf_map_update_elem(&cgf_rate_cgroups, &cgroup_id, &cg_next, BPF_ANY);
	}
	return 1;
}

/* Gives one datagram's charge back to a bucket: its answer arrived. Never
 * beyond a full bucket (a schedule before now). */
static __always_inline void gcra_refund(__u64 *tat, __u64 now, __u64 interval_ns)
{
	__u64 t = *tat;

	if (t <= now)
		return;
	*tat = t - now > interval_ns ? t - interval_ns : now;
}

/* An answer from the proxy arrived for a socket of process `tgid` in cgroup
 * `cgroup_id` (the ingress hook): its query's charge goes back to both
 * buckets. A client is so held to at most `burst` queries the proxy has not
 * answered yet (a window that follows the proxy's speed, whatever it is);
 * only queries the proxy never answers are held to the rate. */
static __always_inline void client_rate_refund(__u32 tgid, __u64 cgroup_id)
{
	__u32 zero = 0;
	struct cgf_rate_config *rc = bpf_map_lookup_elem(&cgf_rate_config, &zero);
	__u64 now, *tat;

	if (!rc || (rc->proc_interval_ns == 0 && rc->cgroup_interval_ns == 0))
		return;
	now = bpf_ktime_get_ns();
	if (rc->proc_interval_ns != 0) {
		tat = bpf_map_lookup_elem(&cgf_rate_procs, &tgid);
		if (tat)
			gcra_refund(tat, now, rc->proc_interval_ns);
	}
	if (rc->cgroup_interval_ns != 0) {
		tat = bpf_map_lookup_elem(&cgf_rate_cgroups, &cgroup_id);
		if (tat)
			gcra_refund(tat, now, rc->cgroup_interval_ns);
	}
}

#endif /* CGF_CLIENT_RATE_BPF_H */
