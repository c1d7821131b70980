// Host agent data plane, userspace half: DNS proxy, policy matching, event
// journal, run bookkeeping. The agent main wires these to libs/bpf.
export * from './policy/entry-types';
export * from './policy/domain-matcher';
export * from './policy/policy';
export * from './dns/dns-events';
export * from './dns/dns-proxy';
export * from './dns/dns-wire';
export * from './dns/upstream';
export * from './dns/upstream-resolver';
export * from './dns/address-learner';
export * from './dns/process-details';
export * from './journal/event-id';
export * from './journal/journal-record';
export * from './journal/event-journal';
export * from './journal/block-log';
export * from './runs/cgroup-fs';
export * from './runs/run-registry';
export * from './runs/domain-tally';
export * from './fleet/evaluate';
export * from './fleet/fleet-client';
export * from './fleet/fleet-config';
export * from './fleet/last-good';
