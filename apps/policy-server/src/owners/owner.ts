/** The owner aggregate: one run-label value (service=api), its team and its notification targets. */
import type { Trigger } from '@cgfence/proto';

export interface TargetSpec {
  id: string;
  url: string;
  format: 'json' | 'slack';
  triggers: Trigger[];
  /** A period ('1h'): finding notifications are gathered into one message per period. */
  digest: string | null;
}

export type OwnerEvent =
  | { type: 'OwnerSet'; data: { key: string; value: string; team: string | null; at: string } }
  | { type: 'TargetAdded'; data: TargetSpec & { at: string } }
  | { type: 'TargetChanged'; data: TargetSpec & { at: string } }
  | { type: 'TargetRemoved'; data: { id: string; at: string } };

export type OwnerState = { status: 'absent' } | { status: 'set'; key: string; value: string; team: string | null; targets: TargetSpec[] };

export const initialState: OwnerState = { status: 'absent' };

const spec = ({ id, url, format, triggers, digest }: TargetSpec): TargetSpec => ({ id, url, format, triggers, digest: digest ?? null });

export function evolve(s: OwnerState, e: OwnerEvent): OwnerState {
  if (e.type === 'OwnerSet') return { status: 'set', key: e.data.key, value: e.data.value, team: e.data.team, targets: s.status === 'set' ? s.targets : [] };
  if (s.status === 'absent') return s;
  switch (e.type) {
    case 'TargetAdded':
      return { ...s, targets: [...s.targets, spec(e.data)] };
    case 'TargetChanged':
      return { ...s, targets: s.targets.map((t) => (t.id === e.data.id ? spec(e.data) : t)) };
    case 'TargetRemoved':
      return { ...s, targets: s.targets.filter((t) => t.id !== e.data.id) };
  }
}

export const OWNER_STREAM_PREFIX = 'owner-';
export const ownerStreamOf = (key: string, value: string): string => `${OWNER_STREAM_PREFIX}${key}=${value}`;
