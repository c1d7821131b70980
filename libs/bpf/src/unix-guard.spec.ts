// The unix guard's pure parts: socket path keys and its ring buffer events.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEvent } from './codec';
import { EVENT } from './layout';
import { decodeUnixPath, DEFAULT_UNIX_GUARD_PATHS, encodeUnixPath, sssServesHosts, UNIX_GUARD_LAYOUT, validateUnixGuardPaths } from './unix-guard';

describe('unix guard keys', () => {
  it('encodes a pathname up to its last byte and zero-fills the rest', () => {
    const k = encodeUnixPath('/run/nscd/socket');
    assert.equal(k.length, UNIX_GUARD_LAYOUT.KEY_SIZE);
    assert.equal(k.readUInt32LE(0), '/run/nscd/socket'.length);
    assert.equal(k.subarray(4, 4 + 16).toString(), '/run/nscd/socket');
    assert.ok(k.subarray(4 + 16).every((b) => b === 0));
  });

  it('encodes an abstract name with its leading NUL and round-trips both kinds', () => {
    const k = encodeUnixPath('@resolver');
    assert.equal(k.readUInt32LE(0), 9);
    assert.equal(k[4], 0);
    for (const p of ['/var/lib/sss/pipes/nss', '@resolver', `/${'a'.repeat(107)}`]) assert.equal(decodeUnixPath(encodeUnixPath(p)), p);
  });

  it('refuses what the kernel could never match, naming it', () => {
    assert.throws(() => encodeUnixPath('/a\0b'), /contains a NUL byte/);
    assert.throws(() => encodeUnixPath(''), /absolute \(\/…\) or abstract \(@name\), got ""/);
    assert.doesNotThrow(() => validateUnixGuardPaths(DEFAULT_UNIX_GUARD_PATHS));
  });
});

describe(sssServesHosts.name, () => {
  it("reads the hosts line of nsswitch.conf, comments and other databases aside", () => {
    assert.equal(sssServesHosts('passwd: files sss\ngroup: files sss\nhosts: files dns\n'), false, 'sss for users only');
    assert.equal(sssServesHosts('hosts:   files sss dns [NOTFOUND=return]\n'), true);
    assert.equal(sssServesHosts('# hosts: files sss\nhosts: files dns # sss later\n'), false);
    assert.equal(sssServesHosts('hosts: files sssd\n'), false, 'a word, not a substring');
    assert.equal(sssServesHosts(''), false);
  });
});

describe('unix guard events', () => {
  it('decodes a refusal (kind 16, family 1) with the path id, and an audit (kind 17)', () => {
    const b = Buffer.alloc(EVENT.size);
    b.writeBigUInt64LE(123n, EVENT.fields.time_ns.offset);
    b.writeUInt32LE(42, EVENT.fields.proc.offset + 4); // tgid
    b.write('getent', EVENT.fields.proc.offset + 24);
    b.writeUInt8(UNIX_GUARD_LAYOUT.CGF_EV_UNIX_REFUSED, EVENT.fields.kind.offset);
    b.writeUInt8(UNIX_GUARD_LAYOUT.CGF_FAMILY_UNIX, EVENT.fields.family.offset);
    b.writeUInt32LE(3, EVENT.fields.daddr.offset);
    const e = decodeEvent(b);
    assert.equal(e?.kind, 'unix_refused');
    assert.equal(e?.unixPathId, 3);
    assert.equal(e?.tgid, 42);
    assert.equal(e?.comm, 'getent');
    b.writeUInt8(UNIX_GUARD_LAYOUT.CGF_EV_UNIX_AUDIT, EVENT.fields.kind.offset);
    assert.equal(decodeEvent(b)?.kind, 'unix_audit');
    b.writeUInt8(4, EVENT.fields.family.offset); // a unix kind with an IP family: not one of ours
    assert.equal(decodeEvent(b), undefined);
  });
});
