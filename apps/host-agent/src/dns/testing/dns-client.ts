// A stub-resolver-like client for tests: one query over UDP or TCP, with a deadline.
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { TcpFrameReader, tcpFrame } from '../dns-wire';

export interface Exchange {
  readonly answer: dnsPacket.DecodedPacket & { rcode?: string };
  readonly raw: Buffer;
  /** The client's source port, as the kernel's attribution map would key it. */
  readonly clientPort: number;
}

export function makeQuery(name: string, type: string, opts: { id?: number; edns?: boolean } = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: opts.id ?? Math.floor(Math.random() * 65536),
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: (type === 'HTTPS' ? 'UNKNOWN_65' : type) as dnsPacket.RecordType, name, class: 'IN' }],
    additionals: opts.edns
      ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }]
      : [],
  });
}

export function udpQuery(host: string, port: number, query: Buffer, timeoutMs = 5000): Promise<Exchange> {
  const socket = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
  return new Promise<Exchange>((resolve, reject) => {
    const timer = setTimeout(() => finish(new Error(`no UDP answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    const finish = (err: Error | undefined, exchange?: Exchange): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(exchange as Exchange);
    };
    socket.on('error', (err) => finish(err));
    socket.on('message', (raw) => {
      if (raw.length < 2 || raw.readUInt16BE(0) !== query.readUInt16BE(0)) return;
      finish(undefined, { answer: dnsPacket.decode(raw), raw, clientPort: socket.address().port });
    });
    socket.bind(0, () => socket.send(query, port, host));
  });
}

export function tcpQuery(host: string, port: number, query: Buffer, timeoutMs = 5000): Promise<Exchange> {
  return new Promise<Exchange>((resolve, reject) => {
    const sock = net.connect({ host, port });
    const reader = new TcpFrameReader();
    const timer = setTimeout(() => finish(new Error(`no TCP answer from ${host}:${port} within ${timeoutMs} ms`)), timeoutMs);
    let done = false;
    const finish = (err: Error | undefined, exchange?: Exchange): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(exchange as Exchange);
    };
    sock.on('connect', () => sock.write(tcpFrame(query)));
    sock.on('error', (err) => finish(err));
    sock.on('close', () => finish(new Error('connection closed before an answer')));
    sock.on('data', (chunk: Buffer) => {
      for (const raw of reader.push(chunk)) {
        finish(undefined, { answer: dnsPacket.decode(raw), raw: Buffer.from(raw), clientPort: sock.localPort ?? 0 });
      }
    });
  });
}

/** The data of each answer record (OPT has none), for comparing answers in tests. */
export function answerData(packet: dnsPacket.Packet): unknown[] {
  return (packet.answers ?? []).map((a) => (a.type === 'OPT' ? undefined : a.data));
}
