// A DNS proxy worker process of a ProxyPool (node:cluster worker; the agent
// is the primary). Runs a DnsProxy on UDP only, on the socket the primary
// shares with every worker (the kernel hands each datagram to one of them),
// with the policy and mode the primary sends. It reads the kernel's
// attribution map itself (opened by pin path) and /proc in the tick a query
// arrives, and sends its events (batched per tick), '!resolve' addresses
// learned on demand and its counters to the primary, which owns the journal,
// the block log and the kernel maps.
import { DnsAttributionReader } from '@cgfence/bpf';
import pino from 'pino';
import type { DnsPolicyEvent, DnsQueryNotice } from './dns-events';
import { DnsProxy } from './dns-proxy';
import { fromWirePolicy, type FromWorker, type ToWorker, type WorkerConfig } from './proxy-pool-protocol';

function send(m: FromWorker): void {
  if (!process.connected) return;
  try {
    process.send?.(m);
  } catch {
    // channel closing: the primary is going away
  }
}

async function run(config: WorkerConfig): Promise<void> {
  const logger = pino({ level: config.logLevel, base: { ...config.logBase, proxyWorker: process.pid } });
  let reader: DnsAttributionReader | undefined;
  const openAttribution = (pinDir: string): void => {
    reader?.close();
    reader = undefined;
    try {
      reader = DnsAttributionReader.open(pinDir);
    } catch (err) {
      logger.warn({ err: (err as Error).message }, 'dns proxy worker: attribution map not available; events carry no process');
    }
  };
  if (config.attributionPinDir !== undefined) openAttribution(config.attributionPinDir);

  const proxy = new DnsProxy({
    upstream: config.upstream,
    port: config.port,
    listenAddresses: config.listenAddresses,
    mode: config.mode,
    policy: config.policy ? fromWirePolicy(config.policy) : undefined,
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    maxInFlight: config.maxInFlight,
    resolveTtl: config.resolveTtl,
    attribution: { lookup: (port, id) => reader?.lookup(port, id) },
    // Learned on demand here; the policy's own names are kept fresh by the primary.
    addressBlocker: { learn: (addrs, ttlSeconds, entry) => send({ type: 'learn', addrs, ttlSeconds, entry }) },
    pinResolveNames: false,
    tcp: false,
    sharedUdp: true,
    logger,
  });

  const batch: DnsPolicyEvent[] = [];
  proxy.onEvent((e) => {
    if (batch.length === 0) setImmediate(() => send({ type: 'events', events: batch.splice(0) }));
    batch.push(e);
  });

  // Query notices the kernel attributed to a process (the others name no run), batched likewise, when asked for.
  let reportQueries = config.reportQueries;
  const notices: DnsQueryNotice[] = [];
  proxy.onQuery((n) => {
    if (!reportQueries || n.process === undefined) return;
    if (notices.length === 0) setImmediate(() => send({ type: 'queries', notices: notices.splice(0) }));
    notices.push(n);
  });

  let stopping = false;
  const stop = (code: number): void => {
    if (stopping) return;
    stopping = true;
    if (batch.length > 0) send({ type: 'events', events: batch.splice(0) });
    void proxy.close().finally(() => {
      reader?.close();
      process.exit(code);
    });
  };
  process.on('disconnect', () => stop(0));
  process.on('SIGTERM', () => stop(0));

  process.on('message', (m: ToWorker) => {
    switch (m.type) {
      case 'policy':
        proxy.setPolicy(fromWirePolicy(m.policy));
        send({ type: 'policy-applied', seq: m.seq });
        return;
      case 'mode':
        proxy.setMode(m.mode);
        return;
      case 'attribution':
        openAttribution(m.pinDir);
        return;
      case 'queries':
        reportQueries = m.report;
        return;
      case 'stats':
        send({ type: 'stats', id: m.id, stats: proxy.stats() });
        return;
      case 'stop':
        stop(0);
        return;
      case 'init':
        return;
    }
  });

  // Unasked, every second: what the agent's synchronous views (fleet reports) sum up.
  setInterval(() => send({ type: 'stats', id: 0, stats: proxy.stats() }), 1000).unref();

  try {
    const { port } = await proxy.start();
    send({ type: 'policy-applied', seq: config.policySeq });
    send({ type: 'ready', port });
  } catch (err) {
    send({ type: 'failed', message: (err as Error).message, code: (err as NodeJS.ErrnoException).code });
    process.exit(1);
  }
}

let initialized = false;
process.once('message', (m: ToWorker) => {
  initialized = true;
  if (m.type !== 'init') {
    process.stderr.write(`dns proxy worker: expected init, got ${m.type}\n`);
    process.exit(1);
  }
  run(m.config).catch((err: unknown) => {
    process.stderr.write(`dns proxy worker failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
});
process.on('disconnect', () => {
  if (!initialized) process.exit(0);
});
