// Staged rollouts with a real PostgreSQL, a real nats-server and simulated
// hosts: protocol-only agents that verify what they get exactly as the agent
// does (libs/proto's checks) and report what they applied, rejections and
// block counts.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, NatsConnection } from '@nats-io/transport-node';
import { NatsServer, waitFor } from '@cgfence/devservices';
import {
  Applied,
  ApplyError,
  bucketOf,
  checkBundle,
  checkDesired,
  DesiredMessage,
  FLEET_SUBJECTS,
  HostReport,
  HostView,
  nestRequest,
  nestResponse,
  parsePublicKeys,
  RegisterReply,
  RolloutView,
  targetFor,
} from '@cgfence/proto';
import { DataSource } from 'typeorm';
import { TestPolicyServer } from '../testing/test-server';
import { ReadModels } from '../read-models/read-models.service';
import { RolloutsService } from './rollouts.service';

const auth = (t: string) => ({ Authorization: `Bearer ${t}` });

class SimHost {
  nc!: NatsConnection;
  applied: Applied | null = null;
  mode: 'audit' | 'enforce' = 'enforce';
  lastError: ApplyError | null = null;
  seen: number | null = null;
  blocks = 0;
  /** Versions this host refuses (as a host whose kernel refuses the list would). */
  rejects = new Set<number>();

  constructor(
    readonly id: string,
    readonly cohort: string,
    private readonly url: string,
    private readonly ring: ReturnType<typeof parsePublicKeys>,
  ) {}

  async start(): Promise<void> {
    this.nc = await connect({ servers: this.url, inboxPrefix: FLEET_SUBJECTS.inboxPrefix(this.id) });
    this.nc.subscribe(FLEET_SUBJECTS.desired, { callback: (_e, m) => this.apply(m.json<DesiredMessage>()) });
    const info = { hostId: this.id, hostname: this.id, labels: { cohort: this.cohort }, kernel: 'sim', agentVersion: 'sim', capabilities: [] };
    const reply = nestResponse<RegisterReply>((await this.nc.request(FLEET_SUBJECTS.register(this.id), nestRequest(FLEET_SUBJECTS.register(this.id), info, '1'), { timeout: 5000 })).data);
    if (reply.message) this.apply(reply.message);
  }

  apply(m: DesiredMessage): void {
    const d = checkDesired(m.desired, this.ring, new Date(), this.seen);
    if (!d.ok) return;
    this.seen = d.value.revision;
    const target = targetFor(d.value, { hostId: this.id, cohort: this.cohort });
    this.mode = target.audit ? 'audit' : 'enforce';
    if (target.bundle) {
      const h = checkBundle(target.bundle, this.ring, new Date(), this.applied, d.value.rollback);
      if (!h.ok) {
        this.lastError = { revision: d.value.revision, reason: h.reason, message: h.message, at: new Date().toISOString() };
      } else if (this.rejects.has(h.value.version)) {
        this.lastError = { revision: d.value.revision, reason: 'apply-failed', message: `v${h.value.version} refused`, at: new Date().toISOString() };
      } else if (this.applied?.hash !== h.value.hash) {
        this.applied = { revision: d.value.revision, blocklistId: h.value.blocklistId, name: h.value.name, version: h.value.version, hash: h.value.hash, appliedAt: new Date().toISOString() };
        this.lastError = null;
      }
    }
    this.report();
  }

  report(): void {
    const r: HostReport = {
      hostId: this.id,
      seenRevision: this.seen,
      applied: this.applied,
      lastError: this.lastError,
      mode: this.mode,
      failMode: 'open',
      health: { proxy: true, kernel: true },
      drift: null,
      blocks: this.blocks,
      sentAt: new Date().toISOString(),
    };
    this.nc.publish(FLEET_SUBJECTS.report(this.id), nestRequest(FLEET_SUBJECTS.report(this.id), r));
  }

  close(): Promise<void> {
    return this.nc.close();
  }
}

describe('staged rollouts', () => {
  let dir: string;
  let nats: NatsServer;
  let env: TestPolicyServer;
  let op: string;
  let hosts: SimHost[] = [];
  let heartbeat: NodeJS.Timeout;
  let version = 1;

  const post = async <T>(path: string, body: unknown = {}, token = op) => {
    const r = await env.http.post(path).set(auth(token)).send(body as object);
    return r as unknown as { status: number; body: T };
  };
  const rollout = async (id: string) => (await env.http.get(`/rollouts/${id}`).set(auth(op))).body as RolloutView;
  const until = (id: string, what: string, pred: (r: RolloutView) => boolean, ms = 20_000) =>
    waitFor(`rollout ${id}: ${what}`, async () => pred(await rollout(id)), ms);
  const commitNext = async () => {
    version++;
    const r = await post<{ version: { version: number } }>('/blocklists/core/versions', { entries: [`v${version}.blocked.test`], message: `v${version}` });
    assert.equal(r.status, 201);
    return version;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-rollouts-int-'));
    nats = await NatsServer.start({ dir: join(dir, 'nats') });
    env = await TestPolicyServer.start('rollouts_int', { natsUrl: nats.url(), env: { CGFENCE_HOST_STALE_SECONDS: '5' } });
    op = await env.tokenFor('operator');
    await waitFor('NATS ready', async () => (await env.http.get('/ready')).body.nats === 'connected');
    const ring = parsePublicKeys((await env.http.get('/fleet/signing-key')).body.publicKeyPem);
    await post('/blocklists', { name: 'core' });
    await post('/blocklists/core/versions', { entries: ['v1.blocked.test'] });
    await post('/blocklists/core/assign', { version: 1 });
    // 2 canaries and 18 others; heartbeats every 300 ms like agents' reports.
    hosts = Array.from({ length: 20 }, (_, i) => new SimHost(`h${String(i).padStart(2, '0')}`, i < 2 ? 'canary' : 'prod', nats.url(), ring));
    for (const h of hosts) await h.start();
    heartbeat = setInterval(() => hosts.forEach((h) => h.report()), 300);
    await waitFor('every host on v1', async () => ((await env.http.get('/hosts').set(auth(op))).body as HostView[]).filter((h) => h.applied?.version === 1).length === 20);
  });

  after(async () => {
    clearInterval(heartbeat);
    try {
      for (const h of hosts) await h.close().catch(() => undefined);
      await env?.stop();
    } finally {
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  beforeEach(() => {
    for (const h of hosts) h.rejects.clear();
  });

  it('refuses a bad plan before anything changes, naming the field or the stage', async () => {
    const v = await commitNext();
    const bad = await post<{ code: string; message: string }>('/rollouts', { blocklist: 'core', version: v, stages: [{ name: 'x', select: {} }] });
    assert.equal(bad.status, 400);
    assert.match(bad.body.message, /stages\.0\.select: select needs labels and\/or percent/);
    const nobody = await post<{ code: string; message: string }>('/rollouts', { blocklist: 'core', version: v, stages: [{ name: 'eu', select: { labels: { cohort: 'eu' } } }] });
    assert.equal(nobody.status, 400);
    assert.match(nobody.body.message, /stage 1 \(eu\) selects no host/);
    const missing = await post<{ code: string }>('/rollouts', { blocklist: 'core', version: 99, stages: [{ name: 'all', select: { percent: 100 } }] });
    assert.equal(missing.status, 404);
    const extra = await post<{ message: string }>('/rollouts', { blocklist: 'core', version: v, stages: [{ name: 'all', select: { percent: 100 }, sok: '1m' }] });
    assert.equal(extra.status, 400);
    assert.match(extra.body.message, /stages\.0.*sok/);
    assert.deepEqual((await env.http.get('/rollouts').set(auth(op))).body, [], 'nothing started');
  });

  it('runs canary by label, 25%, then 100% to completion; the version becomes the baseline', async () => {
    const v = await commitNext();
    const plan = {
      blocklist: 'core',
      version: v,
      stages: [
        { name: 'canary', select: { labels: { cohort: 'canary' } }, mode: 'audit', soak: '1s' },
        { name: 'quarter', select: { percent: 25 }, soak: 0 },
        { name: 'rest', select: { percent: 100 }, soak: 0 },
      ],
    };
    const started = await post<RolloutView>('/rollouts', plan);
    assert.equal(started.status, 201, JSON.stringify(started.body));
    const id = started.body.id;
    await until(id, 'the canaries in audit on the new version', (r) => r.stages[0]!.hosts.confirmed === 2 && r.currentStage >= 0);
    const quarter = hosts.filter((h) => h.cohort !== 'canary' && bucketOf(h.id) < 25).map((h) => h.id);
    await until(id, 'completed', (r) => r.status === 'completed');
    const done = await rollout(id);
    assert.deepEqual(done.stages.map((s) => s.phase), ['done', 'done', 'done']);
    assert.equal(done.stages[1]!.hosts.selected, quarter.length, 'stage 2 takes the hosts in the lowest quarter of buckets');
    await waitFor('every host on the new version, enforcing', async () => hosts.every((h) => h.applied?.version === v && h.mode === 'enforce'));
    const fleet = (await env.http.get('/fleet').set(auth(op))).body as { baseline: { version: number } };
    assert.equal(fleet.baseline.version, v);
    const history = (await env.http.get(`/rollouts/${id}/history`).set(auth(op))).body as { type: string; actor: string }[];
    assert.deepEqual(history.slice(0, 2).map((e) => e.type), ['RolloutStarted', 'StageStarted']);
    assert.equal(history.at(-1)?.type, 'RolloutCompleted');
  });

  it('rolls back when a stage fails its apply-failures gate; hosts return to the previous version', async () => {
    const prev = version;
    const v = await commitNext();
    hosts[5]!.rejects.add(v);
    hosts[6]!.rejects.add(v);
    const plan = { blocklist: 'core', version: v, onFailure: 'rollback', stages: [{ name: 'all', select: { percent: 100 }, gates: { maxFailures: 1 } }] };
    const { body } = await post<RolloutView>('/rollouts', plan);
    await until(body.id, 'rolled back', (r) => r.status === 'rolled-back');
    assert.match((await rollout(body.id)).reason ?? '', /failures gate failed: 2 of 20 hosts/);
    await waitFor('every host back on the previous version', async () => hosts.every((h) => h.applied?.version === prev));
  });

  it('pauses a canary whose block rate spikes during its soak', async () => {
    const v = await commitNext();
    const plan = {
      blocklist: 'core',
      version: v,
      stages: [
        { name: 'canary', select: { labels: { cohort: 'canary' } }, soak: '30s', gates: { blockRateFactor: 2 } },
        { name: 'rest', select: { percent: 100 } },
      ],
    };
    const { body } = await post<RolloutView>('/rollouts', plan);
    await until(body.id, 'the canary soaking', (r) => r.stages[0]!.phase === 'soaking');
    // The canaries start blocking a lot under the new version: 600 blocks a minute each.
    const spike = setInterval(() => hosts.slice(0, 2).forEach((h) => (h.blocks += 3)), 300);
    try {
      await until(body.id, 'paused by the block-rate gate', (r) => r.status === 'paused', 30_000);
    } finally {
      clearInterval(spike);
    }
    const r = await rollout(body.id);
    assert.equal(r.stages[0]!.gates.blockRate, 'failed');
    assert.match(r.reason ?? '', /block-rate gate failed/);
    assert.ok(hosts.slice(2).every((h) => h.applied?.version !== v), 'the rest never got it');
    // Abort: the canaries go back to the version they had.
    const aborted = await post<RolloutView>(`/rollouts/${body.id}/abort`, { reason: 'canary blocks too much' });
    assert.equal(aborted.body.status, 'aborted');
    assert.ok(r.previousVersion !== null && r.previousVersion < v);
    await waitFor('the canaries back', async () => hosts.slice(0, 2).every((h) => h.applied?.version === r.previousVersion));
  });

  it('waits for manual approval; pause and resume; one promotion when two operators promote at once', async () => {
    const v = await commitNext();
    const plan = {
      blocklist: 'core',
      version: v,
      stages: [
        { name: 'canary', select: { labels: { cohort: 'canary' } }, soak: 0, gates: { manualApproval: true } },
        { name: 'rest', select: { percent: 100 }, soak: 0 },
      ],
    };
    const { body } = await post<RolloutView>('/rollouts', plan);
    const id = body.id;
    await until(id, 'awaiting approval', (r) => r.stages[0]!.phase === 'awaiting-approval');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal((await rollout(id)).currentStage, 0, 'it waits');

    assert.equal((await post<RolloutView>(`/rollouts/${id}/pause`, { reason: 'lunch' })).body.status, 'paused');
    assert.equal((await post<{ code: string }>(`/rollouts/${id}/promote`, { stage: 0 })).status, 409, 'no promotion while paused');
    assert.equal((await post<RolloutView>(`/rollouts/${id}/resume`)).body.status, 'running');

    const other = await env.tokenFor('operator', 'ops-bob');
    const [a, b] = await Promise.all([post<RolloutView>(`/rollouts/${id}/promote`, { stage: 0 }), post<RolloutView>(`/rollouts/${id}/promote`, { stage: 0 }, other)]);
    assert.deepEqual([a.status, b.status].sort(), [200, 409]);
    const history = (await env.http.get(`/rollouts/${id}/history`).set(auth(op))).body as { type: string }[];
    assert.equal(history.filter((e) => e.type === 'StagePromoted').length, 1);
    await until(id, 'completed', (r) => r.status === 'completed');
  });

  it('resumes where it was after a server restart', async () => {
    const v = await commitNext();
    const plan = {
      blocklist: 'core',
      version: v,
      stages: [
        { name: 'canary', select: { labels: { cohort: 'canary' } }, soak: '2s' },
        { name: 'rest', select: { percent: 100 }, soak: 0 },
      ],
    };
    const { body } = await post<RolloutView>('/rollouts', plan);
    await until(body.id, 'the canary soaking', (r) => r.stages[0]!.phase === 'soaking');
    await env.restart();
    await until(body.id, 'completed after the restart', (r) => r.status === 'completed', 30_000);
    await waitFor('every host on the new version', async () => hosts.every((h) => h.applied?.version === v));
    // The progress projection rebuilds to the same rows, to the letter.
    const rows = () => env.get(DataSource).query(`select * from rm_rollouts order by id`);
    const beforeRows = await rows();
    await env.get(DataSource).query(`update rm_rollouts set stage = 99, reason = 'tampered'`);
    await env.get(ReadModels).rebuild();
    assert.deepEqual(await rows(), beforeRows);
    assert.ok((await env.get(RolloutsService).list()).length >= 5);
  });
  // Last: the late hosts stay registered (offline), which later stages would count as missing.
  it('gives a host that joins mid-rollout the version its cohort is at', async () => {
    const v = await commitNext();
    const plan = {
      blocklist: 'core',
      version: v,
      stages: [
        { name: 'canary', select: { labels: { cohort: 'canary' } }, soak: 0, gates: { manualApproval: true } },
        { name: 'rest', select: { percent: 100 } },
      ],
    };
    const { body } = await post<RolloutView>('/rollouts', plan);
    await until(body.id, 'awaiting approval', (r) => r.stages[0]!.phase === 'awaiting-approval');
    const ring = parsePublicKeys((await env.http.get('/fleet/signing-key')).body.publicKeyPem);
    const late = [new SimHost('late-canary', 'canary', nats.url(), ring), new SimHost('late-prod', 'prod', nats.url(), ring)];
    try {
      for (const h of late) await h.start();
      await waitFor('the late canary on the new version', async () => late[0]!.applied?.version === v);
      assert.notEqual(late[1]!.applied?.version, v, 'a late host outside the canary stays on the baseline');
      const r = await rollout(body.id);
      assert.equal(r.stages[0]!.hosts.selected, 3);
    } finally {
      for (const h of late) await h.close();
      await post(`/rollouts/${body.id}/abort`, { reason: 'test done' });
    }
  });
});
