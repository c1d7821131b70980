import type { Host } from '../../api/types';

/** The five states the Fleet page counts hosts by (as `cgfence hosts` shows them). */
export const HOST_STATES = ['in sync', 'converging', 'rejected', 'drifted', 'stale'] as const;
export type HostState = (typeof HOST_STATES)[number];

/** The server's state of the host (GET /hosts decides it, for the CLI too), as this page words it. */
export function hostState(h: Host): HostState {
  return h.state === 'in-sync' ? 'in sync' : h.state;
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
