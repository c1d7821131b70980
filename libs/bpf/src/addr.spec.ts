import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AddressError, formatIp, parseCidr, parseDottedCidrCode, parseIp, parseIPv6, toMapped16 } from './addr';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

describe(parseCidr.name, () => {
  it('parses IPv4 and IPv6 CIDRs into network-order bytes and a prefix length', () => {
    const v4 = parseCidr('10.0.0.0/8');
    assert.equal(v4.family, 4);
    assert.equal(hex(v4.bytes), '0a000000');
    assert.equal(v4.prefixLength, 8);
    const v6 = parseCidr('2001:db8::/32');
    assert.equal(v6.family, 6);
    assert.equal(hex(v6.bytes), '20010db8000000000000000000000000');
    assert.equal(v6.prefixLength, 32);
  });

  it('treats a bare address as a single host', () => {
    assert.equal(parseCidr('127.0.0.2').prefixLength, 32);
    assert.equal(parseCidr('::1').prefixLength, 128);
  });

  it('clears host bits beyond the prefix', () => {
    assert.equal(hex(parseCidr('10.1.2.3/8').bytes), '0a000000');
    assert.equal(hex(parseCidr('192.168.255.255/20').bytes), 'c0a8f000');
    assert.equal(hex(parseCidr('2001:db8:ffff::1/33').bytes), '20010db8800000000000000000000000');
  });

  it('rejects bad prefixes and non-addresses, naming the input', () => {
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8x', 'example.com', '10.0.0', 'fe80::1%eth0']) {
      assert.throws(() => parseCidr(bad), (e: unknown) => e instanceof AddressError && e.message.includes(bad), bad);
    }
  });
});

describe(parseIPv6.name, () => {
  it('expands ::, embedded IPv4 and full forms', () => {
    assert.equal(hex(parseIPv6('::')), '0'.repeat(32));
    assert.equal(hex(parseIPv6('::1')), `${'0'.repeat(30)}01`);
    assert.equal(hex(parseIPv6('1::')), `0001${'0'.repeat(28)}`);
    assert.equal(hex(parseIPv6('::ffff:127.0.0.53')), '00000000000000000000ffff7f000035');
    assert.equal(hex(parseIPv6('64:ff9b::192.0.2.1')), '0064ff9b0000000000000000c0000201');
    assert.equal(hex(parseIPv6('1:2:3:4:5:6:7:8')), '00010002000300040005000600070008');
    assert.equal(hex(parseIPv6('1:2:3:4:5:6:1.2.3.4')), '00010002000300040005000601020304');
  });
});

describe(formatIp.name, () => {
  it('formats IPv4 as a dotted quad', () => {
    assert.equal(formatIp(4, Uint8Array.from([127, 0, 0, 2, 9, 9])), '127.0.0.2');
  });

  it('formats IPv6 in the RFC 5952 short form', () => {
    const cases: [string, string][] = [
      ['::1', '::1'],
      ['::', '::'],
      ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
      ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
      ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
      ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
      ['fe80::', 'fe80::'],
    ];
    for (const [input, want] of cases) assert.equal(formatIp(6, parseIPv6(input)), want, input);
  });

  it('round-trips through parseIp', () => {
    for (const a of ['10.20.30.40', '2001:db8::53', '::ffff:127.0.0.53', 'ff02::1:3']) {
      const p = parseIp(a);
      assert.equal(formatIp(p.family, p.bytes), a);
    }
  });
});

describe(toMapped16.name, () => {
  it('maps IPv4 to ::ffff:a.b.c.d and keeps IPv6 as is', () => {
    assert.equal(hex(toMapped16(4, Uint8Array.from([192, 0, 2, 1]))), '00000000000000000000ffffc0000201');
    assert.equal(hex(toMapped16(6, parseIPv6('2001:db8::1'))), '20010db8000000000000000000000001');
  });
});

describe(parseDottedCidrCode.name, () => {
  it('agrees with the general grammar on every form it takes', () => {
    for (const t of ['0.0.0.0/0', '10.1.2.3/8', '255.255.255.255', '192.168.1.77/31', '1.2.3.4/32', '100.64.0.0/10']) {
      const code = parseDottedCidrCode(t);
      const c = parseCidr(t);
      assert.ok(code >= 0, t);
      assert.equal(code % 64, c.prefixLength, t);
      assert.equal(Math.floor(code / 64), Buffer.from(c.bytes).readUInt32BE(0), t);
    }
  });

  it('leaves everything else to the general grammar', () => {
    for (const t of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.256', '1.2.3.4/', '1.2.3.4/33', '1.2.3.4/08', ' 1.2.3.4', '::1', '1.2.3.4/3a']) {
      assert.equal(parseDottedCidrCode(t), -1, JSON.stringify(t));
    }
  });
});
