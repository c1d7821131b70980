// GET /hosts's server-side filters (label, state, agent version, applied and
// desired version) and keyset paging, on a real PostgreSQL through the real
// HTTP stack. Hosts register and report through HostsService, the code the
// NATS handlers call.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DataSource } from 'typeorm';
import type { HostView } from '@cgfence/proto';
import { hostReport } from '../testing/host-report';
import { TestPolicyServer } from '../testing/test-server';
import { HostsService } from './hosts.service';

const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

describe('GET /hosts filters and paging', () => {
  let env: TestPolicyServer;
  let viewer: string;
  let hash = '';

  const ids = async (qs: string): Promise<string[]> => {
    const res = await env.http.get(`/hosts${qs}`).set(auth(viewer));
    assert.equal(res.status, 200, `${qs}: ${JSON.stringify(res.body)}`);
    return (res.body as HostView[]).map((h) => h.hostId);
  };

  before(async () => {
    env = await TestPolicyServer.start('hosts_filters_int');
    const operator = await env.tokenFor('operator');
    viewer = await env.tokenFor('viewer');
    await env.http.post('/blocklists').set(auth(operator)).send({ name: 'core' }).expect(201);
    const v1 = await env.http.post('/blocklists/core/versions').set(auth(operator)).send({ entries: ['github.com'], message: 'v1' }).expect(201);
    hash = (v1.body as { version: { contentHash: string } }).version.contentHash;
    await env.http.post('/blocklists/core/assign').set(auth(operator)).send({ version: 1 }).expect(200);
    const hosts = env.get(HostsService);
    const facts = (labels: Record<string, string>, agentVersion = '0.1.0') => ({ hostname: 'h', labels, kernel: '6.1', agentVersion, capabilities: ['dns'] });
    const applied = { revision: 1, blocklistId: 'core', name: 'core', version: 1, hash, appliedAt: new Date().toISOString() };
    // h1 in sync, h2 converging, h3 rejected, h4 drifted, h5 stale; h6 on another agent version.
    await hosts.register({ hostId: 'h1', ...facts({ cohort: 'canary', team: 'a', env: 'prod' }) }, 'c');
    await hosts.register({ hostId: 'h2', ...facts({ cohort: 'canary', team: 'a', env: 'dev' }) }, 'c');
    await hosts.register({ hostId: 'h3', ...facts({ team: 'b' }) }, 'c');
    await hosts.register({ hostId: 'h4', ...facts({ team: 'b' }) }, 'c');
    await hosts.register({ hostId: 'h5', ...facts({ team: 'c' }) }, 'c');
    await hosts.register({ hostId: 'h6', ...facts({ team: 'c' }, '0.2.0') }, 'c');
    assert.ok(await hosts.report(hostReport('h1', { applied }), 'c'));
    assert.ok(await hosts.report(hostReport('h3', { lastError: { revision: 1, reason: 'bundle.bad_signature', message: 'no', at: new Date().toISOString() } }), 'c'));
    assert.ok(await hosts.report(hostReport('h4', { applied, drift: { drifted: true, detail: 'map changed', checkedAt: new Date().toISOString() } }), 'c'));
    assert.ok(await hosts.report(hostReport('h6', { applied }), 'c'));
    // h5 went silent a day ago (the stale limit is minutes).
    await env.get(DataSource).query(`update rm_hosts set last_seen = now() - interval '1 day' where host_id = 'h5'`);
  });

  after(async () => {
    await env?.stop();
  });

  it('filters by labels, every one of them (repeatable)', async () => {
    assert.deepEqual(await ids('?label=team=a'), ['h1', 'h2']);
    assert.deepEqual(await ids('?label=team=a&label=env=prod'), ['h1']);
    assert.deepEqual(await ids('?label=team=a&label=env=nowhere'), []);
    assert.deepEqual(await ids('?label=cohort=canary&cohort=canary'), ['h1', 'h2']);
  });

  it('filters by each of the five states, as the views say', async () => {
    assert.deepEqual(await ids('?state=in-sync'), ['h1', 'h6']);
    assert.deepEqual(await ids('?state=converging'), ['h2']);
    assert.deepEqual(await ids('?state=rejected'), ['h3']);
    assert.deepEqual(await ids('?state=drifted'), ['h4']);
    assert.deepEqual(await ids('?state=stale'), ['h5']);
    assert.deepEqual(await ids('?state=stale&stale=false'), [], 'contradictory filters match nothing');
    assert.deepEqual(await ids('?stale=true'), ['h5']);
    const all = (await env.http.get('/hosts').set(auth(viewer))).body as HostView[];
    // Each view carries its state, decided once by the server (the dashboard and the CLI show it).
    assert.deepEqual(Object.fromEntries(all.map((h) => [h.hostId, h.state])), { h1: 'in-sync', h2: 'converging', h3: 'rejected', h4: 'drifted', h5: 'stale', h6: 'in-sync' });
    for (const h of all) assert.equal(h.state, stateOf(h));
    for (const h of all) assert.deepEqual(await ids(`?state=${stateOf(h)}&label=team=${h.labels['team']}`), all.filter((x) => x.labels['team'] === h.labels['team'] && stateOf(x) === stateOf(h)).map((x) => x.hostId));
  });

  it('filters by agent version, applied and desired blocklist version', async () => {
    assert.deepEqual(await ids('?agentVersion=0.2.0'), ['h6']);
    assert.deepEqual(await ids('?applied=core@1'), ['h1', 'h4', 'h6']);
    assert.deepEqual(await ids('?applied=core'), ['h1', 'h4', 'h6']);
    assert.deepEqual(await ids('?applied=core@2'), []);
    assert.deepEqual(await ids('?desired=core@1'), ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']);
    assert.deepEqual(await ids('?desired=other'), []);
    assert.deepEqual(await ids('?desired=core@1&state=in-sync&agentVersion=0.1.0'), ['h1']);
  });

  it('pages by host id (keyset), filters applied before the page is cut', async () => {
    assert.deepEqual(await ids('?limit=2'), ['h1', 'h2']);
    assert.deepEqual(await ids('?limit=2&after=h2'), ['h3', 'h4']);
    assert.deepEqual(await ids('?limit=2&after=h4'), ['h5', 'h6']);
    assert.deepEqual(await ids('?limit=2&after=h6'), []);
    assert.deepEqual(await ids('?state=in-sync&limit=1'), ['h1']);
    assert.deepEqual(await ids('?state=in-sync&limit=1&after=h1'), ['h6']);
    // A host id the table does not hold is a position, not an error.
    assert.deepEqual(await ids('?limit=10&after=h35'), ['h4', 'h5', 'h6']);
  });

  it('refuses a bad filter with a 400 naming the field', async () => {
    for (const [qs, field] of [
      ['?state=fine', 'state'],
      ['?label=team', 'label'],
      ['?applied=core@x', 'applied'],
      ['?desired=@3', 'desired'],
      ['?limit=0', 'limit'],
      ['?limit=1001', 'limit'],
      ['?after=', 'after'],
    ] as const) {
      const res = await env.http.get(`/hosts${qs}`).set(auth(viewer));
      assert.equal(res.status, 400, qs);
      assert.equal(res.body.code, 'validation.failed', qs);
      assert.ok((res.body.details as { field: string }[]).some((d) => d.field === field), `${qs}: ${JSON.stringify(res.body.details)}`);
    }
  });
});

function stateOf(h: HostView): string {
  if (h.stale) return 'stale';
  if (h.drift?.drifted) return 'drifted';
  if (h.lastError) return 'rejected';
  return h.desired === null || h.inSync ? 'in-sync' : 'converging';
}
