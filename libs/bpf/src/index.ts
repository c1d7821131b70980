// @cgfence/bpf: the cgroup eBPF data plane (c/cgfence.bpf.c) and its loader.
export { findCgroup2Root, ensureBpffs, parseMounts, isMountedAs } from './mounts';
export type { MountEntry } from './mounts';
export { DataPlane, DataPlaneError, PreparedIpPolicy, BPF_OBJECT_PATH, COUNTER_NAMES } from './data-plane';
export type { AttachOptions, AppliedCounts, KernelPolicy } from './data-plane';
export { encodeNameKeys, nameKeyHex, nameWire } from './name-backstop';
export type { NamePolicy } from './name-backstop';
export { DnsAttributionReader, dnsAttributionPin } from './dns-attribution';
export type { Mode, FailMode, DataPlaneConfig, ProcessInfo, KernelEvent, DataPlaneCounters } from './codec';
export { AddressError, parseCidr, parseIp, formatIp } from './addr';
export type { Cidr, Family } from './addr';
export { compareIpPolicy, ipPolicyDigest, sortLpmKeys } from './ip-digest';
export { prefilterSlotOf } from './prefilter';
export { LEARNED_MAX_ENTRIES } from './layout';
export { DEFAULT_REFUSED_DNS_PORTS, validateRefusedDnsPorts } from './dns-ports';
export type { IpPolicyDigest, IpPolicyDrift, LpmKeys } from './ip-digest';
export { attachCgroupLinks, cgroupLinkState, detachCgroupLinks } from './cgroup-links';
export type { CgroupLinkState } from './cgroup-links';
