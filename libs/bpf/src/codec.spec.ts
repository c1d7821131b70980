import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  DataPlaneConfig,
  decodeConfig,
  decodeEvent,
  encodeAddrKey,
  encodeConfig,
  encodeDnsKey,
  encodeLpmKey,
  encodePolicyKeys,
  sumPerCpu,
  validateConfig,
} from './codec';
import { parseCidr } from './addr';

const base: DataPlaneConfig = { proxyPort: 5353, mode: 'enforce', failMode: 'open', heartbeatTimeoutMs: 1500 };

describe(encodeConfig.name, () => {
  it('round-trips every field, with the timeout in nanoseconds', () => {
    const cfg: DataPlaneConfig = { proxyPort: 40053, mode: 'audit', failMode: 'closed', heartbeatTimeoutMs: 750 };
    const b = encodeConfig(cfg, 123_456_789_012n);

    assert.deepEqual(decodeConfig(b), { ...cfg, proxySocketCheck: true, heartbeatNs: 123_456_789_012n });
    assert.equal(b.readBigUInt64LE(16), 750_000_000n, 'heartbeat_timeout_ns');
    assert.equal(b.readUInt16LE(0), 40053, 'proxy_port in host order');
  });

  it('checks the proxy socket unless told not to', () => {
    assert.equal(encodeConfig(base, 1n).readUInt8(4), 1, 'liveness = CGF_LIVE_SOCKET by default');
    assert.equal(encodeConfig({ ...base, proxySocketCheck: false }, 1n).readUInt8(4), 0);
    assert.equal(decodeConfig(encodeConfig({ ...base, proxySocketCheck: false }, 1n)).proxySocketCheck, false);
  });
});

describe(validateConfig.name, () => {
  it('accepts a sane config', () => {
    assert.doesNotThrow(() => validateConfig(base));
    assert.doesNotThrow(() => validateConfig({ ...base, heartbeatTimeoutMs: 0 }));
  });

  it('names the bad field', () => {
    assert.throws(() => validateConfig({ ...base, proxyPort: 0 }), /proxyPort/);
    assert.throws(() => validateConfig({ ...base, proxyPort: 70000 }), /proxyPort/);
    assert.throws(() => validateConfig({ ...base, proxyPort: 53 }), /proxyPort must not be 53/);
    assert.throws(() => validateConfig({ ...base, mode: 'block' as never }), /config\.mode/);
    assert.throws(() => validateConfig({ ...base, failMode: 'maybe' as never }), /config\.failMode/);
    assert.throws(() => validateConfig({ ...base, heartbeatTimeoutMs: -1 }), /heartbeatTimeoutMs/);
  });
});

describe(decodeEvent.name, () => {
  function rawEvent(over: { kind?: number; family?: number; protocol?: number; daddr?: number[] } = {}): Buffer {
    const b = Buffer.alloc(72);
    b.writeBigUInt64LE(987_654_321n, 0); // time_ns
    b.writeUInt32LE(4242, 8); // proc.pid
    b.writeUInt32LE(4241, 12); // proc.tgid
    b.writeUInt32LE(1000, 16); // proc.uid
    b.writeBigUInt64LE(77n, 24); // proc.cgroup_id
    b.write('curl\0garbage', 32, 'latin1'); // proc.comm
    b.writeUInt8(over.kind ?? 1, 48);
    b.writeUInt8(over.family ?? 4, 49);
    b.writeUInt8(over.protocol ?? 6, 50);
    b.writeUInt8(3, 51); // hook
    b.writeUInt16LE(443, 52);
    Buffer.from(over.daddr ?? [127, 0, 0, 2]).copy(b, 56);
    return b;
  }

  it('decodes a block event', () => {
    assert.deepEqual(decodeEvent(rawEvent()), {
      pid: 4242,
      tgid: 4241,
      uid: 1000,
      comm: 'curl',
      cgroupId: 77n,
      kind: 'ip_block',
      family: 4,
      protocol: 'tcp',
      daddr: '127.0.0.2',
      dport: 443,
      timeNs: 987_654_321n,
    });
  });

  it('decodes kinds, IPv6 addresses and protocols', () => {
    const v6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x35];
    const e = decodeEvent(rawEvent({ kind: 2, family: 6, protocol: 17, daddr: v6 }))!;
    assert.equal(e.kind, 'ip_audit');
    assert.equal(e.family, 6);
    assert.equal(e.daddr, '2001:db8::35');
    assert.equal(e.protocol, 'udp');
    assert.equal(decodeEvent(rawEvent({ kind: 3 }))!.kind, 'proxy_down');
    assert.equal(decodeEvent(rawEvent({ protocol: 1 }))!.protocol, 'other');
  });

  it('ignores records it does not understand', () => {
    assert.equal(decodeEvent(rawEvent({ kind: 99 })), undefined);
    assert.equal(decodeEvent(rawEvent({ family: 2 })), undefined);
    assert.equal(decodeEvent(Buffer.alloc(10)), undefined);
  });
});

describe(encodeDnsKey.name, () => {
  it('stores port and id in host order', () => {
    assert.equal(encodeDnsKey(0x1234, 0xabcd).toString('hex'), '3412cdab');
  });

  it('rejects values outside 16 bits', () => {
    assert.throws(() => encodeDnsKey(65536, 1), /clientPort/);
    assert.throws(() => encodeDnsKey(1, -1), /dnsId/);
  });
});

describe(encodeLpmKey.name, () => {
  it('writes prefixlen then the address bytes', () => {
    assert.equal(encodeLpmKey(parseCidr('10.0.0.0/8'), Buffer.alloc(8)).toString('hex'), '080000000a000000');
    assert.equal(
      encodeLpmKey(parseCidr('2001:db8::/32'), Buffer.alloc(20)).toString('hex'),
      '2000000020010db8000000000000000000000000',
    );
  });

  it('clears what a previous key left in the reused buffer', () => {
    const buf = Buffer.alloc(8, 0xff);
    assert.equal(encodeLpmKey(parseCidr('1.2.3.4/32'), buf).toString('hex'), '2000000001020304');
  });
});

describe(encodeAddrKey.name, () => {
  it('uses the v4-mapped form for IPv4', () => {
    assert.equal(encodeAddrKey(4, Uint8Array.from([127, 0, 0, 3])).toString('hex'), '00000000000000000000ffff7f000003');
  });
});

describe(encodePolicyKeys.name, () => {
  const keysOf = (family: 4 | 6, list: string[]) => {
    const { keys, count } = encodePolicyKeys(family, list);
    const size = family === 4 ? 8 : 20;
    return Array.from({ length: count }, (_, i) => keys.subarray(i * size, (i + 1) * size).toString('hex'));
  };

  it('writes the same keys as encodeLpmKey, back to back, on the fast and the general path', () => {
    const list = ['10.0.0.0/8', '192.168.255.255/20', '127.0.0.2', '0.0.0.0/0', ' 172.16.0.1/12 '];
    const expected = list.map((t) => encodeLpmKey(parseCidr(t.trim()), Buffer.alloc(8)).toString('hex'));
    assert.deepEqual(keysOf(4, list), expected);
    assert.deepEqual(keysOf(6, ['2001:db8::/32', '::1']), ['2001:db8::/32', '::1'].map((t) => encodeLpmKey(parseCidr(t), Buffer.alloc(20)).toString('hex')));
  });

  it('writes a canonical all-dotted list (the fast path) in list order, as encodeLpmKey does', () => {
    const list = ['192.0.2.7/32', '10.0.0.0/8', '0.0.0.0/0', '198.51.100.0/24', '255.255.255.255', '10.128.0.0/9'];
    const expected = list.map((t) => encodeLpmKey(parseCidr(t), Buffer.alloc(8)).toString('hex'));
    assert.deepEqual(keysOf(4, list), expected);
    assert.deepEqual(keysOf(4, []), []);
  });

  it('drops duplicates, including ones that differ only in host bits or spelling', () => {
    assert.equal(keysOf(4, ['10.0.0.0/8', '10.1.2.3/8', ' 10.0.0.0/8 ', '127.0.0.2/32', '127.0.0.2']).length, 2);
    assert.equal(keysOf(6, ['2001:db8::/32', '2001:DB8:0::1/32']).length, 1);
  });

  it('refuses bad text and a CIDR of the other family, naming the entry', () => {
    assert.throws(() => encodePolicyKeys(4, ['10.0.0.256/32']), /10\.0\.0\.256/);
    assert.throws(() => encodePolicyKeys(4, ['10.0.0.0/33']), /10\.0\.0\.0\/33/);
    assert.throws(() => encodePolicyKeys(4, ['010.0.0.1']), /010\.0\.0\.1/);
    assert.throws(() => encodePolicyKeys(4, ['2001:db8::/32']), /2001:db8::\/32.*IPv6/);
    assert.throws(() => encodePolicyKeys(6, ['10.0.0.0/8']), /10\.0\.0\.0\/8.*IPv4/);
  });
});

describe(sumPerCpu.name, () => {
  it('adds one __u64 per CPU', () => {
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(5n, 0);
    b.writeBigUInt64LE(7n, 8);
    b.writeBigUInt64LE(2n ** 40n, 16);
    assert.equal(sumPerCpu(b, 3), 12n + 2n ** 40n);
  });
});
