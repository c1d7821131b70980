import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../common/errors';
import { BlocklistEvent } from './blocklist';
import { BlocklistCommand, blocklistDecider } from './blocklist.decider';

const now = new Date('2026-11-21T10:00:00.000Z');

/** given(events) / when(command) / then(events or error code) */
function given(events: BlocklistEvent[]) {
  const state = events.reduce(blocklistDecider.evolve, blocklistDecider.initialState);
  return {
    when(command: BlocklistCommand) {
      const run = () => blocklistDecider.decide(command, state);
      return {
        then: (expected: BlocklistEvent[]) => assert.deepEqual(run(), expected),
        thenFails: (code: string) => assert.throws(run, (e: unknown) => e instanceof DomainError && e.code === code),
      };
    },
  };
}

const created: BlocklistEvent = { type: 'BlocklistCreated', data: { name: 'deploy', description: 'd', owner: 'sre', createdAt: now.toISOString() } };
const v1: BlocklistEvent = {
  type: 'BlocklistVersionCommitted',
  data: { name: 'deploy', version: 1, contentHash: 'sha256:aa', entryCount: 2, addedCount: 2, removedCount: 0, message: 'first', committedAt: now.toISOString() },
};
const commit = (hash: string, expectedVersion?: number): BlocklistCommand => ({
  type: 'CommitVersion',
  name: 'deploy',
  contentHash: hash,
  entryCount: 3,
  addedCount: 1,
  removedCount: 0,
  message: 'next',
  expectedVersion,
  now,
});

describe('blocklist decider', () => {
  it('creates a blocklist that does not exist yet', () =>
    given([]).when({ type: 'CreateBlocklist', name: 'deploy', description: 'd', owner: 'sre', now }).then([created]));

  it('refuses to create a blocklist twice', () =>
    given([created]).when({ type: 'CreateBlocklist', name: 'deploy', description: 'x', owner: 'y', now }).thenFails('blocklist.already_exists'));

  it('refuses a commit to a blocklist that does not exist', () => given([]).when(commit('sha256:bb')).thenFails('blocklist.not_found'));

  it('numbers the first version 1', () =>
    given([created]).when({ ...commit('sha256:aa'), entryCount: 2, addedCount: 2, message: 'first' } as BlocklistCommand).then([v1]));

  it('numbers the next version after the latest', () =>
    given([created, v1])
      .when(commit('sha256:bb'))
      .then([
        {
          type: 'BlocklistVersionCommitted',
          data: { name: 'deploy', version: 2, contentHash: 'sha256:bb', entryCount: 3, addedCount: 1, removedCount: 0, message: 'next', committedAt: now.toISOString() },
        },
      ]));

  it('commits nothing when the content equals the latest version', () => given([created, v1]).when(commit('sha256:aa')).then([]));

  it('refuses a change based on an older version', () => given([created, v1]).when(commit('sha256:bb', 0)).thenFails('version.conflict'));

  it('accepts a change based on the latest version', () => {
    const events = blocklistDecider.decide(commit('sha256:bb', 1), [created, v1].reduce(blocklistDecider.evolve, blocklistDecider.initialState));
    assert.equal(events.length, 1);
  });
});
