import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { HEADER_BYTES } from './dns-wire';
import { makeQuery } from './testing/dns-client';
import { UdpUpstreamPool, UpstreamError, type UpstreamWaiter } from './upstream';

/** An upstream on loopback that answers only when told to (echoes the query as a response). */
class HeldUpstream {
  readonly socket = dgram.createSocket('udp4');
  readonly held: Array<{ msg: Buffer; port: number }> = [];

  async start(): Promise<number> {
    this.socket.on('message', (msg, rinfo) => this.held.push({ msg, port: rinfo.port }));
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    return this.socket.address().port;
  }

  answerAll(): void {
    for (const { msg, port } of this.held.splice(0)) {
      const answer = Buffer.from(msg);
      answer[2] |= 0x80; // QR
      this.socket.send(answer, port, '127.0.0.1');
    }
  }
}

class Recorder implements UpstreamWaiter {
  answer: Buffer | undefined;
  err: UpstreamError | undefined;
  at = 0;
  calls = 0;
  constructor(private readonly started = performance.now()) {}
  settle(answer: Buffer | undefined, err: UpstreamError | undefined): void {
    this.calls++;
    this.answer = answer;
    this.err = err;
    this.at = performance.now() - this.started;
  }
}

const questionEnd = (q: Buffer): number => {
  let pos = HEADER_BYTES;
  while (q[pos] !== 0) pos += 1 + q[pos];
  return pos + 5;
};

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('UdpUpstreamPool', () => {
  const upstream = new HeldUpstream();
  let pool: UdpUpstreamPool;
  let strays = 0;

  before(async () => {
    const port = await upstream.start();
    pool = new UdpUpstreamPool({ host: '127.0.0.1', port, family: 4 }, { sockets: 2, maxPerSocket: 64, recvBufferSize: 1 << 20, onStray: () => void strays++ });
    await pool.start();
  });

  after(() => {
    pool.close();
    upstream.socket.close();
  });

  it("answers with the client's id, puts the id back in the caller's buffer, and counts an answer after the deadline as stray", async () => {
    const q = makeQuery('a.example', 'A', { id: 4242 });
    const w = new Recorder();
    pool.send(q, questionEnd(q), 1000, w);
    await until(() => upstream.held.length === 1);
    assert.notEqual(upstream.held[0].msg.readUInt16BE(0), 4242, 'the wire id is the pool\'s own');
    upstream.answerAll();
    await until(() => w.calls > 0);
    assert.equal(w.calls, 1);
    assert.equal(w.answer?.readUInt16BE(0), 4242);
    assert.equal(q.readUInt16BE(0), 4242, "the caller's buffer has its id back");

    const late = makeQuery('late.example', 'A', { id: 7 });
    const lw = new Recorder();
    pool.send(late, questionEnd(late), 40, lw);
    await until(() => lw.calls > 0);
    assert.equal(lw.err?.code, 'UPSTREAM_TIMEOUT');
    assert.equal(late.readUInt16BE(0), 7);
    const before = strays;
    upstream.answerAll();
    await until(() => strays > before);
    assert.equal(lw.calls, 1, 'settled once');
  });

  it('expires a short timeout on time while long ones are pending, and stops its timer once nothing is pending', async () => {
    const idle = timers();
    const long = Array.from({ length: 20 }, (_, i) => ({ q: makeQuery(`long${i}.example`, 'A'), w: new Recorder() }));
    for (const { q, w } of long) pool.send(q, questionEnd(q), 10_000, w);
    const short = makeQuery('short.example', 'A');
    const sw = new Recorder();
    pool.send(short, questionEnd(short), 60, sw);
    await until(() => sw.calls > 0);
    assert.equal(sw.err?.code, 'UPSTREAM_TIMEOUT');
    assert.ok(sw.at >= 59 && sw.at < 60 + 200, `expired after ${sw.at.toFixed(0)} ms`);
    assert.ok(long.every(({ w }) => w.calls === 0), 'the long ones are still waiting');
    await until(() => upstream.held.length >= 21);
    upstream.answerAll();
    await until(() => long.every(({ w }) => w.calls === 1));
    assert.equal(pool.inFlight, 0);
    await until(() => timers() <= idle, 1000);
  });

  it('fails every pending query once when closed', async () => {
    const p2 = new UdpUpstreamPool({ host: '127.0.0.1', port: upstream.socket.address().port, family: 4 }, { sockets: 1, maxPerSocket: 8, recvBufferSize: 1 << 16 });
    await p2.start();
    const ws = Array.from({ length: 3 }, () => new Recorder());
    for (const [i, w] of ws.entries()) {
      const q = makeQuery(`c${i}.example`, 'A');
      p2.send(q, questionEnd(q), 5000, w);
    }
    p2.close();
    assert.deepEqual(
      ws.map((w) => [w.calls, w.err?.code]),
      ws.map(() => [1, 'UPSTREAM_CLOSED']),
    );
    upstream.held.splice(0);
  });
});
