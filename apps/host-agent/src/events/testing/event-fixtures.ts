// Journal records for tests of the event path (shipper, spool, end to end).
import { newEventId } from '../../journal/event-id';
import type { JournalRecord } from '../../journal/journal-record';

/** A DNS block on `host`, as the agent journals it, with a fresh event id; `n` varies the process and name. */
export function blockRecord(host: string, n: number): JournalRecord {
  return {
    id: newEventId(),
    time: new Date().toISOString(),
    host,
    cohort: 'canary',
    runId: null,
    labels: {},
    pid: 1000 + n,
    comm: 'curl',
    cmdline: `curl https://blocked-${n}.example`,
    cmdlineRedacted: false,
    uid: 0,
    cgroupId: '4242',
    qname: `blocked-${n}.example`,
    qtype: 'A',
    entry: 'blocked-*.example',
    cnameTarget: null,
    action: 'blocked',
    method: 'dns',
    policyVersion: 'list v3',
    policyHash: 'sha256:00',
    destination: null,
    message: null,
  };
}
