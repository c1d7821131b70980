// Enrollment end to end, with TLS everywhere (issue 17): the real `cgfence`
// CLI makes the NATS operator and accounts (nats init-jwt) and a two-use join
// token; two real agents, each in its own network namespace, enroll over
// HTTPS with it and run in fleet mode over NATS TLS with JWT credentials; a
// third is refused. A restart needs no flag but the state dir. Removing a host
// disconnects it; it keeps enforcing its last good policy.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent as HttpAgent, fetch as undiciFetch } from 'undici';
import { findCgroup2Root } from '@cgfence/bpf';
import { createTestCa, freePort, issueCert, ManagedProcess, NatsServer, PostgresServer, startPolicyServer, waitFor } from '@cgfence/devservices';
import type { AgentStatus, HostView } from '@cgfence/proto';
import { LoopbackUpstream } from '../dns/testing/loopback-upstream';
import { CGFENCE, exec, Ran, stopChild } from './agent-harness';
import { LabHost, NetnsLab, randomLabSubnet } from './netns-lab';

const POLICY_SERVER = join(__dirname, '..', '..', '..', '..', 'policy-server', 'dist', 'src', 'main.js');

class EnrollingHost {
  proc?: ChildProcess;
  log = '';
  readonly cgroup = `cgf-enr-${randomBytes(3).toString('hex')}`;

  constructor(
    readonly id: string,
    readonly net: LabHost,
    readonly lab: NetnsLab,
    readonly dir: string,
  ) {}

  get stateDir(): string {
    return join(this.dir, 'state');
  }

  /** Starts `cgfence agent` with `extra` and the host's cgroup and state dir; resolves once it answers (or rejects with its log if it exits). */
  async start(extra: string[], upstream: string): Promise<void> {
    const argv = this.lab.exec(this.net, [
      process.execPath, CGFENCE, 'agent', ...extra,
      '--upstream', upstream, '--cgroup', this.cgroup, '--state-dir', this.stateDir,
      '--sync-interval-ms', '1000', '--report-interval-ms', '500', '--log-level', 'warn',
    ]);
    this.log = '';
    const p = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout?.on('data', (d: Buffer) => (this.log += d.toString()));
    p.stderr?.on('data', (d: Buffer) => (this.log += d.toString()));
    this.proc = p;
    await waitFor(`agent ${this.id} to answer`, async () => {
      if (p.exitCode !== null) throw new Error(`agent ${this.id} exited with ${p.exitCode}:\n${this.log}`);
      return (await this.cli(['agent', 'status', '--json'])).code === 0;
    }, 30_000);
  }

  /** Runs `cgfence agent ...` to its end (a refused enrollment exits). */
  run(extra: string[], upstream: string): Promise<Ran> {
    const argv = this.lab.exec(this.net, [process.execPath, CGFENCE, 'agent', ...extra, '--upstream', upstream, '--cgroup', this.cgroup, '--state-dir', this.stateDir]);
    return exec(argv[0]!, argv.slice(1), { timeoutMs: 30_000 });
  }

  cli(args: string[]): Promise<Ran> {
    return exec(process.execPath, [CGFENCE, ...args, '--state-dir', this.stateDir]);
  }

  async status(): Promise<AgentStatus> {
    const r = await this.cli(['agent', 'status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as AgentStatus;
  }

  async teardown(): Promise<void> {
    await stopChild(this.proc);
    try {
      writeFileSync(join(findCgroup2Root(), this.cgroup, 'cgroup.kill'), '1');
    } catch {
      // no cgroup (never started)
    }
    await this.cli(['agent', 'teardown', '--cgroup', this.cgroup]);
  }
}

describe('enrollment end to end over TLS (real CLI, real agents in network namespaces)', () => {
  let dir: string;
  let lab: NetnsLab;
  let pg: PostgresServer;
  let nats: NatsServer;
  let server: ManagedProcess | undefined;
  let upstream: LoopbackUpstream;
  let api: string;
  let caFile: string;
  let ca: string;
  let admin: string;
  let tokenFile: string;
  const hosts: EnrollingHost[] = [];

  /** The operator's `cgfence` against the HTTPS policy server. */
  const cli = (args: string[]): Promise<Ran> => exec(process.execPath, [CGFENCE, '--server', api, '--token', admin, '--ca', caFile, ...args]);

  const hostsView = async (): Promise<HostView[]> => {
    const dispatcher = new HttpAgent({ connect: { ca } });
    try {
      const res = await undiciFetch(`${api}/hosts`, { headers: { Authorization: `Bearer ${admin}` }, dispatcher });
      return (await res.json()) as HostView[];
    } finally {
      await dispatcher.close();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-enroll-e2e-'));
    // A subnet of its own: other engineers' and CI's labs on the default one may run at the same time.
    lab = NetnsLab.create(3, { subnet: randomLabSubnet() });
    const bridge = lab.bridgeAddress;
    const authority = createTestCa(join(dir, 'ca'));
    caFile = authority.caFile;
    ca = readFileSync(caFile, 'utf8');
    // nats.js checks a server reached by IP address against the name "localhost" (it sets no TLS server name for an IP):
    // the NATS certificate carries both (docs/operations.md: use DNS names in production).
    const natsCert = issueCert(authority, 'nats', [bridge, '127.0.0.1', 'localhost']);
    const httpsCert = issueCert(authority, 'policy', [bridge, '127.0.0.1']);
    const jwtDir = join(dir, 'nats-jwt');
    const init = await exec(process.execPath, [CGFENCE, 'nats', 'init-jwt', '--dir', jwtDir, '--resolver-dir', join(dir, 'resolver'), '--nats-conf', join(dir, 'nats', 'nats.conf')]);
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /CGFENCE_NATS_CREDS=/);
    pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    nats = await NatsServer.start({ dir: join(dir, 'nats'), host: bridge, tls: { ...natsCert, caFile }, include: [join(jwtDir, 'resolver.conf')] });
    upstream = await LoopbackUpstream.start((name) => (name.toLowerCase().replace(/\.$/, '').endsWith('.test') ? { A: ['192.0.2.10'] } : undefined), bridge);
    const port = await freePort();
    api = `https://${bridge}:${port}`;
    server = await startPolicyServer({
      main: POLICY_SERVER,
      port,
      baseUrl: api,
      ca,
      nats: true,
      log: join(dir, 'server.log'),
      env: {
        ...process.env,
        CGFENCE_DATABASE_URL: await pg.createDatabase('enroll_e2e'),
        CGFENCE_HTTP_HOST: bridge,
        CGFENCE_STATE_DIR: join(dir, 'server'),
        CGFENCE_NATS_URL: nats.url(),
        CGFENCE_NATS_CREDS: join(jwtDir, 'server.creds'),
        CGFENCE_NATS_CA: caFile,
        CGFENCE_NATS_JWT_DIR: jwtDir,
        CGFENCE_TLS_CERT: httpsCert.certFile,
        CGFENCE_TLS_KEY: httpsCert.keyFile,
        CGFENCE_LOG_LEVEL: 'warn',
      },
    });
    admin = readFileSync(join(dir, 'server', 'admin-token'), 'utf8').trim();
    lab.hosts.forEach((net, i) => {
      const hostDir = join(dir, `host-${i + 1}`);
      mkdirSync(hostDir);
      hosts.push(new EnrollingHost(`host-${i + 1}`, net, lab, hostDir));
    });
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

  it('creates a two-use token with the CLI over HTTPS; the CLI refuses the server without the CA', async () => {
    const created = await cli(['--json', 'hosts', 'enroll-token', 'create', '--cohort', 'canary', '--label', 'dc=fra', '--uses', '2', '--ttl', '1h']);
    assert.equal(created.code, 0, created.stderr);
    const { secret } = JSON.parse(created.stdout) as { secret: string };
    tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${secret}\n`, { mode: 0o600 });
    const noCa = await exec(process.execPath, [CGFENCE, '--server', api, '--token', admin, 'hosts', 'enroll-token', 'list']);
    assert.notEqual(noCa.code, 0);
    assert.match(noCa.stderr, /cannot reach the policy server/);
  });

  it('two hosts enroll with it and converge in fleet mode over TLS; the third is refused', async () => {
    const enroll = (h: EnrollingHost) => ['--enroll', api, '--enroll-token-file', tokenFile, '--ca', caFile, '--host-id', h.id];
    await Promise.all(hosts.slice(0, 2).map((h) => h.start(enroll(h), upstream.address)));
    for (const h of hosts.slice(0, 2)) {
      const creds = join(h.stateDir, 'fleet', 'enrollment', 'nats.creds');
      assert.equal(statSync(creds).mode & 0o777, 0o600);
      assert.equal(statSync(join(h.stateDir, 'fleet', 'enrollment')).mode & 0o777, 0o700);
      assert.doesNotMatch(readFileSync(join(dir, 'server.log'), 'utf8'), /SU[A-Z2-7]{56}/, 'no seed in the server log');
    }
    const third = await hosts[2]!.run(enroll(hosts[2]!), upstream.address);
    assert.notEqual(third.code, 0);
    assert.match(third.stderr, /refused the enrollment \(403\).*already used 2 of 2/);

    await waitFor('two registered hosts with the token labels', async () => {
      const view = await hostsView();
      return view.length === 2 && view.every((v) => v.cohort === 'canary');
    }, 20_000).catch(async (err: Error) => {
      throw new Error(`${err.message}\nhosts: ${JSON.stringify(await hostsView().catch((e: Error) => e.message))}\nagent logs:\n${hosts.map((h) => `${h.id}: ${h.log}`).join('\n')}\nserver log:\n${readFileSync(join(dir, 'server.log'), 'utf8').slice(-3000)}`);
    });
    const call = async (method: string, path: string, body: unknown) => {
      const dispatcher = new HttpAgent({ connect: { ca } });
      try {
        const res = await undiciFetch(`${api}/${path}`, { method, headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body), dispatcher });
        assert.ok(res.status < 300, `${path}: ${res.status} ${await res.text()}`);
      } finally {
        await dispatcher.close();
      }
    };
    await call('POST', 'blocklists', { name: 'deploy' });
    await call('POST', 'blocklists/deploy/versions', { entries: ['blocked.test'], message: 'e2e' });
    await call('POST', 'blocklists/deploy/assign', { version: 1 });
    await waitFor('both hosts to apply v1', async () => (await hostsView()).every((v) => v.applied?.version === 1 && v.inSync), 30_000);
    const list = await cli(['--json', 'hosts', 'enroll-token', 'list']);
    assert.deepEqual((JSON.parse(list.stdout) as { used: number; status: string }[]).map((t) => [t.used, t.status]), [[2, 'exhausted']]);
  });

  it('a restart needs no flag but the state dir', async () => {
    const h = hosts[0]!;
    await stopChild(h.proc);
    await h.start([], upstream.address);
    await waitFor('host-1 connected again', async () => (await h.status()).fleet?.connected === true, 20_000);
    assert.equal((await h.status()).fleet?.applied?.version, 1);
  });

  it('cgfence hosts remove disconnects the host within seconds; it keeps its last good policy', async () => {
    const h = hosts[1]!;
    assert.equal((await h.status()).fleet?.connected, true);
    const removed = await cli(['hosts', 'remove', h.id]);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /revoked 1 NATS key/);
    await waitFor('host-2 disconnected', async () => (await h.status()).fleet?.connected === false, 5000);
    // Refused on reconnect: still disconnected a few reconnect attempts later, and still enforcing.
    await new Promise((r) => setTimeout(r, 2000));
    const s = await h.status();
    assert.equal(s.fleet?.connected, false);
    assert.equal(s.fleet?.applied?.version, 1);
    assert.equal(s.mode, 'enforce');
    assert.deepEqual((await hostsView()).map((v) => v.hostId), ['host-1']);
  });
});
