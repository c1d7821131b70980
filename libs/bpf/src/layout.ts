// The loader's view of c/cgfence.h: struct offsets and sizes, constants and
// enum values. Every number here is checked against the C header by
// layout.int.spec.ts (it compiles a probe that prints offsetof/sizeof/values),
// so this file can never silently drift from the kernel side.

export interface FieldLayout {
  offset: number;
  size: number;
}

export interface StructLayout<F extends string> {
  /** The C type name, e.g. 'struct cgf_event'. */
  cType: string;
  size: number;
  /** Every member, padding included: the sizes must add up to `size`. */
  fields: Record<F, FieldLayout>;
}

const f = (offset: number, size: number): FieldLayout => ({ offset, size });

export const CONFIG = {
  cType: 'struct cgf_config',
  size: 24,
  fields: {
    proxy_port: f(0, 2),
    mode: f(2, 1),
    fail_mode: f(3, 1),
    liveness: f(4, 1),
    _pad0: f(5, 3),
    heartbeat_ns: f(8, 8),
    heartbeat_timeout_ns: f(16, 8),
  },
} as const satisfies StructLayout<string>;

export const PROC = {
  cType: 'struct cgf_proc',
  size: 40,
  fields: {
    pid: f(0, 4),
    tgid: f(4, 4),
    uid: f(8, 4),
    _pad0: f(12, 4),
    cgroup_id: f(16, 8),
    comm: f(24, 16),
  },
} as const satisfies StructLayout<string>;

export const EVENT = {
  cType: 'struct cgf_event',
  size: 72,
  fields: {
    time_ns: f(0, 8),
    proc: f(8, 40),
    kind: f(48, 1),
    family: f(49, 1),
    protocol: f(50, 1),
    hook: f(51, 1),
    dport: f(52, 2),
    _pad0: f(54, 2),
    daddr: f(56, 16),
  },
} as const satisfies StructLayout<string>;

export const DNS_KEY = {
  cType: 'struct cgf_dns_key',
  size: 4,
  fields: { client_port: f(0, 2), dns_id: f(2, 2) },
} as const satisfies StructLayout<string>;

export const LPM4_KEY = {
  cType: 'struct cgf_lpm4_key',
  size: 8,
  fields: { prefixlen: f(0, 4), addr: f(4, 4) },
} as const satisfies StructLayout<string>;

export const LPM6_KEY = {
  cType: 'struct cgf_lpm6_key',
  size: 20,
  fields: { prefixlen: f(0, 4), addr: f(4, 16) },
} as const satisfies StructLayout<string>;

export const ADDR_KEY = {
  cType: 'struct cgf_addr_key',
  size: 16,
  fields: { addr: f(0, 16) },
} as const satisfies StructLayout<string>;

/** The egress hook's per-CPU scratch for the name backstop (only its size matters here). */
export const NAME_SCRATCH = {
  cType: 'struct cgf_name_scratch',
  size: 512,
  fields: { name: f(0, 256), label: f(256, 256) },
} as const satisfies StructLayout<string>;

/** Value of cgf_rate_config: the per-client rate limit (client-rate.ts). */
export const RATE_CONFIG = {
  cType: 'struct cgf_rate_config',
  size: 32,
  fields: {
    proc_interval_ns: f(0, 8),
    proc_window_ns: f(8, 8),
    cgroup_interval_ns: f(16, 8),
    cgroup_window_ns: f(24, 8),
  },
} as const satisfies StructLayout<string>;

/** All structs the loader reads or writes. */
export const STRUCTS: StructLayout<string>[] = [CONFIG, PROC, EVENT, DNS_KEY, LPM4_KEY, LPM6_KEY, ADDR_KEY, NAME_SCRATCH, RATE_CONFIG];

/** Value size of the LPM tries (a __u32 marker) and of cgf_learned (a __u64 expiry). */
export const TRIE_VALUE_SIZE = 4;
export const LEARNED_VALUE_SIZE = 8;
/** max_entries of cgf_learned (checked against the object by layout.int.spec.ts). */
export const LEARNED_MAX_ENTRIES = 65536;
/** Key (a __u32 slot index) and value (a __u8 mark) sizes of cgf_prefilter4. */
export const PREFILTER4_KEY_SIZE = 4;
export const PREFILTER4_VALUE_SIZE = 1;
/** Key (a __u64 name hash) and value (__u8 CGF_NAME_* bits) sizes of the name maps in cgf_names. */
export const NAME_KEY_SIZE = 8;
export const NAME_VALUE_SIZE = 1;
/** Value of cgf_heartbeat: a __u64 CLOCK_MONOTONIC ns. */
export const HEARTBEAT_VALUE_SIZE = 8;

export const CONSTANTS = {
  CGF_MODE_ENFORCE: 0,
  CGF_MODE_AUDIT: 1,
  CGF_FAIL_OPEN: 0,
  CGF_FAIL_CLOSED: 1,
  CGF_FAMILY_V4: 4,
  CGF_FAMILY_V6: 6,
  CGF_DNS_PORT: 53,
  CGF_COMM_LEN: 16,
  CGF_DNS_PORTS_MAX: 16,
  CGF_LIVE_SOCKET: 1,
  CGF_NAME_EXACT: 1,
  CGF_NAME_WILDCARD: 2,
  CGF_NAME_MAX: 255,
  CGF_NAME_HASH_SEED_HI: 0xcbf29ce4,
  CGF_NAME_HASH_SEED_LO: 0x84222325,
  CGF_NAME_HASH_PRIME: 0x100000001b3,
  CGF_DNS_HEADER_LEN: 12,
  CGF_PREFILTER4_SHIFT: 16,
  CGF_PREFILTER4_SLOTS: 65536,
  CGF_EV_IP_BLOCK: 1,
  CGF_EV_IP_AUDIT: 2,
  CGF_EV_PROXY_DOWN: 3,
  CGF_EV_NAME_DROP: 4,
  CGF_HOOK_CONNECT: 1,
  CGF_HOOK_SENDMSG: 2,
  CGF_HOOK_SKB: 3,
  CGF_RATE_PROCS_MAX: 16384,
  CGF_RATE_CGROUPS_MAX: 4096,
  CGF_RATE_QUIET_NS: 1_000_000_000,
} as const;

/**
 * Per-CPU counters in index order (enum cgf_counter): [C enumerator, name
 * reported by DataPlane.counters()]. CGF_CNT_MAX must equal the length.
 */
export const COUNTERS: readonly (readonly [string, string])[] = [
  ['CGF_CNT_DNS_REDIRECT', 'dns_redirects'],
  ['CGF_CNT_IP_BLOCK', 'ip_blocks'],
  ['CGF_CNT_IP_AUDIT', 'ip_audits'],
  ['CGF_CNT_SKB_DROP', 'skb_drops'],
  ['CGF_CNT_SKB_AUDIT', 'skb_audits'],
  ['CGF_CNT_RINGBUF_LOST', 'ringbuf_lost'],
  ['CGF_CNT_FAILOPEN_BYPASS', 'failopen_bypass'],
  ['CGF_CNT_FAILCLOSED_REDIRECT', 'failclosed_redirects'],
  ['CGF_CNT_DNS_ATTRIBUTED', 'dns_attributed'],
  ['CGF_CNT_RECV_RESTORED', 'recv_restored'],
];

/**
 * Per-CPU counters of cgf_dns_counters in index order (enum cgf_dns_counter),
 * reported by DataPlane.counters() next to COUNTERS. CGF_DCNT_MAX must equal the length.
 */
export const DNS_COUNTERS: readonly (readonly [string, string])[] = [
  ['CGF_DCNT_NAME_DROP', 'name_drops'],
  ['CGF_DCNT_NAME_AUDIT', 'name_audits'],
  ['CGF_DCNT_UNREADABLE_DROP', 'unreadable_dns_drops'],
  ['CGF_DCNT_TCP_REFUSED', 'failopen_tcp_refused'],
  ['CGF_DCNT_PROXY_SOCKET_GONE', 'proxy_socket_missing'],
];

/**
 * Per-CPU counters of cgf_rate_counters in index order (enum cgf_rate_counter),
 * reported by DataPlane.counters() after DNS_COUNTERS. CGF_RCNT_MAX must equal the length.
 */
export const RATE_COUNTERS: readonly (readonly [string, string])[] = [
  ['CGF_RCNT_PROC_LIMITED', 'dns_client_rate_limited'],
  ['CGF_RCNT_CGROUP_LIMITED', 'dns_run_rate_limited'],
  ['CGF_RCNT_AUDIT', 'dns_rate_limit_audits'],
];

/** Programs in the object: section-derived function name -> attach point name used for pins. */
export const PROGRAMS = [
  'cgf_connect4',
  'cgf_connect6',
  'cgf_sendmsg4',
  'cgf_sendmsg6',
  'cgf_recvmsg4',
  'cgf_recvmsg6',
  'cgf_egress',
  // Added with the per-client rate limit (issue 12): answers from the proxy refund their query.
  'cgf_ingress',
] as const;

/** Maps pinned under <pinDir>/maps (names as in cgfence.bpf.c). */
export const PINNED_MAPS = [
  'cgf_config',
  'cgf_counters',
  'cgf_events',
  'cgf_dns_attr',
  'cgf_learned',
  'cgf_block4',
  'cgf_block6',
  'cgf_sock',
  // Added after the first release: attach() creates and pins it next to pins
  // of an older agent that lack it (libbpf creates what is not pinned).
  'cgf_prefilter4',
  // Added with the name backstop and the socket liveness check (created next
  // to older pins the same way).
  'cgf_names',
  'cgf_dns_counters',
  'cgf_heartbeat',
  'cgf_scratch',
  // Added with the refused DNS ports (issue 13), created next to older pins the same way.
  'cgf_dns_ports',
  // Added with the per-client rate limit (issue 12), created next to older pins the same way.
  'cgf_rate_config',
  'cgf_rate_procs',
  'cgf_rate_cgroups',
  'cgf_rate_counters',
] as const;

export type ProgramName = (typeof PROGRAMS)[number];
export type MapName = (typeof PINNED_MAPS)[number];
