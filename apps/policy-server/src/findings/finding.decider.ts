import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';
import { evolve, FindingEvent, FindingState, initialState, Observation } from './finding';

export type FindingCommand =
  /** Blocked or audited events of one ingest batch (or several) reached the history. */
  | { type: 'RecordOccurrence'; id: string; ownerKey: string; owner: string; entry: string; observation: Observation; now: Date }
  | { type: 'AcknowledgeFinding'; note: string; now: Date }
  /** Someone says it is fixed: it resolves once no occurrence follows for the fix quiet period. */
  | { type: 'MarkFindingFixed'; note: string; now: Date }
  | { type: 'AcceptFinding'; note: string; until: Date; now: Date }
  /** Time passes: quiet periods end, acceptances expire. */
  | { type: 'TickFinding'; quietMs: number; fixQuietMs: number; now: Date; expiryWarningMs?: number };

const ms = (iso: string): number => Date.parse(iso);
const days = (n: number): string => (n % 86_400_000 === 0 ? `${n / 86_400_000}d` : n % 3_600_000 === 0 ? `${n / 3_600_000}h` : `${Math.round(n / 1000)}s`);

export function decide(c: FindingCommand, s: FindingState): FindingEvent[] {
  const at = c.now.toISOString();
  if (c.type === 'RecordOccurrence') {
    const observed: FindingEvent = { type: 'FindingObserved', data: c.observation };
    const where = c.observation.hosts.at(-1) ?? 'a host';
    switch (s.status) {
      case 'absent':
        return [{ type: 'FindingOpened', data: { id: c.id, ownerKey: c.ownerKey, owner: c.owner, entry: c.entry, at: c.observation.firstSeen } }, observed];
      case 'resolved':
        // An event that happened before the resolution (a late spool) is history, not a regression.
        if (ms(c.observation.lastSeen) <= ms(s.since)) return [observed];
        return [{ type: 'FindingReopened', data: { cause: 'regression', note: `seen again on ${where} at ${c.observation.lastSeen}`, at } }, observed];
      case 'new':
      case 'acknowledged':
      case 'accepted':
        if (s.fixedAt !== null && ms(c.observation.lastSeen) > ms(s.fixedAt)) {
          return [{ type: 'FindingFixDisproved', data: { note: `seen on ${where} at ${c.observation.lastSeen}, after it was marked fixed`, at } }, observed];
        }
        return [observed];
    }
  }
  if (s.status === 'absent') {
    if (c.type === 'TickFinding') return [];
    throw new DomainError('finding.not_found', 'no such finding');
  }
  switch (c.type) {
    case 'AcknowledgeFinding':
      if (s.status === 'acknowledged') return [];
      if (s.status !== 'new') throw new DomainError('finding.state_conflict', `finding ${s.id} is ${s.status}; only a new finding can be acknowledged`);
      return [{ type: 'FindingAcknowledged', data: { note: c.note, at } }];
    case 'MarkFindingFixed':
      if (s.status === 'resolved' || s.fixedAt !== null) return [];
      return [{ type: 'FindingMarkedFixed', data: { note: c.note, at } }];
    case 'AcceptFinding':
      if (c.until.getTime() <= c.now.getTime()) throw new DomainError('validation.failed', `accept until ${c.until.toISOString()}: that is not in the future`);
      return [{ type: 'FindingAccepted', data: { note: c.note, until: c.until.toISOString(), at } }];
    case 'TickFinding': {
      const now = c.now.getTime();
      if (s.status === 'resolved') return [];
      if (s.fixedAt !== null && now - Math.max(ms(s.fixedAt), ms(s.lastSeen)) >= c.fixQuietMs) {
        return [{ type: 'FindingResolved', data: { how: 'fixed', note: `marked fixed; no occurrence for ${days(c.fixQuietMs)} since`, at } }];
      }
      if (s.status === 'accepted') {
        if (s.acceptedUntil !== null && ms(s.acceptedUntil) <= now) {
          return [{ type: 'FindingReopened', data: { cause: 'acceptance-expired', note: `accepted until ${s.acceptedUntil}; that has passed`, at } }];
        }
        const lead = c.expiryWarningMs ?? 0;
        if (lead > 0 && s.acceptedUntil !== null && s.warnedUntil !== s.acceptedUntil && ms(s.acceptedUntil) - now <= lead) {
          return [{ type: 'FindingAcceptanceExpiring', data: { until: s.acceptedUntil, note: `accepted until ${s.acceptedUntil}: it reopens then unless accepted again`, at } }];
        }
        return [];
      }
      if (now - ms(s.lastSeen) >= c.quietMs) {
        return [{ type: 'FindingResolved', data: { how: 'quiet', note: `no occurrence for ${days(c.quietMs)}`, at } }];
      }
      return [];
    }
  }
}

export const findingDecider: Decider<FindingState, FindingCommand, FindingEvent> = { initialState, evolve, decide };
