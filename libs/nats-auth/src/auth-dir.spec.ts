import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createAccount, createUser } from '@nats-io/nkeys';
import {
  addHost,
  authConfigFile,
  initAuth,
  listHosts,
  natsIncludeDirective,
  NatsAuthError,
  publicKeyOf,
  readSeed,
  removeHost,
  renderAuthConfig,
} from './auth-dir';
import { natsConnectOptions } from './connect';
import { InvalidHostIdError } from './render';
import { reloadNats } from './reload';

const mode = (file: string): number => statSync(file).mode & 0o777;

describe('nats-auth: the credentials directory', () => {
  const root = mkdtempSync(join(tmpdir(), 'cgfence-nats-auth-'));
  let n = 0;
  const freshDir = (): string => join(root, `d${++n}`, 'nats');
  after(() => rmSync(root, { recursive: true, force: true }));

  it('init creates the server key once, with private files private and auth.conf readable', () => {
    const dir = freshDir();
    const first = initAuth(dir);
    assert.equal(first.created, true);
    assert.match(first.serverPublicKey, /^U[A-Z2-7]{55}$/);
    assert.equal(mode(first.serverSeedFile), 0o600);
    assert.equal(mode(join(dir, 'hosts')), 0o700);
    assert.equal(mode(first.authFile), 0o644);
    assert.equal(mode(dir), 0o755);
    const again = initAuth(dir);
    assert.equal(again.created, false);
    assert.equal(again.serverPublicKey, first.serverPublicKey);
    assert.equal(readFileSync(first.authFile, 'utf8'), renderAuthConfig(dir));
  });

  it('add-host keeps a key unless asked to rotate; remove-host deletes it; auth.conf follows', () => {
    const dir = freshDir();
    initAuth(dir);
    const a = addHost(dir, 'a');
    assert.deepEqual([a.created, a.rotated, mode(a.seedFile)], [true, false, 0o600]);
    assert.equal(publicKeyOf(readSeed(a.seedFile)), a.publicKey);
    const same = addHost(dir, 'a');
    assert.deepEqual([same.created, same.rotated, same.publicKey], [false, false, a.publicKey]);
    const rotated = addHost(dir, 'a', { rotate: true });
    assert.deepEqual([rotated.created, rotated.rotated], [true, true]);
    assert.notEqual(rotated.publicKey, a.publicKey);
    const b = addHost(dir, 'b');
    assert.deepEqual(listHosts(dir).map((h) => [h.hostId, h.publicKey]), [['a', rotated.publicKey], ['b', b.publicKey]]);
    let conf = readFileSync(authConfigFile(dir), 'utf8');
    assert.ok(conf.includes(rotated.publicKey) && conf.includes(b.publicKey) && !conf.includes(a.publicKey));
    assert.equal(removeHost(dir, 'a'), true);
    assert.equal(removeHost(dir, 'a'), false);
    conf = readFileSync(authConfigFile(dir), 'utf8');
    assert.ok(!conf.includes(rotated.publicKey) && conf.includes(b.publicKey));
    assert.deepEqual(listHosts(dir).map((h) => h.hostId), ['b']);
  });

  it('names a bad host id and a directory that was never initialised', () => {
    const dir = freshDir();
    assert.throws(() => addHost(dir, 'a'), (e: unknown) => e instanceof NatsAuthError && e.message.includes('cgfence nats init'));
    initAuth(dir);
    assert.throws(() => addHost(dir, 'Web.1'), (e: unknown) => e instanceof InvalidHostIdError && e.message.includes('"Web.1"'));
    assert.throws(() => addHost(dir, '../x'), InvalidHostIdError);
    assert.throws(() => removeHost(dir, 'a/b'), InvalidHostIdError);
    writeFileSync(join(dir, 'hosts', 'Bad.nk'), 'x');
    assert.throws(() => listHosts(dir), (e: unknown) => e instanceof NatsAuthError && e.message.includes('Bad.nk'));
    assert.throws(() => renderAuthConfig(dir), /Bad\.nk/);
  });

  it('reads user seeds only, and says which file is wrong', () => {
    const dir = freshDir();
    initAuth(dir);
    const file = join(dir, 'probe.nk');
    const user = createUser();
    writeFileSync(file, `  ${new TextDecoder().decode(user.getSeed())}\n\n`);
    assert.equal(publicKeyOf(readSeed(file)), user.getPublicKey());
    writeFileSync(file, new TextDecoder().decode(createAccount().getSeed()));
    assert.throws(() => readSeed(file), (e: unknown) => e instanceof NatsAuthError && e.message.includes(file));
    const seed = new TextDecoder().decode(user.getSeed());
    // One character of the key changed: the CRC no longer matches (the last character holds padding bits, so not that one).
    writeFileSync(file, `${seed.slice(0, 20)}${seed[20] === 'A' ? 'B' : 'A'}${seed.slice(21)}`);
    assert.throws(() => readSeed(file), NatsAuthError);
    assert.throws(() => readSeed(join(dir, 'missing.nk')), /cannot read nkey seed .*missing\.nk: ENOENT/);
    // a damaged host seed is reported, not silently replaced
    writeFileSync(join(dir, 'hosts', 'c.nk'), 'garbage');
    assert.throws(() => addHost(dir, 'c'), /c\.nk does not hold an nkey user seed/);
    assert.equal(addHost(dir, 'c', { rotate: true }).rotated, true, 'rotate replaces a damaged seed');
  });

  it('writes the include line relative to the including file (nats-server joins even absolute paths)', () => {
    assert.equal(natsIncludeDirective('/etc/cgfence/nats', '/etc/nats-server.conf'), 'include "cgfence/nats/auth.conf"');
    assert.equal(natsIncludeDirective('/etc/cgfence/nats', '/srv/nats/nats.conf'), 'include "../../etc/cgfence/nats/auth.conf"');
  });

  it('gives hosts their inbox prefix and name in the connect options', () => {
    const dir = freshDir();
    const init = initAuth(dir);
    const a = addHost(dir, 'a');
    const host = natsConnectOptions({ seedFile: a.seedFile, hostId: 'a' });
    assert.equal(host.inboxPrefix, '_INBOX_a');
    assert.equal(host.name, 'cgfence-agent-a');
    const server = natsConnectOptions({ seedFile: init.serverSeedFile });
    assert.equal(server.inboxPrefix, undefined);
    assert.equal(server.name, 'cgfence-policy-server');
    assert.throws(() => natsConnectOptions({ seedFile: a.seedFile, hostId: 'A' }), InvalidHostIdError);
    assert.throws(() => natsConnectOptions({ seedFile: join(dir, 'nope.nk') }), NatsAuthError);
  });

  it('reloads only a nats-server process', () => {
    const dir = freshDir();
    assert.throws(() => reloadNats(process.pid), /process \d+ is ".+", not nats-server; not reloading it/);
    assert.throws(() => reloadNats(join(dir, 'none.pid')), /cannot read pid file/);
    initAuth(dir);
    writeFileSync(join(dir, 'x.pid'), 'abc');
    assert.throws(() => reloadNats(join(dir, 'x.pid')), /does not hold a process id/);
    assert.throws(() => reloadNats(0), /not a nats-server process id/);
  });
});
