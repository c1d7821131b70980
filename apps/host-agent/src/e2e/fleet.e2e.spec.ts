// Fleet distribution end to end: a real PostgreSQL, nats-server (with
// per-host nkeys) and policy server; three real agents, each in its own
// network namespace with its own deploy cgroup, DNS proxy and state directory,
// standing in for three hosts. Blocklists are committed and assigned through
// the API and enforced through the kernel path inside each namespace.
import 'reflect-metadata';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, KeyObject, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { findCgroup2Root } from '@cgfence/bpf';
import { freePort, ManagedProcess, NatsServer, PostgresServer, startPolicyServer, waitFor } from '@cgfence/devservices';
import { addHost, authConfigFile, initAuth, natsConnectOptions } from '@cgfence/nats-auth';
import {
  AgentStatus,
  BUNDLE_KIND,
  BundleHeader,
  DESIRED_KIND,
  DesiredDocument,
  DesiredMessage,
  encodeTransfer,
  FLEET_SUBJECTS,
  HostView,
  sha256Tag,
  signDocument,
} from '@cgfence/proto';
import { LoopbackUpstream } from '../dns/testing/loopback-upstream';
import { CGFENCE, exec, Ran, stopChild, isAddressRecord } from './agent-harness';
import { BRIDGE_ADDRESS, LabHost, NetnsLab } from './netns-lab';

const POLICY_SERVER = join(__dirname, '..', '..', '..', '..', 'policy-server', 'dist', 'src', 'main.js');

/** Resolves names and tries a TCP connect from inside a run; one JSON line out. */
const PROBE = String.raw`
import json, os, socket, sys
out = {'run': os.environ.get('CGFENCE_RUN_ID')}
for n in sys.argv[1].split(','):
    try:
        out[n] = sorted({a[4][0] for a in socket.getaddrinfo(n, 80, socket.AF_INET)})
    except socket.gaierror as e:
        out[n] = 'error'
s = socket.socket()
s.settimeout(1)
try:
    s.connect((sys.argv[2], 80))
    out['connect'] = 'ok'
except PermissionError:
    out['connect'] = 'EPERM'
    # the agent reads /proc/<pid>/cmdline when it reads the kernel's event: stay until then
    import time; time.sleep(0.5)
except Exception as e:
    out['connect'] = type(e).__name__
print(json.dumps(out))
`;
import { NatsRecordSerializer } from '@nestjs/microservices/serializers/index.js';

type Probe = Record<string, string[] | string>;

class FleetHost {
  proc?: ChildProcess;
  log = '';
  readonly cgroup = `cgf-fleet-${randomBytes(3).toString('hex')}`;

  constructor(
    readonly id: string,
    readonly cohort: string,
    readonly net: LabHost,
    readonly lab: NetnsLab,
    readonly dir: string,
    readonly argsFor: (h: FleetHost) => string[],
  ) {}

  get stateDir(): string {
    return join(this.dir, 'state');
  }

  async start(): Promise<void> {
    const argv = this.lab.exec(this.net, [process.execPath, CGFENCE, 'agent', ...this.argsFor(this)]);
    this.log = '';
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = p;
    await waitFor(`agent ${this.id} to answer (log:\n${this.log})`, async () => {
      if (p.exitCode !== null) throw new Error(`agent ${this.id} exited with ${p.exitCode}:\n${this.log}`);
      return (await this.cli(['agent', 'status', '--json'])).code === 0;
    }, 30_000);
  }

  stop(): Promise<void> {
    return stopChild(this.proc);
  }

  cli(args: string[]): Promise<Ran> {
    const withState = args[0] === 'run' ? ['run', '--state-dir', this.stateDir, ...args.slice(1)] : [...args, '--state-dir', this.stateDir];
    return exec(process.execPath, [CGFENCE, ...withState]);
  }

  async status(): Promise<AgentStatus> {
    const r = await this.cli(['agent', 'status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as AgentStatus;
  }

  /** Inside a run of this host's deploy cgroup, in its namespace. */
  async probe(names: string[], connectTo: string): Promise<Probe> {
    const argv = this.lab.execWithResolver(this.net, [process.execPath, CGFENCE, 'run', '--state-dir', this.stateDir, '--', 'python3', '-c', PROBE, names.join(','), connectTo]);
    const r = await exec(argv[0]!, argv.slice(1), { timeoutMs: 20_000 });
    assert.equal(r.code, 0, `probe on ${this.id} failed: ${r.stderr}`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Probe;
  }

  async teardown(): Promise<void> {
    await this.stop();
    const kill = join(findCgroup2Root(), this.cgroup, 'cgroup.kill');
    try {
      writeFileSync(kill, '1');
    } catch {
      // no cgroup (never started) or no cgroup.kill
    }
    await this.cli(['agent', 'teardown', '--cgroup', this.cgroup]);
  }
}

describe('fleet distribution end to end (3 hosts in network namespaces)', () => {
  let dir: string;
  let lab: NetnsLab;
  let pg: PostgresServer;
  let nats: NatsServer;
  let server: ManagedProcess | undefined;
  let serverEnv: NodeJS.ProcessEnv;
  let upstream: LoopbackUpstream;
  let api: string;
  let token: string;
  let signingKey: KeyObject;
  let natsDir: string;
  const hosts: FleetHost[] = [];

  const call = async <T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${api}/${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as T };
  };

  const startServer = async (): Promise<void> => {
    server = await startPolicyServer({ main: POLICY_SERVER, port: Number(serverEnv['CGFENCE_HTTP_PORT']), env: serverEnv, log: join(dir, 'server.log') });
  };

  const commit = async (entries: string[]): Promise<number> => {
    const r = await call<{ version: { version: number } }>('POST', 'blocklists/deploy/versions', { entries, message: 'e2e' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body.version.version;
  };

  const assign = async (version: number, rollback = false): Promise<number> => {
    const r = await call<{ revision: number }>('POST', 'blocklists/deploy/assign', { version, rollback });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.revision;
  };

  const hostsView = async (): Promise<HostView[]> => (await call<HostView[]>('GET', 'hosts')).body;

  const converged = async (version: number, which: FleetHost[] = hosts, timeoutMs = 20_000): Promise<void> => {
    await waitFor(`${which.map((h) => h.id).join(', ')} to apply and confirm v${version}`, async () => {
      const view = await hostsView();
      return which.every((h) => {
        const v = view.find((x) => x.hostId === h.id);
        return v?.applied?.version === version && v.inSync;
      });
    }, timeoutMs);
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-fleet-e2e-'));
    lab = NetnsLab.create(3);
    natsDir = join(dir, 'nats-auth');
    initAuth(natsDir);
    for (let i = 1; i <= 3; i++) addHost(natsDir, `host-${i}`);
    pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    nats = await NatsServer.start({ dir: join(dir, 'nats'), host: BRIDGE_ADDRESS, include: [authConfigFile(natsDir)] });
    upstream = await LoopbackUpstream.start((name) => {
      const n = name.toLowerCase().replace(/\.$/, '');
      // An allowed name whose answer is a CNAME to a listed one (issue 13).
      if (n === 'via-cname.example') return { CNAME: 'blocked-rollout.test' };
      return n.endsWith('.test') ? { A: ['192.0.2.10'] } : undefined;
    }, BRIDGE_ADDRESS);
    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    serverEnv = {
      ...process.env,
      CGFENCE_DATABASE_URL: await pg.createDatabase('fleet_e2e'),
      CGFENCE_HTTP_PORT: String(port),
      CGFENCE_STATE_DIR: join(dir, 'server'),
      CGFENCE_NATS_URL: nats.url(),
      CGFENCE_NATS_SEED: join(natsDir, 'server.nk'),
      CGFENCE_LOG_LEVEL: 'warn',
    };
    await startServer();
    token = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
    signingKey = createPrivateKey(readFileSync(join(dir, 'server', 'signing-key.pem')));
    const keyFile = join(dir, 'server', 'signing-key.pem.pub');
    const cohorts = ['canary', 'prod', 'prod'];
    lab.hosts.forEach((net, i) => {
      const id = `host-${i + 1}`;
      const hostDir = join(dir, id);
      mkdirSync(hostDir);
      hosts.push(
        new FleetHost(id, cohorts[i]!, net, lab, hostDir, (h) => [
          '--server', nats.url(),
          '--server-key', keyFile,
          '--nats-seed', join(natsDir, 'hosts', `${id}.nk`),
          '--host-id', id,
          '--label', `cohort=${h.cohort}`,
          '--upstream', upstream.address,
          '--cgroup', h.cgroup,
          '--state-dir', h.stateDir,
          '--sync-interval-ms', '1000',
          '--report-interval-ms', '500',
          '--drift-check-ms', '1000',
          '--upstream-timeout-ms', '1000',
          '--log-level', 'warn',
        ]),
      );
    });
    await call('POST', 'blocklists', { name: 'deploy' });
    for (const h of hosts) await h.start();
  });

  after(async () => {
    for (const h of hosts) await h.teardown().catch(() => undefined);
    await server?.stop();
    await upstream?.close();
    await nats?.stop();
    await pg?.stop();
    lab?.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers every host; commit alone changes nothing; assign is applied through the kernel and confirmed', async () => {
    await waitFor('three registered hosts', async () => (await hostsView()).length === 3);
    const view = await hostsView();
    assert.deepEqual(view.map((h) => h.cohort), ['canary', 'prod', 'prod']);
    await commit(['blocked-one.test', '10.99.0.0/16']);
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok((await hostsView()).every((h) => h.applied === null), 'a commit alone is applied nowhere');

    await assign(1);
    await converged(1);
    for (const h of hosts) {
      const p = await h.probe(['blocked-one.test', 'allowed.test'], '10.99.1.1');
      assert.deepEqual(p['allowed.test'], ['192.0.2.10'], `${h.id}: ${JSON.stringify(p)}`);
      assert.equal(p['blocked-one.test'], 'error', `${h.id}: ${JSON.stringify(p)}`);
      assert.equal(p['connect'], 'EPERM', `${h.id}: ${JSON.stringify(p)}`);
      const s = await h.status();
      assert.equal(s.fleet?.applied?.version, 1);
      assert.equal(s.fleet?.connected, true);
    }
  });

  it('a host offline during a change converges when it comes back', async () => {
    const late = hosts[2]!;
    await late.stop();
    await commit(['blocked-one.test', 'blocked-two.test', '10.99.0.0/16']);
    await assign(2);
    await converged(2, hosts.slice(0, 2));
    await late.start();
    await converged(2, [late]);
    const p = await late.probe(['blocked-two.test'], '10.99.1.1');
    assert.equal(p['blocked-two.test'], 'error');
  });

  it('converges when nats-server restarts in the middle of a distribution', async () => {
    await commit(['blocked-three.test', '10.99.0.0/16']);
    await assign(3);
    await nats.restart();
    await converged(3, hosts, 30_000);
  });

  it('loses nothing when the server dies between commit and publish', async () => {
    await nats.stop();
    await commit(['blocked-four.test', '10.99.0.0/16']);
    await assign(4); // committed with its outbox row; NATS is down, so nothing is published
    await server!.kill();
    await nats.restart();
    await startServer();
    await converged(4, hosts, 30_000);
  });

  it('keeps hosts apart on NATS: a host cannot speak for another or read its replies', async () => {
    const errors: string[] = [];
    const nc = await connect({ servers: nats.url(), ...natsConnectOptions({ seedFile: join(natsDir, 'hosts', 'host-1.nk'), hostId: 'host-1' }) });
    try {
      void (async () => {
        for await (const s of nc.status()) if (s.type === 'error') errors.push(String(s.error));
      })();
      const before = (await hostsView()).find((h) => h.hostId === 'host-2')!;
      const forged = new NatsRecordSerializer().serialize({ pattern: FLEET_SUBJECTS.report('host-2'), data: { hostId: 'host-2', forged: true } });
      nc.publish(FLEET_SUBJECTS.report('host-2'), forged.data);
      const sub = nc.subscribe('_INBOX_host-2.>');
      await nc.flush();
      await waitFor('the permission violations', async () => errors.length >= 2, 5000);
      assert.ok(errors.some((e) => /Permissions Violation.*cgf\.agent\.host-2\.report/i.test(e)), errors.join('\n'));
      assert.ok(errors.some((e) => /Permissions Violation.*_INBOX_host-2/i.test(e)), errors.join('\n'));
      sub.unsubscribe();
      const afterView = (await hostsView()).find((h) => h.hostId === 'host-2')!;
      assert.equal(afterView.applied?.version, before.applied?.version);
    } finally {
      await nc.close();
    }
  });

  // How fast the switch reaches agents is a figure for the fleet benchmark, not this test: under a
  // loaded CI machine a fixed 2 s failed while the switch worked. Here: it reaches every agent, and back.
  it('kill switch: audit mode reaches connected agents, and back', async (t) => {
    const t0 = Date.now();
    const on = await call<{ revision: number }>('POST', 'fleet/audit-mode', { on: true });
    assert.equal(on.status, 200);
    await waitFor('every agent in audit mode', async () => (await Promise.all(hosts.map((h) => h.status()))).every((s) => s.mode === 'audit'), 30_000);
    t.diagnostic(`audit mode reached every agent in ${Date.now() - t0} ms`);
    const p = await hosts[1]!.probe(['blocked-four.test'], '10.99.1.1');
    assert.deepEqual(p['blocked-four.test'], ['192.0.2.10'], 'audit answers what enforce blocks');
    await call('POST', 'fleet/audit-mode', { on: false });
    await waitFor('every agent enforcing again', async () => (await Promise.all(hosts.map((h) => h.status()))).every((s) => s.mode === 'enforce'), 30_000);

    await call('POST', 'fleet/audit-mode', { on: true, cohort: 'canary' });
    await waitFor('the canary host in audit, the others enforcing', async () => {
      const modes = (await Promise.all(hosts.map((h) => h.status()))).map((s) => s.mode);
      return modes.join(',') === 'audit,enforce,enforce';
    }, 30_000);
    await call('POST', 'fleet/audit-mode', { on: false, cohort: 'canary' });
  });
  it('distributes a 1,000,000-entry list in chunks to every host, which enforce it', async () => {
    const entries: string[] = ['blocked-four.test', '10.99.0.0/16'];
    for (let i = 0; i < 899_998; i++) entries.push(`svc-${i}.million.test`);
    for (let i = 0; i < 100_000; i++) entries.push(`10.${100 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`);
    const version = await commit(entries);
    await assign(version);
    await converged(version, hosts, 180_000);
    const view = (await hostsView())[0]!;
    assert.equal(view.applied?.version, version);
    const s = await hosts[0]!.status();
    assert.equal(s.policy.domains + s.policy.wildcards, 899_999);
    assert.equal(s.policy.cidr4, 100_001);
    const p = await hosts[0]!.probe(['svc-123456.million.test', 'allowed.test'], '10.100.1.2');
    assert.equal(p['svc-123456.million.test'], 'error');
    assert.deepEqual(p['allowed.test'], ['192.0.2.10']);
    assert.equal(p['connect'], 'EPERM');
  });

  it('staged rollout: a canary host enforces the new version while a host not yet promoted still allows the name', async () => {
    const version = await commit(['blocked-four.test', 'blocked-rollout.test', '10.99.0.0/16']);
    const planFile = join(dir, 'plan.yaml');
    writeFileSync(
      planFile,
      [
        'blocklist: deploy',
        `version: ${version}`,
        'stages:',
        '  - name: canary',
        '    select: { labels: { cohort: canary } }',
        '    mode: enforce',
        '    gates: { manualApproval: true, convergenceTimeout: 30s }',
        '  - name: everyone',
        '    select: { percent: 100 }',
        '',
      ].join('\n'),
    );
    const cliEnv = { ...process.env, CGFENCE_SERVER: api, CGFENCE_TOKEN: token };
    const started = await exec(process.execPath, [CGFENCE, '--json', 'rollout', 'start', '--plan', planFile], { env: cliEnv });
    assert.equal(started.code, 0, started.stderr);
    const id = (JSON.parse(started.stdout) as { id: string }).id;
    await waitFor('the canary stage awaiting approval', async () => {
      const r = await call<{ stages: { phase: string }[] }>('GET', `rollouts/${id}`);
      return r.body.stages[0]?.phase === 'awaiting-approval';
    }, 30_000);
    const canary = await hosts[0]!.probe(['blocked-rollout.test'], '10.99.1.1');
    const prod = await hosts[1]!.probe(['blocked-rollout.test'], '10.99.1.1');
    assert.equal(canary['blocked-rollout.test'], 'error', 'the canary enforces the new version');
    assert.deepEqual(prod['blocked-rollout.test'], ['192.0.2.10'], 'a host not yet promoted still allows it');
    const promoted = await exec(process.execPath, [CGFENCE, 'rollout', 'promote', id], { env: cliEnv });
    assert.equal(promoted.code, 0, promoted.stderr);
    const watched = await exec(process.execPath, [CGFENCE, 'rollout', 'watch', id, '--interval-ms', '300'], { env: cliEnv, timeoutMs: 60_000 });
    assert.equal(watched.code, 0, `watch exits 0 when the rollout completes:\n${watched.stdout}${watched.stderr}`);
    await converged(version, hosts, 30_000);
    const after = await hosts[1]!.probe(['blocked-rollout.test'], '10.99.1.1');
    assert.equal(after['blocked-rollout.test'], 'error');
  });

  it('ships each block to the central history: cgfence events query --run finds it with its pid and command line', async () => {
    const p = await hosts[2]!.probe(['blocked-rollout.test', 'via-cname.example'], '10.99.1.1');
    assert.equal(p['blocked-rollout.test'], 'error');
    assert.equal(p['via-cname.example'], 'error', 'an allowed name whose CNAME leads to a listed one');
    const runId = p['run'] as string;
    assert.ok(runId, 'the run id is in the environment of the command');
    const cliEnv = { ...process.env, CGFENCE_SERVER: api, CGFENCE_TOKEN: token };
    type Found = { qname: string | null; cnameTarget: string | null; pid: number | null; cmdline: string | null; host: string; runId: string | null; action: string; method: string; destination: string | null };
    let found: Found[] = [];
    await waitFor(`the run's events in the history`, async () => {
      const r = await exec(process.execPath, [CGFENCE, 'events', 'query', '--run', runId, '--format', 'json'], { env: cliEnv });
      if (r.code !== 0) throw new Error(r.stderr);
      const body = JSON.parse(r.stdout) as Found[] | { events: Found[] };
      found = Array.isArray(body) ? body : body.events;
      return found.some((e) => e.method === 'dns' && e.cnameTarget === null) && found.some(isAddressRecord) && found.some((e) => e.cnameTarget !== null);
    }, 20_000);
    const chained = found.find((e) => e.cnameTarget !== null)!;
    assert.equal(chained.qname, 'via-cname.example', 'the history names the asked name');
    assert.equal(chained.cnameTarget, 'blocked-rollout.test', 'and the listed name it led to');
    assert.equal(chained.action, 'blocked');
    const dns = found.find((e) => e.method === 'dns' && e.cnameTarget === null)!;
    assert.equal(dns.qname, 'blocked-rollout.test');
    assert.equal(dns.host, 'host-3');
    assert.equal(dns.action, 'blocked');
    assert.ok(dns.pid !== null && dns.pid > 0);
    assert.match(dns.cmdline ?? '', /python3 -c/);
    const ip = found.find(isAddressRecord)!;
    assert.match(ip.cmdline ?? '', /python3 -c/);
    // The run's summary counts the chained name as blocked, not as contacted.
    type Domain = { name: string; queries: number; blocked: number };
    let domains: Domain[] = [];
    await waitFor(`the run's summary with its domains`, async () => {
      const r = await call<{ domains: Domain[] }>('GET', `runs/${runId}`);
      domains = r.status === 200 ? r.body.domains : [];
      return domains.some((d) => d.name === 'via-cname.example');
    }, 20_000);
    const chainedName = domains.find((d) => d.name === 'via-cname.example')!;
    assert.ok(chainedName.blocked >= 1 && chainedName.blocked <= chainedName.queries, JSON.stringify(domains));
  });

  // Last: the documents forged here carry revisions the server has not reached.
  it('rejects tampered, unsigned, wrong-key, rolled-back and expired documents, keeping the last good policy', async () => {
    const nc = await connect({ servers: nats.url(), ...natsConnectOptions({ seedFile: join(natsDir, 'server.nk') }) });
    try {
      const current = (await hostsView())[0]!;
      const revision = current.seenRevision ?? 0;
      const content = Buffer.from('blocked-one.test\n');
      const encoded = encodeTransfer('gzip', content);
      const header = (over: Partial<BundleHeader>): BundleHeader => ({
        kind: BUNDLE_KIND, blocklistId: 'deploy', name: 'deploy', version: 99, hash: sha256Tag(content), entries: 1, bytes: content.byteLength,
        encoding: 'gzip', transferBytes: encoded.byteLength, chunkBytes: 524288, chunks: 1,
        issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString(), ...over,
      });
      const doc = (rev: number, bundle: BundleHeader, key: KeyObject, over: Partial<DesiredDocument> = {}): DesiredMessage => ({
        desired: signDocument({
          kind: DESIRED_KIND, revision: rev, issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 3_600_000).toISOString(),
          baseline: signDocument(bundle, key), assignments: [], audit: { fleet: false, cohorts: [] }, rollback: null, ...over,
        } satisfies DesiredDocument, key),
        inline: { [bundle.hash]: encoded.toString('base64') },
      });
      const stranger = generateKeyPairSync('ed25519').privateKey;
      const good = doc(revision + 100, header({}), signingKey);
      const tampered: DesiredMessage = { ...good, desired: { ...good.desired, payload: good.desired.payload.replace('"fleet":false', '"fleet":true') } };
      const unsigned: DesiredMessage = { ...good, desired: { ...good.desired, signature: '' } };
      const cases: [string, DesiredMessage][] = [
        ['bad-signature', tampered],
        ['unsigned', unsigned],
        ['unknown-key', doc(revision + 101, header({}), stranger)],
        ['older-version', doc(revision + 102, header({ version: 1 }), signingKey)],
        ['expired', doc(revision + 103, header({ expiresAt: new Date(Date.now() - 1000).toISOString() }), signingKey)],
        ['hash-mismatch', doc(revision + 104, header({ hash: sha256Tag(Buffer.from('something else\n')) }), signingKey)],
      ];
      for (const [reason, msg] of cases) {
        nc.publish(FLEET_SUBJECTS.desired, JSON.stringify(msg));
        await waitFor(`every host to reject with ${reason}`, async () => {
          const view = await hostsView();
          return view.every((h) => h.lastError?.reason === reason);
        }, 10_000);
        for (const h of hosts) {
          const s = await h.status();
          assert.equal(s.fleet?.applied?.version, 6, `${h.id} keeps enforcing the last good policy after ${reason}`);
        }
      }
      const p = await hosts[0]!.probe(['blocked-four.test'], '10.99.1.1');
      assert.equal(p['blocked-four.test'], 'error', 'the last good policy is still enforced');
      assert.equal(p['connect'], 'EPERM');
    } finally {
      await nc.close();
    }
  });

});
