/** The finding aggregate: one owner's dependency on one listed entry. Its events, state and evolve. */

export interface Observation {
  firstSeen: string;
  lastSeen: string;
  blocked: number;
  audited: number;
  names: string[];
  hosts: string[];
  cohorts: string[];
  runs: string[];
  commands: string[];
  versions: string[];
}

export type FindingEvent =
  | { type: 'FindingOpened'; data: { id: string; ownerKey: string; owner: string; entry: string; at: string } }
  | { type: 'FindingObserved'; data: Observation }
  | { type: 'FindingAcknowledged'; data: { note: string; at: string } }
  | { type: 'FindingMarkedFixed'; data: { note: string; at: string } }
  /** Seen again after it was marked fixed: the fix did not hold. */
  | { type: 'FindingFixDisproved'; data: { note: string; at: string } }
  | { type: 'FindingResolved'; data: { how: 'quiet' | 'fixed'; note: string; at: string } }
  | { type: 'FindingAccepted'; data: { note: string; until: string; at: string } }
  | { type: 'FindingReopened'; data: { cause: 'regression' | 'acceptance-expired'; note: string; at: string } }
  /** The acceptance ends soon (CGFENCE_FINDINGS_EXPIRY_WARNING before `until`): its owner is warned, once per acceptance. */
  | { type: 'FindingAcceptanceExpiring'; data: { until: string; note: string; at: string } };

export type FindingStatus = 'new' | 'acknowledged' | 'resolved' | 'accepted';

export type FindingState =
  | { status: 'absent' }
  | {
      status: FindingStatus;
      id: string;
      lastSeen: string;
      /** Set while a "fixed" claim waits for its quiet period. */
      fixedAt: string | null;
      acceptedUntil: string | null;
      /** The acceptance (its `until`) whose coming expiry was warned of. */
      warnedUntil: string | null;
      /** When the status last changed (an event older than a resolution does not reopen it). */
      since: string;
    };

export const initialState: FindingState = { status: 'absent' };

export function evolve(state: FindingState, event: FindingEvent): FindingState {
  if (event.type === 'FindingOpened') {
    return { status: 'new', id: event.data.id, lastSeen: event.data.at, fixedAt: null, acceptedUntil: null, warnedUntil: null, since: event.data.at };
  }
  if (state.status === 'absent') return state;
  switch (event.type) {
    case 'FindingObserved':
      return { ...state, lastSeen: event.data.lastSeen > state.lastSeen ? event.data.lastSeen : state.lastSeen };
    case 'FindingAcknowledged':
      return { ...state, status: 'acknowledged', since: event.data.at };
    case 'FindingMarkedFixed':
      return { ...state, fixedAt: event.data.at };
    case 'FindingFixDisproved':
      return { ...state, fixedAt: null };
    case 'FindingResolved':
      return { ...state, status: 'resolved', fixedAt: null, since: event.data.at };
    case 'FindingAccepted':
      return { ...state, status: 'accepted', acceptedUntil: event.data.until, fixedAt: null, since: event.data.at };
    case 'FindingReopened':
      return { ...state, status: 'new', acceptedUntil: null, warnedUntil: null, fixedAt: null, since: event.data.at };
    case 'FindingAcceptanceExpiring':
      return { ...state, warnedUntil: event.data.until };
  }
}

export const FINDING_STREAM_PREFIX = 'finding-';
export const findingStreamOf = (id: string): string => `${FINDING_STREAM_PREFIX}${id}`;
