// Every way a program asks DNS is caught: connected and unconnected UDP, TCP,
// IPv4 and IPv6, and the real resolvers (glibc, Python, Node, curl) reading
// /etc/resolv.conf. Those read the file inside a private mount namespace
// whose resolv.conf names 127.0.0.53, so even if redirection broke they would
// never reach the machine's resolver. Also: garbage sent to the proxy does not
// stop it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { createServer, Server } from 'node:http';
import { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { AgentUnderTest, Ran } from './agent-harness';

const DIG = ['dig', '+time=2', '+tries=1'];
const PYTHON = 'python3';

function rcodeOf(r: Ran): string | undefined {
  return /status: ([A-Z]+)/.exec(r.stdout)?.[1];
}

function describeRan(r: Ran): string {
  return `exit ${r.code}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`;
}

/** The last line of stdout parsed as JSON (the helper scripts print one). */
function lastJson<T>(r: Ran): T {
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new Error(`expected a JSON line on stdout\n${describeRan(r)}`);
  }
}

// Sends one hand-built A query with sendto() on an unconnected UDP socket and
// reports where the reply came from (recvfrom), its id, rcode and answer count.
const UNCONNECTED_UDP_QUERY = `
import json, socket, struct, sys
host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ':' in host else socket.AF_INET
qname = b''.join(bytes([len(label)]) + label.encode() for label in name.split('.')) + b'\\x00'
query = struct.pack('>HHHHHH', 0x4242, 0x0100, 1, 0, 0, 0) + qname + struct.pack('>HH', 1, 1)
s = socket.socket(family, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(query, (host, port))
data, source = s.recvfrom(4096)
print(json.dumps({"from": [source[0], source[1]], "id": struct.unpack('>H', data[:2])[0], "rcode": data[3] & 0xF, "answers": struct.unpack('>H', data[6:8])[0]}))
`;

const PY_GETADDRINFO = `
import json, socket, sys
try:
    addrs = sorted({ai[4][0] for ai in socket.getaddrinfo(sys.argv[1], 80, proto=socket.IPPROTO_TCP)})
    print(json.dumps({"addrs": addrs}))
except socket.gaierror as e:
    print(json.dumps({"error": "EAI_NONAME" if e.errno == socket.EAI_NONAME else str(e)}))
`;

const NODE_LOOKUP = `
require('node:dns').lookup(process.argv[1], { all: true }, (err, addrs) => {
  console.log(JSON.stringify(err ? { error: err.code } : { addrs: addrs.map((a) => a.address).sort() }));
});
`;

describe(`${AgentUnderTest.name}: DNS clients and transports`, () => {
  let sut: AgentUnderTest;
  let dir: string;
  let resolvConf: string;
  let web: Server;
  let webPort: number;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-dns-clients-'));
    resolvConf = join(dir, 'resolv.conf');
    writeFileSync(resolvConf, 'nameserver 127.0.0.53\noptions timeout:2 attempts:1\n');
    // An HTTP server on loopback that an allowed name resolves to, so curl's
    // whole path (resolve, connect, fetch) stays on this machine.
    web = createServer((_req, res) => res.end('hello from loopback\n'));
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', () => r()));
    webPort = (web.address() as AddressInfo).port;
    sut = await AgentUnderTest.start({
      policy: 'github.com\n',
      records: {
        'github.com': { A: ['192.0.2.1'], AAAA: ['2001:db8::1'] },
        'allowed.example': { A: ['192.0.2.44'] },
        'web.allowed.example': { A: ['127.0.0.1'] },
      },
    });
  });
  after(async () => {
    try {
      await sut?.stop();
    } finally {
      await new Promise<void>((r) => (web ? web.close(() => r()) : r()));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** CMD run in the agent's cgroup, in a private mount namespace whose /etc/resolv.conf says nameserver 127.0.0.53. */
  const withPrivateResolvConf = (command: string[]): Promise<Ran> =>
    sut.run(['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolvConf, ...command]);

  describe('transports', () => {
    it('blocks over connected UDP (dig default)', async () => {
      const r = await sut.run([...DIG, '@127.0.0.53', 'github.com']);
      assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
      assert.match(r.stdout, /blocked by cgfence/);
    });

    it('blocks over unconnected UDP (sendto/recvfrom), and the reply comes from the address asked: 127.0.0.53:53', async () => {
      const r = await sut.run([PYTHON, '-c', UNCONNECTED_UDP_QUERY, '127.0.0.53', '53', 'github.com']);
      const reply = lastJson<{ from: [string, number]; id: number; rcode: number; answers: number }>(r);
      assert.deepEqual(reply, { from: ['127.0.0.53', 53], id: 0x4242, rcode: 3, answers: 0 });
    });

    it('forwards an allowed name over unconnected UDP, reply again from 127.0.0.53:53', async () => {
      const r = await sut.run([PYTHON, '-c', UNCONNECTED_UDP_QUERY, '127.0.0.53', '53', 'allowed.example']);
      assert.deepEqual(lastJson(r), { from: ['127.0.0.53', 53], id: 0x4242, rcode: 0, answers: 1 });
    });

    it('blocks over unconnected UDP on IPv6, reply from [::1]:53', async () => {
      const r = await sut.run([PYTHON, '-c', UNCONNECTED_UDP_QUERY, '::1', '53', 'github.com']);
      assert.deepEqual(lastJson(r), { from: ['::1', 53], id: 0x4242, rcode: 3, answers: 0 });
    });

    it('blocks over TCP (dig +tcp)', async () => {
      const r = await sut.run([...DIG, '+tcp', '@127.0.0.53', 'github.com']);
      assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
      assert.match(r.stdout, /blocked by cgfence/);
    });

    it('blocks over IPv6 UDP (dig @::1)', async () => {
      const r = await sut.run([...DIG, '@::1', 'github.com']);
      assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
      assert.match(r.stdout, /blocked by cgfence/);
    });

    it('blocks over IPv6 TCP (dig -6 +tcp @::1)', async () => {
      const r = await sut.run([...DIG, '-6', '+tcp', '@::1', 'github.com']);
      assert.equal(rcodeOf(r), 'NXDOMAIN', describeRan(r));
      assert.match(r.stdout, /blocked by cgfence/);
    });

    it('answers allowed names over TCP and IPv6 too', async () => {
      for (const args of [['+tcp', '@127.0.0.53'], ['@::1'], ['-6', '+tcp', '@::1']]) {
        const r = await sut.run([...DIG, '+short', ...args, 'allowed.example']);
        assert.equal(r.stdout.trim(), '192.0.2.44', `${args.join(' ')}: ${describeRan(r)}`);
      }
    });

    it('recorded one event per blocked query, each attributed to its run', async () => {
      const blocked = sut.events().filter((x) => x.qname === 'github.com' && x.action === 'blocked');
      assert.equal(blocked.length, 6, `connected, unconnected v4 and v6 UDP, TCP, IPv6 UDP and TCP: ${blocked.length} events`);
      for (const e of blocked) assert.ok(e.runId, 'every block is attributed to its run');
    });
  });

  describe('real resolvers reading /etc/resolv.conf', () => {
    it('sees the private resolv.conf inside the namespace and leaves the machine\'s alone', async () => {
      const machine = readFileSync('/etc/resolv.conf', 'utf8');
      const r = await withPrivateResolvConf(['cat', '/etc/resolv.conf']);
      assert.match(r.stdout, /^nameserver 127\.0\.0\.53$/m, describeRan(r));
      assert.equal(readFileSync('/etc/resolv.conf', 'utf8'), machine);
    });

    it('glibc (getent ahosts): a blocked name is not found, an allowed one resolves', async () => {
      const blocked = await withPrivateResolvConf(['getent', 'ahosts', 'github.com']);
      assert.equal(blocked.code, 2, `getent: key not found\n${describeRan(blocked)}`);
      const allowed = await withPrivateResolvConf(['getent', 'ahosts', 'allowed.example']);
      assert.equal(allowed.code, 0, describeRan(allowed));
      assert.match(allowed.stdout, /^192\.0\.2\.44\s/m);
      await sut.waitForEvent('a block event from getent', (x) => x.qname === 'github.com' && x.comm === 'getent');
    });

    it('Python socket.getaddrinfo: EAI_NONAME for a blocked name, the address for an allowed one', async () => {
      const blocked = await withPrivateResolvConf([PYTHON, '-c', PY_GETADDRINFO, 'github.com']);
      assert.deepEqual(lastJson(blocked), { error: 'EAI_NONAME' });
      const allowed = await withPrivateResolvConf([PYTHON, '-c', PY_GETADDRINFO, 'allowed.example']);
      assert.deepEqual(lastJson(allowed), { addrs: ['192.0.2.44'] });
    });

    it('Node dns.lookup: ENOTFOUND for a blocked name, the address for an allowed one', async () => {
      const blocked = await withPrivateResolvConf([process.execPath, '-e', NODE_LOOKUP, 'github.com']);
      assert.deepEqual(lastJson(blocked), { error: 'ENOTFOUND' });
      const allowed = await withPrivateResolvConf([process.execPath, '-e', NODE_LOOKUP, 'allowed.example']);
      assert.deepEqual(lastJson(allowed), { addrs: ['192.0.2.44'] });
    });

    it('curl: exit 6 "Could not resolve host" for a blocked name; an allowed name fetches the page', async () => {
      const blocked = await withPrivateResolvConf(['curl', '-sS', '--max-time', '3', 'http://github.com/']);
      assert.equal(blocked.code, 6, describeRan(blocked));
      assert.match(blocked.stderr, /Could not resolve host: github\.com/);
      const allowed = await withPrivateResolvConf(['curl', '-sS', '--max-time', '3', `http://web.allowed.example:${webPort}/`]);
      assert.equal(allowed.code, 0, describeRan(allowed));
      assert.equal(allowed.stdout, 'hello from loopback\n');
    });
  });

  describe('malformed packets', () => {
    interface Status {
      proxy: { port: number };
      counters: Record<string, string>;
    }
    const status = async (): Promise<Status> => {
      const r = await sut.cli(['agent', 'status', '--json']);
      assert.equal(r.code, 0, describeRan(r));
      return JSON.parse(r.stdout) as Status;
    };

    it('drops garbage sent straight to the proxy, counts it, and keeps answering', async () => {
      const before = await status();
      const malformedBefore = Number(before.counters['dns_malformed']);
      assert.ok(Number.isFinite(malformedBefore), `status has a dns_malformed counter: ${JSON.stringify(before.counters)}`);
      const port = before.proxy.port;
      const query = dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'allowed.example' }] });
      const garbage = [
        Buffer.from('hello'), // shorter than a header
        Buffer.from([0x00]),
        query.subarray(0, 12 + 5), // header promising a question, then a cut name
        Buffer.concat([query.subarray(0, 2), Buffer.from([0x81, 0x80]), query.subarray(4)]), // a response, not a query
        Buffer.alloc(512, 0xff),
      ];
      const sock = dgram.createSocket('udp4');
      try {
        await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
        const replies: Buffer[] = [];
        sock.on('message', (m) => replies.push(m));
        for (const g of garbage) await new Promise<void>((r, j) => sock.send(g, port, '127.0.0.1', (err) => (err ? j(err) : r())));
        await new Promise<void>((r, j) => sock.send(query, port, '127.0.0.1', (err) => (err ? j(err) : r())));
        const deadline = Date.now() + 3000;
        while (!replies.some((m) => m.readUInt16BE(0) === 7) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        const answer = replies.find((m) => m.readUInt16BE(0) === 7);
        assert.ok(answer, 'a normal query after the garbage still gets an answer');
        const decoded = dnsPacket.decode(answer);
        assert.equal(answer.readUInt8(3) & 0x0f, 0, 'rcode NOERROR');
        assert.deepEqual(decoded.answers?.map((a) => (a.type === 'A' ? a.data : a.type)), ['192.0.2.44']);
        assert.equal(replies.length, 1, 'garbage gets no reply');
      } finally {
        sock.close();
      }

      const r = await sut.run([...DIG, '@127.0.0.53', 'github.com']);
      assert.equal(rcodeOf(r), 'NXDOMAIN', `enforcement still works\n${describeRan(r)}`);
      const after = await status();
      // Each packet is undecodable or not a question (512 × 0xff has QR set).
      assert.equal(Number(after.counters['dns_malformed']), malformedBefore + garbage.length, 'dns_malformed counts each dropped packet');
    });
  });
});
