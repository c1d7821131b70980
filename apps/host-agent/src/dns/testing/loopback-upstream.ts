// A small authoritative-looking DNS server for tests: answers from a table
// over UDP and TCP on loopback, and can be told to stay silent, to fail, to
// truncate over UDP, or to hold every answer until a number of queries wait.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { TcpFrameReader, tcpFrame } from '../dns-wire';

export interface UpstreamRecords {
  readonly A?: readonly string[];
  readonly AAAA?: readonly string[];
  readonly TXT?: readonly string[];
  /** Answer HTTPS (type 65) with a minimal 'priority 1, target .' record. */
  readonly HTTPS?: boolean;
  readonly ttl?: number;
  /**
   * Answer with a CNAME to this name first, then follow it in the same table
   * as a recursive resolver does (at most 16 links): the target's records
   * come after the chain, owned by the target.
   */
  readonly CNAME?: string;
  /** Over UDP, answer with TC set and no records (the full answer only over TCP). */
  readonly truncateOverUdp?: boolean;
}

export type UpstreamBehaviour = 'answer' | 'silent' | 'servfail' | 'refused';

export interface UpstreamQueryLog {
  readonly name: string;
  readonly type: string;
  readonly transport: 'udp' | 'tcp';
}

type Lookup = (name: string) => UpstreamRecords | undefined;

const HTTPS_RDATA = Buffer.from([0x00, 0x01, 0x00]); // SvcPriority 1, TargetName "."

export class LoopbackUpstream {
  behaviour: UpstreamBehaviour = 'answer';
  readonly log: UpstreamQueryLog[] = [];
  private held: Array<() => void> = [];
  private holdFor = 0;
  private onRelease: (() => void) | undefined;
  private readonly tcpClients = new Set<net.Socket>();
  private closed = false;

  private constructor(
    private readonly udp: dgram.Socket,
    private readonly tcp: net.Server,
    private readonly lookup: Lookup,
    readonly host: string,
    readonly port: number,
  ) {}

  /** `port`: a fixed port (e.g. 53 on a private 127.x address, for a resolver that only speaks to port 53); default any free one. */
  static async start(lookup: Lookup, host = '127.0.0.1', port = 0): Promise<LoopbackUpstream> {
    // UDP and TCP on the same port number: the kernel picks a free UDP port,
    // and that number may be taken for TCP (another socket's local port);
    // then try again with a new UDP port.
    for (let attempt = 1; ; attempt++) {
      const udp = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => resolve());
      });
      const bound = udp.address().port;
      const tcp = net.createServer();
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(bound, host, () => resolve());
        });
      } catch (err) {
        udp.close();
        if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE' && port === 0 && attempt < 20) continue;
        throw err;
      }
      const server = new LoopbackUpstream(udp, tcp, lookup, host, bound);
      udp.on('message', (msg, rinfo) => server.onUdp(msg, rinfo));
      tcp.on('connection', (sock) => server.onTcp(sock));
      return server;
    }
  }

  /** 'HOST:PORT' as the proxy takes it. */
  get address(): string {
    return net.isIPv6(this.host) ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  /** Holds all UDP answers until `count` queries wait, then sends them all; `onRelease` runs just before. */
  holdUntil(count: number, onRelease?: () => void): void {
    this.holdFor = count;
    this.onRelease = onRelease;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.tcpClients) s.destroy();
    await Promise.all([new Promise<void>((r) => this.udp.close(() => r())), new Promise<void>((r) => this.tcp.close(() => r()))]);
  }

  private onUdp(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const reply = this.respond(msg, 'udp');
    if (!reply) return;
    const send = (): void => {
      if (!this.closed) this.udp.send(reply, rinfo.port, rinfo.address);
    };
    if (this.holdFor === 0) return send();
    this.held.push(send);
    if (this.held.length >= this.holdFor) {
      this.holdFor = 0;
      this.onRelease?.();
      const batch = this.held;
      this.held = [];
      void this.releasePaced(batch);
    }
  }

  /** Sends held answers a few hundred at a time so no socket buffer on the way overflows. */
  private async releasePaced(sends: Array<() => void>): Promise<void> {
    for (let i = 0; i < sends.length; i++) {
      sends[i]();
      if (i % 256 === 255) await new Promise((r) => setTimeout(r, 2));
    }
  }

  private onTcp(sock: net.Socket): void {
    this.tcpClients.add(sock);
    sock.on('close', () => this.tcpClients.delete(sock));
    sock.on('error', () => undefined);
    const reader = new TcpFrameReader();
    sock.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) {
        const reply = this.respond(frame, 'tcp');
        if (reply) sock.write(tcpFrame(reply));
      }
    });
  }

  private respond(msg: Buffer, transport: 'udp' | 'tcp'): Buffer | undefined {
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    const question = q.questions?.[0];
    if (!question) return undefined;
    this.log.push({ name: question.name.toLowerCase(), type: question.type, transport });
    if (this.behaviour === 'silent') return undefined;
    const base = { type: 'response' as const, id: q.id, questions: [question] };
    const rd = q.flag_rd ? dnsPacket.RECURSION_DESIRED : 0;
    if (this.behaviour === 'servfail') return dnsPacket.encode({ ...base, flags: rd | dnsPacket.RECURSION_AVAILABLE | 2 });
    if (this.behaviour === 'refused') return dnsPacket.encode({ ...base, flags: rd | 5 });
    let records = this.lookup(question.name.toLowerCase());
    const answers: dnsPacket.Answer[] = [];
    let name = question.name;
    for (let links = 0; records?.CNAME !== undefined && links < 16; links++) {
      answers.push({ type: 'CNAME', name, ttl: records.ttl ?? 300, data: records.CNAME });
      name = records.CNAME;
      records = this.lookup(name.toLowerCase());
    }
    if (!records) return dnsPacket.encode({ ...base, flags: rd | dnsPacket.RECURSION_AVAILABLE | 3, answers });
    if (records.truncateOverUdp && transport === 'udp') {
      return dnsPacket.encode({ ...base, flags: rd | dnsPacket.RECURSION_AVAILABLE | dnsPacket.TRUNCATED_RESPONSE });
    }
    const ttl = records.ttl ?? 300;
    if (question.type === 'A') for (const a of records.A ?? []) answers.push({ type: 'A', name, ttl, data: a });
    if (question.type === 'AAAA') for (const a of records.AAAA ?? []) answers.push({ type: 'AAAA', name, ttl, data: a });
    if (question.type === 'TXT') for (const t of records.TXT ?? []) answers.push({ type: 'TXT', name, ttl, data: t });
    if (question.type === ('UNKNOWN_65' as dnsPacket.RecordType) && records.HTTPS) {
      answers.push({ type: 'UNKNOWN_65' as 'NULL', name, ttl, data: HTTPS_RDATA });
    }
    return dnsPacket.encode({ ...base, flags: rd | dnsPacket.RECURSION_AVAILABLE, answers });
  }
}
