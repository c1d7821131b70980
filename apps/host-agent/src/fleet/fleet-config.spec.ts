import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentVersion, FleetConfigError, jittered, parseLabelsText, parseServers, readServerKeys, resolveHostId, resolveLabels } from './fleet-config';
import { signingKey } from './testing/fleet-fixtures';

const dir = mkdtempSync(join(tmpdir(), 'cgfence-fleet-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};

describe(resolveHostId.name, () => {
  it('takes --host-id, else the machine id', () => {
    assert.equal(resolveHostId('web-1'), 'web-1');
    assert.equal(resolveHostId(undefined, file('machine-id', '0123456789abcdef0123456789abcdef\n')), '0123456789abcdef0123456789abcdef');
  });

  it('says what is wrong and what to pass', () => {
    assert.throws(() => resolveHostId('Web.1'), (e: Error) => e instanceof FleetConfigError && /--host-id: host id "Web.1" must be/.test(e.message));
    assert.throws(() => resolveHostId(undefined, join(dir, 'none')), /cannot be read \(ENOENT\): pass --host-id ID/);
    assert.throws(() => resolveHostId(undefined, file('bad-id', 'NOT OK\n')), /bad-id: host id "NOT OK" .*; pass --host-id ID/);
  });
});

describe(resolveLabels.name, () => {
  it('reads key=value lines with comments, lets --label override and --cohort set the cohort', () => {
    const f = file('labels', '# host labels\nregion = eu-west\n\nrole=web\r\nrack=r1  # not a comment: part of the value\n');
    assert.deepEqual(resolveLabels({ labelsFile: f, label: ['role=api', 'tier=1'], cohort: 'canary' }), {
      region: 'eu-west',
      role: 'api',
      rack: 'r1  # not a comment: part of the value',
      tier: '1',
      cohort: 'canary',
    });
  });

  it('takes the cohort from a label when --cohort is absent, and refuses two different ones', () => {
    assert.deepEqual(resolveLabels({ label: ['cohort=blue'] }), { cohort: 'blue' });
    assert.deepEqual(resolveLabels({ label: ['cohort=blue'], cohort: 'blue' }), { cohort: 'blue' });
    assert.throws(() => resolveLabels({ label: ['cohort=blue'], cohort: 'green' }), /--cohort green contradicts the label cohort=blue/);
  });

  it('names the bad line or label', () => {
    assert.throws(() => parseLabelsText('a=1\njust-a-word\n', 'labels.txt'), /labels.txt line 2: expected key=value, got "just-a-word"/);
    assert.throws(() => resolveLabels({ label: ['=x'] }), /--label "=x": expected key=value/);
    assert.throws(() => resolveLabels({ label: ['bad key=x'] }), /label "bad key": label keys are/);
    assert.throws(() => resolveLabels({ labelsFile: join(dir, 'missing') }), /--labels-file .*missing: ENOENT/);
  });
});

describe(readServerKeys.name, () => {
  it('reads one or more Ed25519 keys', () => {
    const a = signingKey();
    const b = signingKey();
    assert.equal(readServerKeys(file('keys.pem', `${a.pem}\n${b.pem}`)).size, 2);
  });

  it('refuses a file without a public key', () => {
    assert.throws(() => readServerKeys(file('empty.pem', 'hello')), /--server-key .*empty.pem: no "BEGIN PUBLIC KEY" block found/);
    assert.throws(() => readServerKeys(join(dir, 'nope.pem')), /ENOENT/);
  });
});

describe(parseServers.name, () => {
  it('accepts nats:// and tls:// URLs, comma-separated', () => {
    assert.deepEqual(parseServers('nats://a:4222, tls://b:4443'), ['nats://a:4222', 'tls://b:4443']);
  });

  it('refuses anything else', () => {
    assert.throws(() => parseServers('http://a:4222'), /expected nats:\/\/HOST:PORT/);
    assert.throws(() => parseServers('a:4222'), /expected nats:\/\/HOST:PORT/);
    assert.throws(() => parseServers(' , '), /no URL given/);
  });
});

describe(jittered.name, () => {
  it('stays within ±20%', () => {
    assert.equal(jittered(30_000, 0.2, () => 0), 24_000);
    assert.equal(jittered(30_000, 0.2, () => 0.999999), 36_000);
    assert.equal(jittered(30_000, 0.2, () => 0.5), 30_000);
  });
});

describe(agentVersion.name, () => {
  it("is the host agent package's version", () => {
    assert.match(agentVersion(), /^\d+\.\d+\.\d+/);
  });
});
