import type { Rollout } from '../../api/types';

/** Why a rollout needs someone (paused, a failed gate, awaiting approval), or null. */
export function needsAttention(r: Rollout): string | null {
  if (r.status === 'paused') return `paused${r.reason ? `: ${r.reason}` : ''}`;
  const st = r.stages[r.currentStage];
  if (r.status === 'running' && st) {
    if (Object.values(st.gates).includes('failed')) return 'a gate failed';
    if (st.phase === 'awaiting-approval') return 'awaiting approval';
  }
  return null;
}

export const ACTIVE = new Set(['running', 'paused']);
