import type { HostReport } from '@cgfence/proto';

/** A host's report as an agent sends it: nothing applied, healthy, enforcing; `over` replaces any field. */
export function hostReport(hostId: string, over: Partial<HostReport> = {}): HostReport {
  return {
    hostId,
    seenRevision: 1,
    applied: null,
    lastError: null,
    mode: 'enforce',
    failMode: 'open',
    health: { proxy: true, kernel: true },
    drift: null,
    sentAt: new Date().toISOString(),
    ...over,
  };
}
