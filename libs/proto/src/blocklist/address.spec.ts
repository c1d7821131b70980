import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCidr } from './address';

function canonical(text: string): string {
  const result = parseCidr(text);
  assert.ok(result.ok, `${text} should parse, got ${result.ok ? '' : result.reason}`);
  return result.value;
}

function refused(text: string): string {
  const result = parseCidr(text);
  assert.ok(!result.ok, `${text} should be refused, got ${result.ok ? result.value : ''}`);
  return result.reason;
}

describe(parseCidr.name, () => {
  const sut = parseCidr;

  describe('IPv4', () => {
    it('turns a bare address into a /32', () => {
      assert.equal(canonical('192.0.2.7'), '192.0.2.7/32');
    });

    it('clears host bits silently, keeping the prefix', () => {
      assert.equal(canonical('10.1.2.3/8'), '10.0.0.0/8');
      assert.equal(canonical('192.168.1.77/27'), '192.168.1.64/27');
      assert.equal(canonical('255.255.255.255/31'), '255.255.255.254/31');
      assert.equal(canonical('203.0.113.9/0'), '0.0.0.0/0');
      assert.equal(canonical('10.0.0.0/8'), '10.0.0.0/8');
    });

    it('gives the network address as bytes for the kernel', () => {
      const result = sut('172.16.99.1/12');
      assert.ok(result.ok);
      assert.equal(result.family, 4);
      assert.equal(result.prefix, 12);
      assert.deepEqual([...result.address], [172, 16, 0, 0]);
    });

    it('refuses out-of-range octets, naming the octet', () => {
      assert.match(refused('10.0.0.256'), /octet "256" is out of range/);
      assert.match(refused('1000.0.0.1'), /octet "1000" is out of range/);
    });

    it('refuses leading garbage and non-decimal octets', () => {
      assert.match(refused('x10.0.0.0/8'), /octet "x10" is not a decimal number/);
      assert.match(refused('0x7f.0.0.1'), /octet "0x7f" is not a decimal number/);
      assert.match(refused('1.2.3.-4'), /octet "-4" is not a decimal number/);
    });

    it('refuses octets with a leading zero, which inet_aton reads as octal', () => {
      assert.match(refused('010.0.0.1'), /octet "010" has a leading zero/);
    });

    it('refuses the wrong number of octets and empty octets', () => {
      assert.match(refused('1.2.3'), /needs 4 octets, has 3/);
      assert.match(refused('1.2.3.4.5'), /needs 4 octets, has 5/);
      assert.match(refused('1..3.4'), /empty octet/);
    });

    it('refuses bad prefixes, saying what is wrong', () => {
      assert.match(refused('10.0.0.0/33'), /prefix \/33 is out of range for IPv4 \(0-32\)/);
      assert.match(refused('10.0.0.0/x'), /prefix "\/x" is not a number/);
      assert.match(refused('10.0.0.0/'), /missing prefix length/);
      assert.match(refused('10.0.0.0/08'), /leading zero/);
      assert.match(refused('10.0.0.0/8/9'), /prefix "\/8\/9" is not a number/);
      assert.match(refused('/8'), /missing address/);
    });
  });

  describe('IPv6', () => {
    it('writes addresses as RFC 5952 section 4 says', () => {
      const cases: [string, string][] = [
        ['2001:DB8::1', '2001:db8::1/128'],
        ['2001:0db8::0001', '2001:db8::1/128'],
        ['2001:db8:0:0:0:0:2:1', '2001:db8::2:1/128'],
        ['2001:db8::0:1', '2001:db8::1/128'],
        // a single zero group is not compressed
        ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1/128'],
        // the longest run is compressed
        ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1/128'],
        // on a tie, the first run is compressed
        ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1/128'],
        ['0:0:0:0:0:0:0:0', '::/128'],
        ['0:0:0:0:0:0:0:1', '::1/128'],
        ['1:0:0:0:0:0:0:0', '1::/128'],
        ['FE80:0000:0000:0000:0202:B3FF:FE1E:8329', 'fe80::202:b3ff:fe1e:8329/128'],
      ];
      for (const [input, expected] of cases) assert.equal(canonical(input), expected, input);
    });

    it('clears host bits silently, inside a group too', () => {
      assert.equal(canonical('2001:db8:abcd:12::1/32'), '2001:db8::/32');
      assert.equal(canonical('2001:db8:ffff::/33'), '2001:db8:8000::/33');
      assert.equal(canonical('2001:db8::ff/127'), '2001:db8::fe/127');
      assert.equal(canonical('fe80::1/0'), '::/0');
    });

    it('keeps IPv4-mapped addresses as IPv6, in the mixed notation of RFC 5952 section 5', () => {
      assert.equal(canonical('::ffff:192.0.2.1'), '::ffff:192.0.2.1/128');
      assert.equal(canonical('::FFFF:c000:0201'), '::ffff:192.0.2.1/128');
      assert.equal(canonical('::ffff:192.0.2.1/96'), '::ffff:0.0.0.0/96');
      const result = sut('::ffff:192.0.2.1');
      assert.ok(result.ok);
      assert.equal(result.family, 6);
    });

    it('accepts an embedded IPv4 address in the last 32 bits of other addresses', () => {
      assert.equal(canonical('64:ff9b::192.0.2.33'), '64:ff9b::c000:221/128');
    });

    it('gives the network address as 16 bytes', () => {
      const result = sut('2001:db8::1/64');
      assert.ok(result.ok);
      assert.deepEqual([...result.address], [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
      assert.equal(result.prefix, 64);
    });

    it('refuses malformed addresses, saying why', () => {
      assert.match(refused('1::2::3'), /"::" may appear only once/);
      assert.match(refused('1:::2'), /":::" is not valid/);
      assert.match(refused('1:2:3:4:5:6:7'), /needs 8 groups without "::", has 7/);
      assert.match(refused('1:2:3:4:5:6:7:8:9'), /needs 8 groups without "::", has 9/);
      assert.match(refused('1:2:3:4::5:6:7:8'), /too many groups/);
      assert.match(refused('12345::1'), /group "12345" has more than 4 hex digits/);
      assert.match(refused('2001:db8::g'), /group "g" is not hexadecimal/);
      assert.match(refused(':1:2:3:4:5:6:7'), /empty group/);
      assert.match(refused('1.2.3.4::'), /embedded IPv4 address may only be the last part/);
      assert.match(refused('::ffff:1.2.3.256'), /octet "256" is out of range/);
      assert.match(refused('fe80::1%eth0'), /zone index "%eth0" is not allowed/);
    });

    it('refuses bad prefixes', () => {
      assert.match(refused('2001:db8::/129'), /prefix \/129 is out of range for IPv6 \(0-128\)/);
      assert.match(refused('2001:db8::/x'), /prefix "\/x" is not a number/);
    });
  });

  it('sort keys order ranges numerically by address, then by prefix', () => {
    const inOrder = ['9.0.0.0/8', '10.0.0.0/8', '10.0.0.0/16', '10.0.0.1/32', '100.0.0.0/8'];
    const keys = inOrder.map((text) => {
      const result = sut(text);
      assert.ok(result.ok);
      return result.sortKey;
    });
    assert.deepEqual([...keys].sort(), keys);
    const v6 = ['::/0', '::1/128', '2001:db8::/32', '2001:db8::/48', 'fe80::/10'].map((text) => {
      const result = sut(text);
      assert.ok(result.ok);
      return result.sortKey;
    });
    assert.deepEqual([...v6].sort(), v6);
  });
});
