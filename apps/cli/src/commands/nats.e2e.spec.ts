import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { NatsServer } from '@cgfence/devservices';
import { natsConnectOptions } from '@cgfence/nats-auth';

const BIN = join(__dirname, '..', '..', '..', 'bin', 'cgfence');

/** `cgfence nats ...` as an operator runs it, against a real nats-server for the reload. */
describe('cgfence nats', () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-nats-cli-'));
  const dir = join(root, 'creds');
  let nats: NatsServer | undefined;
  const cgfence = (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { env: { ...process.env, CGFENCE_NATS_DIR: dir, ...env }, encoding: 'utf8', timeout: 30_000 });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };

  before(() => {
    const r = cgfence(['nats', 'init', '--nats-conf', join(root, 'nats', 'nats.conf')]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /created the policy server key U[A-Z2-7]{55}/);
    assert.ok(r.out.includes('include "../creds/auth.conf"'), r.out);
  });

  after(async () => {
    await nats?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('refuses what it cannot do with the right exit code', () => {
    const bad = cgfence(['nats', 'add-host', 'Web.1']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /host id "Web\.1" must be/);
    const missing = cgfence(['nats', 'hosts', '--dir', join(root, 'nowhere')]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /run `cgfence nats init --dir .*nowhere` first/);
    assert.equal(cgfence(['nats', 'remove-host', 'ghost']).code, 1);
    assert.equal(cgfence(['nats', 'add-host', 'x', '--reload-pid', '1', '--reload-pid-file', 'f']).code, 2);
  });

  it('adds a host, reloads nats-server and the host connects; keeps the key; removes it', async () => {
    nats = await NatsServer.start({ dir: join(root, 'nats'), include: [join(dir, 'auth.conf')] });
    const pidFile = join(root, 'nats.pid');
    writeFileSync(pidFile, `${nats.pid}\n`);

    const added = cgfence(['--json', 'nats', 'add-host', 'web-1', '--reload-pid-file', pidFile, '--nats-url', nats.url()]);
    assert.equal(added.code, 0, added.err);
    const r = JSON.parse(added.out) as { seedFile: string; publicKey: string; reloadedPid: number; agent: string; created: boolean };
    assert.deepEqual([r.created, r.reloadedPid], [true, nats.pid]);
    assert.equal(statSync(r.seedFile).mode & 0o777, 0o600);
    assert.ok(r.agent.startsWith(`cgfence agent --host-id web-1 --server ${nats.url()} --nats-seed ${r.seedFile}`), r.agent);
    // The reload is asynchronous in nats-server: a few tries.
    let nc;
    for (let i = 0; i < 50 && nc === undefined; i++) {
      nc = await connect({ servers: nats.url(), ...natsConnectOptions({ seedFile: r.seedFile, hostId: 'web-1' }) }).catch(
        () => new Promise<undefined>((done) => setTimeout(() => done(undefined), 100)),
      );
    }
    assert.ok(nc, 'web-1 connects after add-host --reload-pid-file');
    await nc.close();

    const again = cgfence(['nats', 'add-host', 'web-1']);
    assert.equal(again.code, 0, again.err);
    assert.ok(again.out.includes(`kept its key ${r.publicKey}`), again.out);
    assert.match(again.out, /reload nats-server to apply it/);

    const list = cgfence(['nats', 'hosts']);
    assert.match(list.out, new RegExp(`^web-1\\s+${r.publicKey}\\s+${r.seedFile}$`, 'm'));

    const removed = cgfence(['nats', 'remove-host', 'web-1', '--reload-pid', String(nats.pid)]);
    assert.equal(removed.code, 0, removed.err);
    assert.match(removed.out, new RegExp(`removed host web-1; nats-server ${nats.pid} reloaded`));
    assert.equal(cgfence(['nats', 'hosts']).out.includes('web-1'), false);

    const notNats = cgfence(['nats', 'add-host', 'web-2', '--reload-pid', String(process.pid)]);
    assert.equal(notNats.code, 1);
    assert.match(notNats.err, /auth\.conf is written, but nats-server was not reloaded: process \d+ is .*not nats-server/);
  });
  it('migrate-from-nkeys: a host keeps its key and connects to a JWT-mode nats-server with the creds it writes', async () => {
    const added = cgfence(['--json', 'nats', 'add-host', 'mig-1']);
    assert.equal(added.code, 0, added.err);
    const { publicKey } = JSON.parse(added.out) as { publicKey: string };
    const jwtDir = join(root, 'jwt');
    const init = cgfence(['nats', 'init-jwt', '--dir', jwtDir, '--resolver-dir', join(root, 'resolver'), '--nats-conf', join(root, 'nats-jwt', 'nats.conf')]);
    assert.equal(init.code, 0, init.err);
    const out = join(root, 'migrated');
    // Without a policy server: it must be told to skip recording the keys (the recorded path: migrated-hosts.e2e).
    const noServer = cgfence(['nats', 'migrate-from-nkeys', '--jwt-dir', jwtDir, '--out', out, '--server', 'http://127.0.0.1:1']);
    assert.equal(noServer.code, 1);
    assert.match(noServer.err, /the creds files are written in .*, but the key of .* was not recorded with the policy server/);
    const migrated = cgfence(['--json', 'nats', 'migrate-from-nkeys', '--jwt-dir', jwtDir, '--out', out, '--no-register']);
    assert.equal(migrated.code, 0, migrated.err);
    const hosts = JSON.parse(migrated.out) as { hostId: string; publicKey: string; credsFile: string; registered: boolean }[];
    const mig = hosts.find((h) => h.hostId === 'mig-1');
    assert.equal(mig?.registered, false);
    assert.equal(mig?.publicKey, publicKey, 'the host keeps its nkey');
    assert.equal(statSync(mig.credsFile).mode & 0o777, 0o600);
    const jwtNats = await NatsServer.start({ dir: join(root, 'nats-jwt'), include: [join(jwtDir, 'resolver.conf')] });
    try {
      const nc = await connect({ servers: jwtNats.url(), ...natsConnectOptions({ credsFile: mig.credsFile, hostId: 'mig-1' }) });
      await nc.close();
      // The rotation command: --force only with --finish; a NATS it cannot reach is a clear failure.
      const forced = cgfence(['nats', 'rotate-account-key', '--dir', jwtDir, '--nats-url', jwtNats.url(), '--force']);
      assert.equal(forced.code, 2, forced.err);
      assert.match(forced.err, /--force goes with --finish/);
      // It takes the lock host removals take: without the policy server's database it refuses, unless told not to lock.
      const unlocked = cgfence(['nats', 'rotate-account-key', '--dir', jwtDir, '--nats-url', jwtNats.url()], { CGFENCE_DATABASE_URL: '' });
      assert.equal(unlocked.code, 2, unlocked.err);
      assert.match(unlocked.err, /give the policy server's database \(--database-url or CGFENCE_DATABASE_URL\) so it takes their lock, or --no-lock/);
      const noDb = cgfence(['nats', 'rotate-account-key', '--dir', jwtDir, '--nats-url', jwtNats.url(), '--database-url', 'postgres://nobody@127.0.0.1:1/none']);
      assert.equal(noDb.code, 1);
      assert.match(noDb.err, /cannot reach the policy server's database \(--database-url\) to take the account JWT lock/);
      const unreachable = cgfence(['nats', 'rotate-account-key', '--dir', jwtDir, '--nats-url', 'nats://127.0.0.1:1', '--no-lock']);
      assert.equal(unreachable.code, 1);
      assert.match(unreachable.err, /cannot reach NATS at nats:\/\/127\.0\.0\.1:1 as the system user/);
      const notBegun = cgfence(['nats', 'rotate-account-key', '--dir', jwtDir, '--nats-url', jwtNats.url(), '--finish', '--no-lock']);
      assert.equal(notBegun.code, 1);
      assert.match(notBegun.err, /no rotation is under way/);
    } finally {
      await jwtNats.stop();
    }
  });
});
