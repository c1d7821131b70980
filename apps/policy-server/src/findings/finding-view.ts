import type { FindingView } from '@cgfence/proto';
import type { FindingRow } from './findings.read-model';

const iso = (d: Date | string | null): string | null => (d === null ? null : new Date(d).toISOString());

export function findingView(r: FindingRow): FindingView {
  return {
    id: r.id,
    ownerKey: r.owner_key,
    owner: r.owner,
    team: r.team ?? null,
    entry: r.entry,
    state: r.state,
    regression: r.regression,
    firstSeen: iso(r.first_seen)!,
    lastSeen: iso(r.last_seen)!,
    blocked: Number(r.blocked),
    audited: Number(r.audited),
    names: r.names,
    hosts: r.hosts,
    cohorts: r.cohorts,
    runs: r.runs,
    commands: r.commands,
    versions: r.versions,
    fixedAt: iso(r.fixed_at),
    acceptedUntil: iso(r.accepted_until),
    updatedAt: iso(r.updated_at)!,
  };
}
