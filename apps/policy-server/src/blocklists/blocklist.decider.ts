import { DomainError } from '../common/errors';
import type { Decider } from '../event-store/decider';
import { BlocklistEvent, BlocklistState, evolve, initialState } from './blocklist';

export interface CreateBlocklist {
  type: 'CreateBlocklist';
  name: string;
  description: string;
  owner: string;
  now: Date;
}

export interface CommitVersion {
  type: 'CommitVersion';
  name: string;
  contentHash: string;
  entryCount: number;
  addedCount: number;
  removedCount: number;
  message: string;
  /** The latest version the author based the change on, if they said. */
  expectedVersion?: number;
  now: Date;
}

export type BlocklistCommand = CreateBlocklist | CommitVersion;

export function decide(command: BlocklistCommand, state: BlocklistState): BlocklistEvent[] {
  switch (command.type) {
    case 'CreateBlocklist':
      if (state.status !== 'absent') throw new DomainError('blocklist.already_exists', `blocklist ${command.name} already exists`);
      return [
        {
          type: 'BlocklistCreated',
          data: { name: command.name, description: command.description, owner: command.owner, createdAt: command.now.toISOString() },
        },
      ];
    case 'CommitVersion': {
      if (state.status === 'absent') throw new DomainError('blocklist.not_found', `blocklist ${command.name} does not exist`);
      if (command.expectedVersion !== undefined && command.expectedVersion !== state.latestVersion) {
        throw new DomainError(
          'version.conflict',
          `blocklist ${command.name} is at version ${state.latestVersion}, the change was based on version ${command.expectedVersion}`,
        );
      }
      // Identical content is reported by the caller, not committed again.
      if (command.contentHash === state.latestHash) return [];
      return [
        {
          type: 'BlocklistVersionCommitted',
          data: {
            name: command.name,
            version: state.latestVersion + 1,
            contentHash: command.contentHash,
            entryCount: command.entryCount,
            addedCount: command.addedCount,
            removedCount: command.removedCount,
            message: command.message,
            committedAt: command.now.toISOString(),
          },
        },
      ];
    }
  }
}

export const blocklistDecider: Decider<BlocklistState, BlocklistCommand, BlocklistEvent> = { initialState, evolve, decide };
