import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createAccount, createUser } from '@nats-io/nkeys';
import { assertHostId, hostPermissions, InvalidHostIdError, renderAuthorization, SERVER_PERMISSIONS } from './render';

const userKey = (): string => createUser().getPublicKey();

describe('nats-auth: permissions and the authorization block', () => {
  it('lets a host publish only under its own id and read only the broadcast and its inbox', () => {
    assert.deepEqual(hostPermissions('web-1'), {
      publish: ['cgf.agent.web-1.>', 'cgf.events.web-1.>'],
      subscribe: ['cgf.fleet.desired', '_INBOX_web-1.>'],
    });
    assert.deepEqual(SERVER_PERMISSIONS, { publish: ['>'], subscribe: ['>'] });
  });

  it('rejects host ids that are not one subject token, naming the id', () => {
    for (const bad of ['', 'Web1', 'a.b', 'a*', '>', 'a b', '-a', 'x'.repeat(64)]) {
      assert.throws(() => assertHostId(bad), (err: unknown) => {
        assert.ok(err instanceof InvalidHostIdError, `${JSON.stringify(bad)} must be refused`);
        assert.ok(err.message.includes(JSON.stringify(bad)), err.message);
        return true;
      });
      assert.throws(() => hostPermissions(bad), InvalidHostIdError);
    }
    for (const good of ['a', 'web-1', 'db_02', '0', 'x'.repeat(63)]) assert.equal(assertHostId(good), good);
  });

  it('renders one user per key with exactly its permissions, hosts sorted', () => {
    const server = userKey();
    const [a, b] = [userKey(), userKey()];
    const text = renderAuthorization({ server, hosts: [{ hostId: 'b', publicKey: b }, { hostId: 'a', publicKey: a }] }, ['header line']);
    assert.ok(text.startsWith('# header line\nauthorization {\n  users = [\n'), text);
    const users = text.split(/\n {4}# /).slice(1);
    assert.equal(users.length, 3);
    assert.ok(users[0]!.startsWith('policy server') && users[0]!.includes(`nkey: "${server}"`));
    assert.ok(users[0]!.includes('publish: { allow: [">"] }') && users[0]!.includes('subscribe: { allow: [">"] }'));
    assert.ok(users[1]!.startsWith('host a') && users[1]!.includes(`nkey: "${a}"`));
    assert.ok(users[1]!.includes('publish: { allow: ["cgf.agent.a.>", "cgf.events.a.>"] }'), users[1]);
    assert.ok(users[1]!.includes('subscribe: { allow: ["cgf.fleet.desired", "_INBOX_a.>"] }'), users[1]);
    assert.ok(users[2]!.startsWith('host b') && users[2]!.includes(`nkey: "${b}"`) && !users[2]!.includes('.a.'));
    // No user anywhere else, and the text only depends on the keys.
    assert.equal(text.match(/nkey:/g)?.length, 3);
    assert.equal(renderAuthorization({ server, hosts: [{ hostId: 'a', publicKey: a }, { hostId: 'b', publicKey: b }] }, ['header line']), text);
    // Balanced braces and brackets: nats-server parses it (the integration test runs one on it).
    for (const [open, close] of [['{', '}'], ['[', ']']] as const) {
      assert.equal(text.split(open).length, text.split(close).length, `${open}${close} balanced`);
    }
  });

  it('refuses keys that are not user keys, shared keys, and a host listed twice', () => {
    const server = userKey();
    const a = userKey();
    assert.throws(() => renderAuthorization({ server: createAccount().getPublicKey(), hosts: [] }), /server: .* not an nkey user public key/);
    assert.throws(() => renderAuthorization({ server, hosts: [{ hostId: 'a', publicKey: 'UNOPE' }] }), /host a: "UNOPE" is not an nkey user public key/);
    assert.throws(() => renderAuthorization({ server, hosts: [{ hostId: 'a', publicKey: server }] }), /host a has the same key as the server/);
    assert.throws(
      () => renderAuthorization({ server, hosts: [{ hostId: 'a', publicKey: a }, { hostId: 'b', publicKey: a }] }),
      /host b has the same key as a/,
    );
    assert.throws(
      () => renderAuthorization({ server, hosts: [{ hostId: 'a', publicKey: a }, { hostId: 'a', publicKey: userKey() }] }),
      /host a is listed twice/,
    );
    assert.throws(() => renderAuthorization({ server, hosts: [{ hostId: 'A', publicKey: a }] }), InvalidHostIdError);
  });
});
