// Busy, careless and hostile DNS clients for the tests and the benchmark:
// the four situations of issue 12 (expensive messages, a pipelined TCP
// burst, a TCP client that never reads, plus a plain UDP flood), and a probe
// that keeps asking a listed and an allowed name and records what it got.
//
// In process: import the functions. As a process (so the end-to-end tests
// can start it unprivileged inside a run):
//   node flood-client.js MODE HOST PORT SECONDS [NAME] [QPS]
// MODE: udp-flood | expensive-udp | expensive-tcp | tcp-burst | tcp-noread | probe
// prints one JSON line (FloodReport or ProbeReport) on stdout at the end.
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import dnsPacket from 'dns-packet';
import { QUERY_CAPS } from '../dns-query';
import { tcpFrame } from '../dns-wire';

export type FloodMode = 'udp-flood' | 'expensive-udp' | 'expensive-tcp' | 'tcp-burst' | 'tcp-noread';

export interface FloodReport {
  readonly mode: FloodMode;
  readonly sent: number;
  readonly answers: number;
  /** TCP connections the server closed on us. */
  readonly closedByServer: number;
}

export interface ProbeReport {
  /** Queries for the listed name answered NXDOMAIN (enforcement on). */
  readonly listedNxdomain: number;
  /** Queries for the listed name answered with records, or anything but NXDOMAIN/SERVFAIL/REFUSED: enforcement lapsed. */
  readonly listedLapsed: number;
  /** Queries for the listed name with no answer within the deadline. */
  readonly listedNoAnswer: number;
  /** Allowed queries answered with records. */
  readonly allowedAnswered: number;
  /** Allowed queries answered SERVFAIL or REFUSED (shed). */
  readonly allowedShed: number;
  readonly allowedNoAnswer: number;
  /** Latencies of the allowed queries that got an answer, in ms. */
  readonly latenciesMs: number[];
}

function query(name: string, id: number, type: dnsPacket.RecordType = 'A'): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });
}

/**
 * A message the old decoder spent milliseconds on: 4 KiB (the cap) of
 * compression pointers, each to the one before, and a question count of
 * 65535, so every question is a long chain. The bounded decoder refuses the
 * first pointer.
 */
export function expensiveMessage(id: number, bytes: number = QUERY_CAPS.maxMessageBytes): Buffer {
  const b = Buffer.alloc(bytes);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(0x0100, 2);
  b.writeUInt16BE(0xffff, 4);
  b[12] = 1;
  b[13] = 0x61;
  b[14] = 0;
  for (let p = 15; p + 1 < bytes; p += 2) b.writeUInt16BE(0xc000 | (p === 15 ? 12 : p - 2), p);
  return b;
}

function rcode(msg: Buffer): number {
  return msg.length >= 4 ? msg[3] & 0x0f : -1;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Floods `host:port` in `mode` for `seconds`; `name` is the name asked (a
 * listed one, a big answer...). UDP modes send `qps` datagrams a second, or
 * as fast as they can when `qps` is 0.
 */
export async function flood(mode: FloodMode, host: string, port: number, seconds: number, name = 'flood.test', qps = 0): Promise<FloodReport> {
  const until = performance.now() + seconds * 1000;
  let sent = 0;
  let answers = 0;
  let closedByServer = 0;
  const family = net.isIPv6(host) ? 'udp6' : 'udp4';

  if (mode === 'udp-flood' || mode === 'expensive-udp') {
    const sockets = Array.from({ length: 8 }, () => dgram.createSocket({ type: family, sendBufferSize: 1 << 20 }));
    for (const s of sockets) {
      s.on('message', () => void answers++);
      s.on('error', () => undefined);
    }
    const plain = Array.from({ length: 256 }, (_, i) => query(`h${i}.${name}`, i));
    const heavy = expensiveMessage(7);
    const start = performance.now();
    while (performance.now() < until) {
      for (let i = 0; i < 64; i++) {
        const s = sockets[sent % sockets.length];
        s.send(mode === 'udp-flood' ? plain[sent % plain.length] : heavy, port, host);
        sent++;
      }
      // Paced: wait until the schedule catches up with what was sent.
      const ahead = qps > 0 ? (sent / qps) * 1000 - (performance.now() - start) : 0;
      if (ahead > 1) await sleep(ahead);
      else await new Promise((r) => setImmediate(r));
    }
    await sleep(200);
    for (const s of sockets) s.close();
    return { mode, sent, answers, closedByServer };
  }

  // TCP: connections that write as fast as the server lets them.
  const conns = mode === 'tcp-noread' ? 16 : 4;
  const frames =
    mode === 'expensive-tcp'
      ? [tcpFrame(expensiveMessage(9))]
      : Array.from({ length: 512 }, (_, i) => tcpFrame(query(mode === 'tcp-noread' ? name : `p${i}.${name}`, i, mode === 'tcp-noread' ? 'TXT' : 'A')));
  const batch = Buffer.concat(Array.from({ length: 64 }, (_, i) => frames[i % frames.length]));
  const perBatch = 64;
  await Promise.all(
    Array.from({ length: conns }, async () => {
      while (performance.now() < until) {
        await new Promise<void>((resolve) => {
          const sock = net.connect({ host, port });
          let ended = false;
          const end = (): void => {
            if (ended) return;
            ended = true;
            clearTimeout(timer);
            sock.destroy();
            resolve();
          };
          const timer = setTimeout(end, Math.max(0, until - performance.now()));
          sock.on('error', end);
          sock.on('close', () => {
            if (!ended) closedByServer++;
            end();
          });
          if (mode === 'tcp-noread') sock.pause();
          else sock.on('data', (d: Buffer) => void (answers += d.length > 0 ? 1 : 0));
          const pump = (): void => {
            while (!ended && performance.now() < until) {
              sent += perBatch;
              if (!sock.write(batch)) {
                sock.once('drain', pump);
                return;
              }
            }
          };
          sock.on('connect', pump);
        });
      }
    }),
  );
  return { mode, sent, answers, closedByServer };
}

/**
 * Asks `listed` and `allowed` alternately over UDP every `intervalMs` for
 * `seconds`, each with its own socket and a deadline (1 s unless given), and counts what
 * came back.
 */
export async function probe(host: string, port: number, seconds: number, listed: string, allowed: string, intervalMs = 50, deadlineMs = 1000): Promise<ProbeReport> {
  const report = { listedNxdomain: 0, listedLapsed: 0, listedNoAnswer: 0, allowedAnswered: 0, allowedShed: 0, allowedNoAnswer: 0, latenciesMs: [] as number[] };
  const until = performance.now() + seconds * 1000;
  const asks: Promise<void>[] = [];
  for (let i = 0; performance.now() < until; i++) {
    const isListed = i % 2 === 0;
    asks.push(
      ask(host, port, query(isListed ? listed : allowed, i & 0xffff), deadlineMs).then((r) => {
        if (isListed) {
          if (r === undefined) report.listedNoAnswer++;
          else if (rcode(r.msg) === 3) report.listedNxdomain++;
          else report.listedLapsed++;
        } else if (r === undefined) report.allowedNoAnswer++;
        else if (rcode(r.msg) === 0) {
          report.allowedAnswered++;
          report.latenciesMs.push(r.ms);
        } else report.allowedShed++;
      }),
    );
    await sleep(intervalMs);
  }
  await Promise.all(asks);
  return report;
}

function ask(host: string, port: number, q: Buffer, deadlineMs: number): Promise<{ msg: Buffer; ms: number } | undefined> {
  const s = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  const t0 = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(undefined), deadlineMs);
    const done = (v: { msg: Buffer; ms: number } | undefined): void => {
      clearTimeout(timer);
      s.close();
      resolve(v);
    };
    s.on('error', () => done(undefined));
    s.on('message', (msg) => {
      if (msg.length >= 2 && msg.readUInt16BE(0) === q.readUInt16BE(0)) done({ msg, ms: performance.now() - t0 });
    });
    s.send(q, port, host);
  });
}

async function main(argv: string[]): Promise<void> {
  const [mode, host, portText, secondsText, name, qpsText] = argv;
  const port = Number(portText);
  const seconds = Number(secondsText);
  if (!host || !Number.isInteger(port) || !(seconds > 0)) throw new Error('usage: flood-client MODE HOST PORT SECONDS [NAME]');
  if (mode === 'probe') {
    // probe HOST PORT SECONDS LISTED,ALLOWED [unused] [INTERVAL_MS] [DEADLINE_MS]
    const [listed, allowed] = (name || 'x.blocked.test,probe.test').split(',');
    const interval = Number(argv[6] ?? 50);
    // [DEADLINE_MS] (argv[7], default 1000): how long each query waits for its answer.
    const deadline = Number(argv[7] ?? 1000);
    process.stdout.write(`${JSON.stringify(await probe(host, port, seconds, listed, allowed, interval > 0 ? interval : 50, deadline > 0 ? deadline : 1000))}\n`);
    return;
  }
  const modes: FloodMode[] = ['udp-flood', 'expensive-udp', 'expensive-tcp', 'tcp-burst', 'tcp-noread'];
  if (!modes.includes(mode as FloodMode)) throw new Error(`unknown mode ${mode}; one of ${modes.join(', ')}, probe`);
  process.stdout.write(`${JSON.stringify(await flood(mode as FloodMode, host, port, seconds, name || undefined, Number(qpsText ?? 0)))}\n`);
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`flood-client: ${(err as Error).message}\n`);
    process.exit(2);
  });
}
