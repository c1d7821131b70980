import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createHmac } from 'node:crypto';
import { createServer, IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort, waitFor } from '@cgfence/devservices';

const BIN = join(__dirname, '..', '..', 'bin', 'cgfence');

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** The local fleet and the CLI, run as a user runs them: as processes. */
describe('cgfence CLI against the local fleet', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-cli-e2e-'));
  const stateDir = join(dir, 'state');
  let fleet: ChildProcess | undefined;
  let fleetOut = '';
  let ports: { pg: number; nats: number; api: number };
  let env: NodeJS.ProcessEnv;
  const agentCgroup = `cgf-cli-e2e-${process.pid}`;

  const cgfence = (args: string[], input?: string): Ran => {
    const r = spawnSync(process.execPath, [BIN, ...args], { env, input, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
  // For tests that serve something in this process (a webhook receiver):
  // spawnSync would block its event loop while the CLI runs.
  const cgfenceAsync = (args: string[]): Promise<Ran> =>
    new Promise((resolve) => {
      execFile(process.execPath, [BIN, ...args], { env, encoding: 'utf8', timeout: 60_000 }, (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, out: stdout, err: stderr });
      });
    });

  async function up(): Promise<void> {
    fleetOut = '';
    fleet = spawn(
      process.execPath,
      [
        BIN, 'local', 'up', '--state-dir', stateDir,
        '--pg-port', String(ports.pg), '--nats-port', String(ports.nats), '--api-port', String(ports.api),
        // Never the machine's resolver in a test: a loopback address where nothing answers.
        '--agent-upstream', '127.0.0.1:9', '--agent-cgroup', agentCgroup,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    fleet.stdout?.on('data', (d: Buffer) => (fleetOut += d.toString()));
    fleet.stderr?.on('data', (d: Buffer) => (fleetOut += d.toString()));
    await waitFor('the local fleet to come up', async () => {
      if (fleet?.exitCode !== null) throw new Error(`local up exited early:\n${fleetOut}`);
      return fleetOut.includes('Ctrl-C stops everything');
    }, 90_000);
  }

  async function down(): Promise<number | null> {
    const f = fleet;
    if (!f || f.exitCode !== null) return f?.exitCode ?? null;
    const exited = new Promise<number | null>((resolve) => f.once('exit', (code) => resolve(code)));
    f.kill('SIGINT');
    return exited;
  }

  before(async () => {
    ports = { pg: await freePort(), nats: await freePort(), api: await freePort() };
    await up();
    const tokenFile = join(stateDir, 'server', 'admin-token');
    env = { ...process.env, CGFENCE_SERVER: `http://127.0.0.1:${ports.api}`, CGFENCE_TOKEN: readFileSync(tokenFile, 'utf8').trim() };
  });

  after(async () => {
    await down();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints where the API and its docs are, and the try-this lines', async () => {
    assert.match(fleetOut, new RegExp(`API: +http://127\\.0\\.0\\.1:${ports.api}`));
    assert.match(fleetOut, /API docs: .*\/docs/);
    assert.match(fleetOut, /cgfence blocklist create deploy-safety/);
    const docs = await fetch(`http://127.0.0.1:${ports.api}/docs/`);
    assert.equal(docs.status, 200);
  });

  it('runs the printed try-this lines, exactly as printed, in a shell', () => {
    const printed = fleetOut.split('\n');
    const at = printed.findIndex((l) => l.startsWith('Try this'));
    const script = printed.slice(at + 1, at + 7).map((l) => l.trim());
    assert.equal(script.length, 6);
    assert.equal(printed[at + 7]?.trim(), '', 'six lines to try');
    assert.match(script[0] ?? '', /^export CGFENCE_SERVER=/);
    // `cgfence` on PATH, as the setup installs it.
    const binDir = join(dir, 'bin');
    mkdirSync(binDir, { recursive: true });
    if (!existsSync(join(binDir, 'cgfence'))) symlinkSync(BIN, join(binDir, 'cgfence'));
    const sh = spawnSync('sh', ['-e', '-c', script.join('\n')], {
      env: { PATH: `${binDir}:${dirname(process.execPath)}:/usr/bin:/bin` },
      encoding: 'utf8',
    });
    assert.equal(sh.status, 0, `${script.join('\n')}\n${sh.stdout}${sh.stderr}`);
    assert.match(sh.stdout, /created blocklist deploy-safety/);
    assert.match(sh.stdout, /committed deploy-safety v1: 2 entries/);
    assert.equal(cgfence(['blocklist', 'show', 'deploy-safety', '--entries']).out, 'github.com\n*.githubusercontent.com\n');
    assert.match(sh.stdout, /baseline is now deploy-safety v1/);
    assert.match(sh.stdout, /^HOST +COHORT/m);
    assert.match(sh.stdout, /github\.com is blocked for this deploy/);
  });

  it('feeds the local agent from the policy server: it applies the assigned version and confirms it', async () => {
    await waitFor('the local agent to confirm deploy-safety v1', async () => {
      const hosts = JSON.parse(cgfence(['--json', 'hosts']).out) as { hostId: string; applied: { blocklist: string; version: number } | null; inSync: boolean }[];
      const local = hosts.find((h) => h.hostId === 'local');
      return local?.applied?.blocklist === 'deploy-safety' && local.applied.version === 1 && local.inSync;
    }, 20_000);
    // The server filters: by label and state, and a filter the host does not match.
    const ids = (args: string[]) => (JSON.parse(cgfence(['--json', 'hosts', ...args]).out) as { hostId: string }[]).map((h) => h.hostId);
    assert.deepEqual(ids(['--label', 'cohort=local', '--state', 'in-sync', '--applied', 'deploy-safety@1', '--desired', 'deploy-safety']), ['local']);
    assert.deepEqual(ids(['--label', 'cohort=local', '--label', 'team=nobody']), []);
    assert.deepEqual(ids(['--state', 'stale']), []);
    const bad = cgfence(['hosts', '--state', 'sideways']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.err, /sideways.*in-sync/s);
    const agentState = join(stateDir, 'agent');
    const probe = spawnSync(process.execPath, [BIN, 'run', '--state-dir', agentState, '--', 'sh', '-c', 'getent hosts github.com; echo "exit $?"'], { encoding: 'utf8' });
    assert.match(probe.stdout, /exit 2/, 'github.com does not resolve inside a run');
    const events = spawnSync(process.execPath, [BIN, 'agent', 'events', '--json', '--state-dir', agentState], { encoding: 'utf8' }).stdout;
    assert.match(events, /"qname":"github\.com".*"action":"blocked"|"action":"blocked".*"qname":"github\.com"/, 'the block is attributed in the journal');
    const status = JSON.parse(spawnSync(process.execPath, [BIN, 'agent', 'status', '--json', '--state-dir', agentState], { encoding: 'utf8' }).stdout) as { fleet?: { connected: boolean; applied: { version: number } | null } };
    assert.equal(status.fleet?.connected, true);
    assert.equal(status.fleet?.applied?.version, 1);
  });

  it('flags a blocked run to the team that owns it: a finding, one signed webhook, and its lifecycle through the CLI', async () => {
    // A real webhook receiver on loopback.
    const received: { headers: IncomingHttpHeaders; body: string }[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
      const set = await cgfenceAsync(['owners', 'set', 'service=shop', '--team', 'payments', '--webhook', url]);
      assert.equal(set.code, 0, set.err);
      const secret = /shown once\): (\S+)/.exec(set.out)?.[1];
      assert.ok(secret, set.out);
      assert.match((await cgfenceAsync(['owners', 'list'])).out, /service=shop +payments +tgt_/);

      const agentState = join(stateDir, 'agent');
      const run = await cgfenceAsync(['run', '--state-dir', agentState, '--label', 'service=shop', '--', 'sh', '-c', 'getent hosts github.com; true']);
      assert.equal(run.code, 0, run.err);
      type F = { id: string; entry: string; state: string; blocked: number; team: string | null; commands: string[] };
      const list = async (): Promise<F[]> => JSON.parse((await cgfenceAsync(['--json', 'findings', 'list', '--owner', 'service=shop'])).out) as F[];
      await waitFor('the finding of service=shop', async () => (await list()).length === 1, 30_000);
      const [f] = await list();
      assert.equal(f?.entry, 'github.com');
      assert.equal(f?.team, 'payments');
      assert.equal(f?.state, 'new');
      await waitFor('the webhook', () => received.length === 1, 20_000);
      const r = received[0]!;
      const signed = `${String(r.headers['cgfence-delivery'])}.${String(r.headers['cgfence-timestamp'])}.${r.body}`;
      assert.equal(r.headers['cgfence-signature'], `v1=${createHmac('sha256', secret).update(signed).digest('hex')}`, 'the documented recipe verifies it');
      assert.equal((JSON.parse(r.body) as { trigger: string }).trigger, 'finding.new');

      // The same deploy again: counted, not announced again.
      await cgfenceAsync(['run', '--state-dir', agentState, '--label', 'service=shop', '--', 'sh', '-c', 'getent hosts github.com; true']);
      await waitFor('the second block counted', async () => ((await list())[0]?.blocked ?? 0) >= 2, 30_000);
      assert.equal(received.length, 1);

      const show = await cgfenceAsync(['findings', 'show', f!.id]);
      assert.equal(show.code, 0, show.err);
      assert.match(show.out, /owner: +service=shop \(team payments\)/);
      assert.match(show.out, /getent hosts github\.com/);
      assert.match((await cgfenceAsync(['findings', 'ack', f!.id, '--reason', 'ours: the deploy checks GitHub'])).out, /is acknowledged/);
      assert.equal((await cgfenceAsync(['findings', 'ack', f!.id])).code, 2, '--reason is required');
      assert.match((await cgfenceAsync(['findings', 'accept', f!.id, '--reason', 'until the mirror exists', '--until', '30d'])).out, /is accepted until/);
      assert.match((await cgfenceAsync(['findings', 'show', f!.id])).out, /Acknowledged +ours: the deploy checks GitHub/);
      assert.match((await cgfenceAsync(['findings', 'list', '--state', 'accepted'])).out, /service=shop +payments +github\.com +accepted/);
      assert.match((await cgfenceAsync(['notifications', 'list', '--status', 'delivered'])).out, /finding\.new +delivered/);
      assert.equal((await cgfenceAsync(['findings', 'list', '--state', 'bogus'])).code, 2);
    } finally {
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
    }
  });

  it('creates, commits from a file and from changes, lists versions, diffs and shows entries', () => {
    assert.equal(cgfence(['blocklist', 'create', 'ci', '-d', 'for CI']).code, 0);
    const file = join(dir, 'list.txt');
    writeFileSync(file, '# deploy must not need these\nGitHub.com\n*.npmjs.org   # registry\n10.9.9.9/16\n');
    const c1 = cgfence(['blocklist', 'commit', 'ci', '--file', file, '-m', 'first']);
    assert.equal(c1.code, 0, c1.err);
    assert.match(c1.out, /committed ci v1: 3 entries/);
    const c2 = cgfence(['blocklist', 'commit', 'ci', '--add', 'registry.example', '--remove', '10.9.0.0/16']);
    assert.match(c2.out, /committed ci v2: 3 entries \(\+1 -1\)/);
    const same = cgfence(['blocklist', 'commit', 'ci', '--file', file]);
    assert.equal(same.code, 0);
    assert.match(same.out, /committed ci v3/);
    const again = cgfence(['blocklist', 'commit', 'ci', '--file', file]);
    assert.match(again.out, /unchanged: the content equals ci v3/);

    const versions = JSON.parse(cgfence(['--json', 'blocklist', 'versions', 'ci']).out) as { version: number }[];
    assert.deepEqual(versions.map((v) => v.version), [1, 2, 3]);
    const diff = cgfence(['blocklist', 'diff', 'ci', '1', '2']);
    assert.match(diff.out, /^\+ registry\.example$/m);
    assert.match(diff.out, /^- 10\.9\.0\.0\/16$/m);
    const shown = cgfence(['blocklist', 'show', 'ci', '1']);
    assert.match(shown.out, /wildcard +\*\.npmjs\.org +registry/);
  });

  it('reports every bad entry with its line and exits 1', () => {
    cgfence(['blocklist', 'create', 'bad']);
    const r = cgfence(['blocklist', 'commit', 'bad', '--file', '-'], 'fine.example\n-nope.example\n300.1.2.3\n');
    assert.equal(r.code, 1);
    assert.match(r.err, /2 invalid entries; nothing was committed/);
    assert.match(r.err, /line 2: -nope\.example: /);
    assert.match(r.err, /line 3: 300\.1\.2\.3: /);
  });

  it('exits 2 on usage errors and 1 when the server refuses', () => {
    assert.equal(cgfence(['blocklist', 'commit', 'ci']).code, 2);
    assert.equal(cgfence(['blocklist', 'frobnicate']).code, 2);
    assert.equal(cgfence(['blocklist', 'show', 'ci', 'x']).code, 2);
    const missing = cgfence(['blocklist', 'show', 'nope']);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /blocklist nope does not exist \[blocklist\.not_found\]/);
    const noToken = spawnSync(process.execPath, [BIN, 'blocklist', 'list'], { env: { ...env, CGFENCE_TOKEN: '' }, encoding: 'utf8' });
    assert.equal(noToken.status, 1);
    assert.match(noToken.stderr, /CGFENCE_TOKEN/);
  });

  it('prints a server validation error once, and names an unknown host or cohort as such', () => {
    const bad = cgfence(['events', 'query', '--from', '0000-01-01']);
    assert.equal(bad.code, 1);
    assert.equal(bad.err.split('between the years 1 and 9999').length - 1, 1, bad.err);
    assert.match(bad.err, /\[validation\.failed\]/);
    const host = cgfence(['events', 'query', '--host', 'nosuch-host']);
    assert.equal(host.code, 1);
    assert.match(host.err, /no such host: nosuch-host/);
    const cohort = cgfence(['events', 'top', '--by', 'domain', '--cohort', 'nosuch-cohort']);
    assert.equal(cohort.code, 1);
    assert.match(cohort.err, /no such cohort/);
  });

  it('issues a viewer token that can read but not write, and the audit log names who did what', () => {
    const issued = JSON.parse(cgfence(['--json', 'token', 'create', 'reader', '--role', 'viewer']).out) as { secret: string };
    const asViewer = (args: string[]) => spawnSync(process.execPath, [BIN, ...args], { env: { ...env, CGFENCE_TOKEN: issued.secret }, encoding: 'utf8' });
    assert.equal(asViewer(['blocklist', 'list']).status, 0);
    const refused = asViewer(['blocklist', 'create', 'x']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /operator role/);
    const audit = JSON.parse(cgfence(['--json', 'audit', '--limit', '5']).out) as { records: { actor: string; type: string }[] };
    assert.ok(audit.records.some((r) => r.actor === 'bootstrap-admin' && r.type === 'TokenIssued'));
  });

  it('starts one host agent that protects a run', () => {
    const agentState = join(stateDir, 'agent');
    const status = spawnSync(process.execPath, [BIN, 'agent', 'status', '--json', '--state-dir', agentState], { encoding: 'utf8' });
    assert.equal(status.status, 0, status.stderr);
    // 8 programs of cgfence.bpf.c and the unix guard's 2 (kernel 6.7+, as here).
    assert.equal((JSON.parse(status.stdout) as { programs: string[] }).programs.length, 10);
    const run = spawnSync(process.execPath, [BIN, 'run', '--state-dir', agentState, '--', 'sh', '-c', 'cat /proc/self/cgroup'], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`/${agentCgroup}/run-`));
  });

  it('stops everything on Ctrl-C, leaving no cgroup or pins behind, and a second start reuses the data', async () => {
    const code = await down();
    assert.equal(code, 0, fleetOut);
    const gone = await fetch(`http://127.0.0.1:${ports.api}/health`).then(() => false, () => true);
    assert.ok(gone, 'the API must be down after Ctrl-C');
    assert.ok(!existsSync(`/sys/fs/bpf/cgfence/${agentCgroup}`), 'pins removed');
    const cg2 = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2')?.split(' ')[1] ?? '';
    assert.ok(cg2 && !existsSync(join(cg2, agentCgroup)), 'deploy cgroup removed');
    await up();
    const list = JSON.parse(cgfence(['--json', 'blocklist', 'list']).out) as { name: string }[];
    assert.deepEqual(list.map((b) => b.name).sort(), ['bad', 'ci', 'deploy-safety']);
  });
});
