import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_TCP_CLIENT_CAPS, TcpClients, type TcpClientCounters } from './tcp-clients';
import { tcpFrame } from './dns-wire';

const ANSWER_BYTES = 60_000;

/** A real loopback server whose TcpClients answer every frame at once with an `answerBytes` message (default 60 KB). */
async function serve(caps: Partial<typeof DEFAULT_TCP_CLIENT_CAPS>, answerBytes = ANSWER_BYTES): Promise<{ sut: TcpClients; counters: TcpClientCounters; server: net.Server; port: number; handled: () => number }> {
  const counters: TcpClientCounters = { tcpSlowReadersClosed: 0, tcpOversizedFrames: 0, tcpPaused: 0 };
  let handled = 0;
  const answer = Buffer.alloc(answerBytes, 0x61);
  const sut = new TcpClients({ ...DEFAULT_TCP_CLIENT_CAPS, ...caps }, async (frame) => {
    handled++;
    const a = Buffer.from(answer);
    frame.copy(a, 0, 0, 2);
    return a;
  }, counters);
  const server = net.createServer((s) => sut.accept(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { sut, counters, server, port: (server.address() as net.AddressInfo).port, handled: () => handled };
}

function query(id: number): Buffer {
  const q = Buffer.alloc(17);
  q.writeUInt16BE(id, 0);
  q.writeUInt16BE(1, 4);
  return tcpFrame(q);
}

describe(TcpClients.name, () => {
  let s: Awaited<ReturnType<typeof serve>>;
  before(async () => {
    s = await serve({ slowReaderTimeoutMs: 500 });
  });
  after(async () => {
    s.sut.closeAll();
    await new Promise((r) => s.server.close(r));
  });

  it('closes clients that never read their answers, and never holds more than the caps of unread answers', { timeout: 60_000 }, async () => {
    const clients = await Promise.all(
      Array.from({ length: 8 }, () =>
        new Promise<net.Socket>((resolve) => {
          const c = net.connect({ host: '127.0.0.1', port: s.port }, () => resolve(c));
          c.pause(); // never reads
          c.on('error', () => undefined);
        }),
      ),
    );
    let peakUnread = 0;
    const watch = setInterval(() => (peakUnread = Math.max(peakUnread, s.sut.unreadBytes)), 5);
    // Each asks for ~600 MB of answers it will never read.
    for (const c of clients) for (let i = 0; i < 10_000; i += 100) c.write(Buffer.concat(Array.from({ length: 100 }, (_, k) => query(i + k))));
    // (A paused client does not see the close itself: watch the server side.)
    const deadline = Date.now() + 30_000;
    while (s.counters.tcpSlowReadersClosed < 8 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    clearInterval(watch);
    for (const c of clients) c.destroy();
    assert.equal(s.counters.tcpSlowReadersClosed, 8);
    assert.ok(peakUnread <= DEFAULT_TCP_CLIENT_CAPS.maxUnreadBytes * 8 + ANSWER_BYTES * 8, `peak unread ${peakUnread}`);
    assert.ok(s.handled() < 8 * 10_000, 'it stopped reading their queries long before answering them all');
    assert.equal(s.sut.size, 0);
    assert.equal(s.sut.unreadBytes, 0);
  });

  it('answers every query of a client that pipelines thousands and reads, in turns that leave room for another client', { timeout: 60_000 }, async () => {
    // Its own server, with the default slow-reader timeout and small answers: the test reads in the same (busy) process.
    const small = 600;
    const own = await serve({}, small);
    after(async () => {
      own.sut.closeAll();
      await new Promise((r) => own.server.close(r));
    });
    const answersOf = (c: net.Socket, want: number): Promise<number> =>
      new Promise((resolve) => {
        let bytes = 0;
        c.on('data', (d: Buffer) => {
          bytes += d.length;
          if (bytes >= want * (small + 2)) resolve(bytes / (small + 2));
        });
      });
    const busy = net.connect({ host: '127.0.0.1', port: own.port });
    const busyDone = answersOf(busy, 2000);
    busy.write(Buffer.concat(Array.from({ length: 2000 }, (_, i) => query(i))));
    const other = net.connect({ host: '127.0.0.1', port: own.port });
    const otherDone = answersOf(other, 1);
    other.write(query(1));
    const order: string[] = [];
    await Promise.all([otherDone.then(() => order.push('other')), busyDone.then(() => order.push('busy'))]);
    busy.destroy();
    other.destroy();
    assert.deepEqual(order, ['other', 'busy'], 'the single query was not stuck behind the 2000 pipelined ones');
  });

  it('answers at most maxInFlightPerConnection queries of one connection at once, and all of them in the end', { timeout: 60_000 }, async () => {
    // A handler that takes 5 ms per query (an upstream) and records how many run at once, per connection.
    let now = 0;
    let peak = 0;
    const counters: TcpClientCounters = { tcpSlowReadersClosed: 0, tcpOversizedFrames: 0, tcpPaused: 0 };
    const sut = new TcpClients(DEFAULT_TCP_CLIENT_CAPS, async (frame) => {
      peak = Math.max(peak, ++now);
      await new Promise((r) => setTimeout(r, 5));
      now--;
      return Buffer.from(frame);
    }, counters);
    const server = net.createServer((c) => sut.accept(c));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const c = net.connect({ host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
      let bytes = 0;
      const done = new Promise<void>((resolve) => c.on('data', (d: Buffer) => (bytes += d.length) >= 200 * 19 && resolve()));
      c.write(Buffer.concat(Array.from({ length: 200 }, (_, i) => query(i))));
      await done;
      c.destroy();
      assert.equal(bytes, 200 * 19, 'every pipelined query answered');
      assert.equal(peak, DEFAULT_TCP_CLIENT_CAPS.maxInFlightPerConnection, `at most ${DEFAULT_TCP_CLIENT_CAPS.maxInFlightPerConnection} at once (saw ${peak})`);
    } finally {
      sut.closeAll();
      await new Promise((r) => server.close(r));
    }
  });
});
