// Block events for tests and benchmarks.
import { randomUUID } from 'node:crypto';
import type { BlockEvent } from '@cgfence/proto';

/** A UUIDv7 for a time (random tail). */
export function uuidv7(ms: number): string {
  const hex = ms.toString(16).padStart(12, '0');
  const r = randomUUID().replace(/-/g, '');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-7${r.slice(13, 16)}-${((parseInt(r[16]!, 16) & 0x3) | 0x8).toString(16)}${r.slice(17, 20)}-${r.slice(20, 32)}`;
}

export function blockEvent(host: string, i: number, at: number, over: Partial<BlockEvent> = {}): BlockEvent {
  return {
    id: uuidv7(at),
    time: new Date(at).toISOString(),
    host,
    cohort: 'canary',
    runId: `run-${host}-${Math.floor(i / 100)}`,
    labels: { repo: 'payments', stage: i % 2 ? 'deploy' : 'test' },
    pid: 1000 + (i % 50),
    comm: 'curl',
    cmdline: `curl https://svc${i % 20}.example.com/health`,
    uid: 1000,
    cgroupId: '4242',
    qname: `svc${i % 20}.example.com`,
    qtype: 'A',
    entry: '*.example.com',
    action: 'blocked',
    method: 'dns',
    policyVersion: 'core v3',
    policyHash: 'sha256:abc',
    destination: null,
    message: null,
    ...over,
  };
}

