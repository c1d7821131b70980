// A process that is both the proxy's upstream and its client, for the test
// that holds the proxy's event loop (forward-core.int.spec.ts): nothing it does
// may depend on the test process's loop. Forked with IPC:
//   -> { upstreamPort }            once its upstream socket listens
//   <- { go: { port, seconds } }   asks, for `seconds`: a cached name every 50 ms,
//                                  and 3,000 new names at once
//   -> StallReport                 when the time is up
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface StallReport {
  /** Answers to the cached name: when (Date.now()) and rcode. */
  readonly cached: Array<{ at: number; rcode: string }>;
  /** Answers to new names: when and rcode. */
  readonly fresh: Array<{ at: number; rcode: string }>;
  /** Queries the upstream got for new names, and when. */
  readonly upstreamFreshAt: number[];
  readonly freshSent: number;
}

type Decoded = dnsPacket.Packet & { rcode?: string };

const UPSTREAM_ANSWER = '192.0.2.1';
const FRESH = 3000;

function main(): void {
  const upstream = dgram.createSocket('udp4');
  const upstreamFreshAt: number[] = [];
  upstream.on('message', (m, rinfo) => {
    let q: Decoded;
    try {
      q = dnsPacket.decode(m) as Decoded;
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    if (question.name.startsWith('n')) upstreamFreshAt.push(Date.now());
    const answer = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: [question],
      answers: question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 60, data: UPSTREAM_ANSWER }] : [],
    });
    upstream.send(answer, rinfo.port, rinfo.address);
  });
  upstream.bind(0, '127.0.0.1', () => process.send?.({ upstreamPort: upstream.address().port }));

  process.on('message', (m: { go?: { port: number; seconds: number } }) => {
    if (!m.go) return;
    const { port, seconds } = m.go;
    const client = dgram.createSocket('udp4');
    const cached: StallReport['cached'] = [];
    const fresh: StallReport['fresh'] = [];
    client.on('message', (msg) => {
      const a = dnsPacket.decode(msg) as Decoded;
      const entry = { at: Date.now(), rcode: a.rcode ?? '?' };
      if (a.questions?.[0]?.name === 'cached.allowed.test') cached.push(entry);
      else fresh.push(entry);
    });
    client.bind(0, '127.0.0.1', () => {
      // In rounds of 100, so this socket reads the answers in between (its receive buffer holds a few hundred).
      const burst = (from: number): void => {
        for (let i = from; i < Math.min(FRESH, from + 100); i++) client.send(query(`n${i}.fresh.test`, i), port, '127.0.0.1');
        if (from + 100 < FRESH) setImmediate(() => burst(from + 100));
      };
      burst(0);
      let id = 0;
      const ask = setInterval(() => client.send(query('cached.allowed.test', 40000 + id++), port, '127.0.0.1'), 50);
      setTimeout(() => {
        clearInterval(ask);
        const report: StallReport = { cached, fresh, upstreamFreshAt, freshSent: FRESH };
        process.send?.(report, () => process.exit(0));
      }, seconds * 1000);
    });
  });
  process.on('disconnect', () => process.exit(0));
}

function query(name: string, id: number): Buffer {
  return dnsPacket.encode({ type: 'query', id: id & 0xffff, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name, class: 'IN' }] });
}

if (require.main === module) main();
