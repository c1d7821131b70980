/** The blocklist aggregate: its events, its state and how events evolve it. */

export interface BlocklistCreated {
  type: 'BlocklistCreated';
  data: { name: string; description: string; owner: string; createdAt: string };
}

export interface BlocklistVersionCommitted {
  type: 'BlocklistVersionCommitted';
  data: {
    name: string;
    version: number;
    contentHash: string;
    entryCount: number;
    addedCount: number;
    removedCount: number;
    message: string;
    committedAt: string;
  };
}

export type BlocklistEvent = BlocklistCreated | BlocklistVersionCommitted;

export type BlocklistState =
  | { status: 'absent' }
  | { status: 'active'; name: string; latestVersion: number; latestHash: string | null };

export const initialState: BlocklistState = { status: 'absent' };

export function evolve(state: BlocklistState, event: BlocklistEvent): BlocklistState {
  switch (event.type) {
    case 'BlocklistCreated':
      return { status: 'active', name: event.data.name, latestVersion: 0, latestHash: null };
    case 'BlocklistVersionCommitted':
      if (state.status !== 'active') return state;
      return { ...state, latestVersion: event.data.version, latestHash: event.data.contentHash };
  }
}

export const streamOf = (name: string): string => `blocklist-${name}`;
