// Issue 19, design 2 (benchmark prototype, not the agent's path): the C
// forwarding core (apps/host-agent/native/dns-forward-core.c, built into
// dist/native/dns-forward-core.so by scripts/build.mjs), loaded through
// koffi. Its own thread (pthread) does the socket loop with recvmmsg/sendmmsg
// and forwards, with no JavaScript, queries for names Node allowed before
// (its allowed-name cache) and answers whose records are all owned by the
// question (no CNAME/DNAME, so the chain check could find nothing). Node
// gets the rest through a queue the core signals on a pipe (watched with
// koffi.node.poll): it decides with decide.ts (the proxy's own code), tells
// the core to forward (and caches the name as allowed) or replies.
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Policy } from '../../policy/policy';
import { decideQuery, newCounters, screenUpstreamAnswer, wireName, type PrototypeBlock } from './decide';
import type { PrototypeStats } from './mmsg-forwarder';

const KIND_QUERY = 1;
const KIND_ANSWER = 2;
/** What dfc_take copies out per call: 256 of the core's 1,024 queue slots of up to 4 KiB. */
const TAKE_BYTES = 256 * (40 + 4096);
/** dfc_stats's counters, in order (dns-forward-core.c ST_*). */
const CORE_STATS = ['rxQueries', 'fastForwarded', 'handedQueries', 'fastAnswers', 'handedAnswers', 'queueDrops', 'timeouts', 'strayAnswers', 'inFlightFull'] as const;

interface CoreLib {
  dfc_open(listenIp: string, listenPort: number, upIp: string, upPort: number, timeoutMs: number): bigint | null;
  dfc_port(c: bigint): number;
  dfc_notify_fd(c: bigint): number;
  dfc_allow(c: bigint, name: Buffer, n: number): number;
  dfc_clear(c: bigint): void;
  dfc_take(c: bigint, out: Buffer, cap: number): number;
  dfc_forward(c: bigint, addr: Buffer, alen: number, m: Buffer, len: number): number;
  dfc_reply(c: bigint, addr: Buffer, alen: number, m: Buffer, len: number): number;
  dfc_stats(c: bigint, out: BigUint64Array): void;
  dfc_close(c: bigint): void;
}

let lib: CoreLib | undefined;

/** The built shared object (dist/native next to dist/src). */
export function coreLibraryPath(): string {
  return join(__dirname, '..', '..', '..', 'native', 'dns-forward-core.so');
}

function load(): CoreLib {
  if (lib) return lib;
  const path = coreLibraryPath();
  if (!existsSync(path)) throw new Error(`${path} is missing: run node scripts/build.mjs (it compiles apps/host-agent/native/*.c with clang)`);
  const so = koffi.load(path);
  lib = {
    dfc_open: so.func('void *dfc_open(const char *, int, const char *, int, int)'),
    dfc_port: so.func('int dfc_port(void *)'),
    dfc_notify_fd: so.func('int dfc_notify_fd(void *)'),
    dfc_allow: so.func('int dfc_allow(void *, void *, int)'),
    dfc_clear: so.func('void dfc_clear(void *)'),
    dfc_take: so.func('int dfc_take(void *, void *, int)'),
    dfc_forward: so.func('int dfc_forward(void *, void *, int, void *, int)'),
    dfc_reply: so.func('int dfc_reply(void *, void *, int, void *, int)'),
    dfc_stats: so.func('void dfc_stats(void *, void *)'),
    dfc_close: so.func('void dfc_close(void *)'),
  } as CoreLib;
  return lib;
}

export interface ForwardCoreOptions {
  readonly listenHost: string;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  readonly policy: Policy;
  readonly timeoutMs: number;
  readonly onBlock?: (e: PrototypeBlock) => void;
}

export class ForwardCore {
  private readonly counters = { ...newCounters(), allowCacheFull: 0 };
  private readonly take = Buffer.alloc(TAKE_BYTES);
  private readonly poll: { close(): void };
  private policy: Policy;
  private closed = false;

  private constructor(
    private readonly lib: CoreLib,
    private readonly core: bigint,
    private readonly opts: ForwardCoreOptions,
  ) {
    this.policy = opts.policy;
    this.poll = koffi.node.poll(lib.dfc_notify_fd(core), { readable: true }, () => this.drain());
  }

  static open(opts: ForwardCoreOptions): ForwardCore {
    const l = load();
    const core = l.dfc_open(opts.listenHost, 0, opts.upstreamHost, opts.upstreamPort, opts.timeoutMs);
    if (core === null || core === 0n) throw new Error(`dns forwarding core: open failed (errno ${koffi.errno()})`);
    return new ForwardCore(l, core, opts);
  }

  get port(): number {
    return this.lib.dfc_port(this.core);
  }

  /** A new policy: names the core cached as allowed are forgotten. */
  setPolicy(policy: Policy): void {
    this.policy = policy;
    this.lib.dfc_clear(this.core);
  }

  /** Everything the core handed over: queries to decide, answers to check. */
  private drain(): void {
    const { lib, core, take, policy, counters } = this;
    for (;;) {
      const n = lib.dfc_take(core, take, take.length);
      if (n <= 0) return;
      let pos = 0;
      while (pos < n) {
        const kind = take.readUInt32LE(pos);
        const alen = take.readUInt32LE(pos + 4);
        const len = take.readUInt32LE(pos + 36);
        const addr = take.subarray(pos + 8, pos + 8 + alen);
        const m = take.subarray(pos + 40, pos + 40 + len);
        pos += 40 + ((len + 3) & ~3);
        if (kind === KIND_QUERY) {
          const v = decideQuery(m, policy, counters, this.opts.onBlock);
          if (v.forward) {
            const name = wireName(m);
            if (name && lib.dfc_allow(core, name, name.length) !== 0) counters.allowCacheFull++;
            lib.dfc_forward(core, addr, alen, m, len);
          } else if (v.reply) {
            lib.dfc_reply(core, addr, alen, v.reply, v.reply.length);
          }
        } else if (kind === KIND_ANSWER) {
          const out = screenUpstreamAnswer(m, policy, counters);
          lib.dfc_reply(core, addr, alen, out, out.length);
        }
      }
    }
  }

  stats(): PrototypeStats {
    const raw = new BigUint64Array(CORE_STATS.length);
    this.lib.dfc_stats(this.core, raw);
    const core = Object.fromEntries(CORE_STATS.map((k, i) => [k, Number(raw[i])]));
    return { ...this.counters, ...core };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poll.close();
    this.lib.dfc_close(this.core);
  }
}
