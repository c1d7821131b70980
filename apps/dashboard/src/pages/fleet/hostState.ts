import type { Host } from '../../api/types';

/** The five states the Fleet page counts hosts by (as `cgfence hosts` shows them). */
export const HOST_STATES = ['in sync', 'converging', 'rejected', 'drifted', 'stale'] as const;
export type HostState = (typeof HOST_STATES)[number];

/** Worst first, as `cgfence hosts` decides (apps/cli/src/commands/fleet.ts); no baseline counts as in sync. */
export function hostState(h: Host): HostState {
  if (h.stale) return 'stale';
  if (h.drift?.drifted) return 'drifted';
  if (h.lastError) return 'rejected';
  if (h.desired === null) return 'in sync';
  return h.inSync ? 'in sync' : 'converging';
}

export const STATE_TONE: Record<HostState, 'ok' | 'warn' | 'bad' | 'idle'> = {
  'in sync': 'ok',
  converging: 'warn',
  rejected: 'bad',
  drifted: 'bad',
  stale: 'idle',
};

/** The API's name of each state (GET /hosts?state=…, and the Hosts page's URL). */
export const STATE_PARAM: Record<HostState, 'in-sync' | 'converging' | 'rejected' | 'drifted' | 'stale'> = {
  'in sync': 'in-sync',
  converging: 'converging',
  rejected: 'rejected',
  drifted: 'drifted',
  stale: 'stale',
};
