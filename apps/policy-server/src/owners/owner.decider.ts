import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';
import { evolve, initialState, OwnerEvent, OwnerState, TargetSpec } from './owner';

export type OwnerCommand =
  /** Sets the team (when given) and adds or changes the target with this URL (when given). */
  | { type: 'SetOwner'; key: string; value: string; team?: string; target?: Omit<TargetSpec, 'id'>; newTargetId: string; now: Date }
  | { type: 'RemoveTarget'; id: string; now: Date };

const same = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

export function decide(c: OwnerCommand, s: OwnerState): OwnerEvent[] {
  const at = c.now.toISOString();
  if (c.type === 'RemoveTarget') {
    if (s.status === 'absent' || !s.targets.some((t) => t.id === c.id)) throw new DomainError('owner.not_found', `no target ${c.id}`);
    return [{ type: 'TargetRemoved', data: { id: c.id, at } }];
  }
  const out: OwnerEvent[] = [];
  const team = c.team ?? (s.status === 'set' ? s.team : null);
  if (s.status === 'absent' || team !== s.team) out.push({ type: 'OwnerSet', data: { key: c.key, value: c.value, team, at } });
  if (c.target) {
    const existing = s.status === 'set' ? s.targets.find((t) => t.url === c.target!.url) : undefined;
    const triggers = [...c.target.triggers].sort();
    const digest = c.target.digest;
    if (!existing) out.push({ type: 'TargetAdded', data: { id: c.newTargetId, url: c.target.url, format: c.target.format, triggers, digest, at } });
    else if (existing.format !== c.target.format || !same(existing.triggers, triggers) || existing.digest !== digest) {
      out.push({ type: 'TargetChanged', data: { id: existing.id, url: c.target.url, format: c.target.format, triggers, digest, at } });
    }
  }
  return out;
}

export const ownerDecider: Decider<OwnerState, OwnerCommand, OwnerEvent> = { initialState, evolve, decide };
