import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DomainError } from '../common/errors';
import { OwnerEvent } from './owner';
import { OwnerCommand, ownerDecider } from './owner.decider';

const now = new Date('2026-12-01T10:00:00.000Z');
const at = now.toISOString();

function given(events: OwnerEvent[]) {
  const state = events.reduce(ownerDecider.evolve, ownerDecider.initialState);
  return {
    when(command: OwnerCommand) {
      const run = () => ownerDecider.decide(command, state);
      return {
        then: (expected: OwnerEvent[]) => assert.deepEqual(run(), expected),
        thenFails: (code: string) => assert.throws(run, (e: unknown) => e instanceof DomainError && e.code === code),
      };
    },
  };
}

const set = (over: Partial<Extract<OwnerCommand, { type: 'SetOwner' }>> = {}): OwnerCommand => ({ type: 'SetOwner', key: 'service', value: 'api', newTargetId: 't2', now, ...over });
const ownerSet: OwnerEvent = { type: 'OwnerSet', data: { key: 'service', value: 'api', team: 'payments', at } };
const target: OwnerEvent = { type: 'TargetAdded', data: { id: 't1', url: 'https://hooks.example/a', format: 'json', triggers: ['finding.new'], digest: null, at } };

describe('owner decider', () => {
  it('sets a new owner with its team and first target', () =>
    given([])
      .when(set({ team: 'payments', newTargetId: 't1', target: { url: 'https://hooks.example/a', format: 'json', triggers: ['finding.new'], digest: null } }))
      .then([ownerSet, target]));

  it('changes nothing when told the same again', () =>
    given([ownerSet, target]).when(set({ team: 'payments', target: { url: 'https://hooks.example/a', format: 'json', triggers: ['finding.new'], digest: null } })).then([]));

  it('keeps the team when none is given, and changes a known URL\'s target in place', () =>
    given([ownerSet, target])
      .when(set({ target: { url: 'https://hooks.example/a', format: 'slack', triggers: ['finding.regression', 'finding.new'], digest: null } }))
      .then([{ type: 'TargetChanged', data: { id: 't1', url: 'https://hooks.example/a', format: 'slack', triggers: ['finding.new', 'finding.regression'], digest: null, at } }]));

  it('changes a target to a digest', () =>
    given([ownerSet, target])
      .when(set({ target: { url: 'https://hooks.example/a', format: 'json', triggers: ['finding.new'], digest: '1h' } }))
      .then([{ type: 'TargetChanged', data: { id: 't1', url: 'https://hooks.example/a', format: 'json', triggers: ['finding.new'], digest: '1h', at } }]));

  it('adds a second URL as a second target', () =>
    given([ownerSet, target])
      .when(set({ target: { url: 'https://hooks.example/b', format: 'json', triggers: ['rollout.completed'], digest: null } }))
      .then([{ type: 'TargetAdded', data: { id: 't2', url: 'https://hooks.example/b', format: 'json', triggers: ['rollout.completed'], digest: null, at } }]));

  it('removes a target it has, and refuses one it has not', () => {
    given([ownerSet, target]).when({ type: 'RemoveTarget', id: 't1', now }).then([{ type: 'TargetRemoved', data: { id: 't1', at } }]);
    given([ownerSet]).when({ type: 'RemoveTarget', id: 't1', now }).thenFails('owner.not_found');
  });
});
