import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { addExample, COMMAND_MAX, EXAMPLES_MAX, findingIdOf, OccurrenceGrouper, redactCommand } from './occurrences';

const ev = (over: Record<string, unknown> = {}) => ({
  ms: 1000, labels: { service: 'api' }, entry: 'api.internal', action: 'blocked', qname: 'api.internal', host: 'h1', cohort: 'canary',
  runId: 'r1', cmdline: 'curl https://api.internal/', comm: 'curl', policyVersion: 'core v1', ...over,
});

describe(OccurrenceGrouper.name, () => {
  it('groups blocked and audited events by (owner, entry), with counts, times and examples', () => {
    const sut = new OccurrenceGrouper('service');
    sut.add(ev());
    sut.add(ev({ ms: 500, action: 'audited', host: 'h2', policyVersion: 'core v2' }));
    sut.add(ev({ ms: 3000, labels: JSON.stringify({ service: 'web' }) }));
    sut.add(ev({ labels: {} }));
    const [api, web, none] = sut.values();
    assert.deepEqual(
      { owner: api!.owner, first: api!.firstMs, last: api!.lastMs, blocked: api!.blocked, audited: api!.audited, hosts: api!.hosts, versions: api!.versions },
      { owner: 'api', first: 500, last: 1000, blocked: 1, audited: 1, hosts: ['h1', 'h2'], versions: ['core v1', 'core v2'] },
    );
    assert.equal(web!.owner, 'web');
    assert.equal(none!.owner, '', 'a run without the label is owned by nobody, and still a finding');
    assert.equal(sut.size, 3);
  });

  it('leaves out alerts and events with no matched entry', () => {
    const sut = new OccurrenceGrouper('service');
    sut.add(ev({ action: 'alert' }));
    sut.add(ev({ entry: null }));
    assert.equal(sut.size, 0);
  });

  it('makes no finding of an over-long owner or entry (the event stays in the history)', () => {
    const sut = new OccurrenceGrouper('service');
    sut.add(ev({ labels: { service: 'x'.repeat(201) } }));
    sut.add(ev({ entry: `${'a'.repeat(300)}.internal` }));
    assert.equal(sut.size, 0);
  });

  it('reads the owner from the configured label', () => {
    const sut = new OccurrenceGrouper('team');
    sut.add(ev({ labels: { service: 'api', team: 'payments' } }));
    assert.equal(sut.values()[0]!.owner, 'payments');
  });
});

describe('examples', () => {
  it('keeps at most EXAMPLES_MAX, most recent last, without repeats', () => {
    const list: string[] = [];
    for (let i = 0; i < EXAMPLES_MAX + 5; i++) addExample(list, `h${i}`);
    addExample(list, 'h10');
    assert.equal(list.length, EXAMPLES_MAX);
    assert.equal(list.at(-1), 'h10');
    assert.ok(!list.includes('h0'));
    assert.equal(new Set(list).size, list.length);
  });
});

describe(redactCommand.name, () => {
  it('takes out what looks like a secret and keeps the rest', () => {
    assert.equal(redactCommand('deploy --token abc --region eu'), 'deploy --token *** --region eu');
    assert.equal(redactCommand('deploy --password=hunter2 -v'), 'deploy --password=*** -v');
    assert.equal(redactCommand('env API_KEY=s3cr3t DB_PASSWORD=x make'), 'env API_KEY=*** DB_PASSWORD=*** make');
    assert.equal(redactCommand('git clone https://bob:pw@git.example/repo'), 'git clone https://***@git.example/repo');
    assert.equal(redactCommand('curl -H x:ghp_abcdefghijklmnopqrstuvwxyz0123456789AB'), 'curl -H x:***');
    assert.equal(redactCommand('curl https://api.internal/health'), 'curl https://api.internal/health');
  });

  it('cuts long commands', () => assert.equal(redactCommand(`echo ${'a '.repeat(300)}`).length, COMMAND_MAX));
});

describe(findingIdOf.name, () => {
  it('is stable and separates owner from entry', () => {
    assert.equal(findingIdOf('service', 'api', 'x'), findingIdOf('service', 'api', 'x'));
    assert.notEqual(findingIdOf('service', 'a', 'pi.x'), findingIdOf('service', 'a.pi', 'x'));
    assert.match(findingIdOf('service', '', 'x'), /^f-[0-9a-f]{20}$/);
  });
});
