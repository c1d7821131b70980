// Helpers for the real-kernel integration tests: a throwaway cgroup and pin
// dir, clients run by python3 inside (or outside) the cgroup, and loopback
// UDP/TCP servers standing in for the DNS proxy and for real resolvers.
// Traffic stays on loopback.
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, RemoteInfo, Socket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { createServer, Server, Socket as TcpSocket } from 'node:net';
import { join } from 'node:path';
import { BPF_OBJECT_PATH, DataPlane } from '../data-plane';
import { ADDR_KEY } from '../layout';
import { libbpf, libc } from '../libbpf';
import { readAllEntries } from '../map-batch';
import { readPrefilter, SlotSet } from '../prefilter';
import { ensureBpffs, findCgroup2Root } from '../mounts';

/** Fails (never skips) when the machine cannot run the kernel tests, saying what is missing. */
export function requireKernelTestHost(): { cgroupRoot: string; bpffs: string } {
  if (process.getuid?.() !== 0) throw new Error('kernel integration tests need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)');
  if (!existsSync(BPF_OBJECT_PATH)) throw new Error(`${BPF_OBJECT_PATH} missing: run node scripts/build.mjs first`);
  const cgroupRoot = findCgroup2Root();
  const bpffs = ensureBpffs();
  return { cgroupRoot, bpffs };
}

/** Fails unless IPv6 works on lo (the v6 tests need ::1). */
export function requireIPv6Loopback(): void {
  const disabled = readFileSync('/proc/sys/net/ipv6/conf/lo/disable_ipv6', 'utf8').trim();
  if (disabled !== '0') throw new Error('IPv6 is disabled on lo (net.ipv6.conf.lo.disable_ipv6=1): the IPv6 tests cannot run');
}

/** A cgroup and a bpffs pin dir that exist only for one test suite. */
export class KernelSandbox {
  readonly cgroupPath: string;
  readonly pinDir: string;
  private readonly children = new Set<ChildProcess>();

  constructor(label: string) {
    const { cgroupRoot, bpffs } = requireKernelTestHost();
    const id = `${label}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.cgroupPath = join(cgroupRoot, `cgfence-test-${id}`);
    this.pinDir = join(bpffs, `cgfence-test-${id}`);
    mkdirSync(this.cgroupPath);
  }

  /** Runs the python client op inside the cgroup (or outside with inCgroup=false). */
  run(args: ClientArgs, inCgroup = true): Promise<ClientResult> {
    return this.spawnClient(args, inCgroup).done;
  }

  /** Starts a client without waiting for it; lines arrive on `lines`. */
  spawnClient(args: ClientArgs, inCgroup = true): RunningClient {
    const json = JSON.stringify(args);
    const child = inCgroup
      ? spawn('sh', ['-c', `echo $$ > '${this.cgroupPath}/cgroup.procs' && exec python3 -c "$0" "$1"`, CLIENT_PY, json], {
          stdio: ['pipe', 'pipe', 'pipe'],
        })
      : spawn('python3', ['-c', CLIENT_PY, json], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.children.add(child);
    return new RunningClient(child, () => this.children.delete(child));
  }

  /** PIDs currently in the cgroup. */
  procs(): number[] {
    return readFileSync(join(this.cgroupPath, 'cgroup.procs'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(Number);
  }

  /** Kills leftover clients, detaches and unpins everything, removes the cgroup. */
  async destroy(): Promise<void> {
    for (const c of this.children) c.kill('SIGKILL');
    for (const pid of this.procs()) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    const errors: unknown[] = [];
    try {
      DataPlane.teardown({ cgroupPath: this.cgroupPath, pinDir: this.pinDir });
    } catch (err) {
      errors.push(err);
      rmSync(this.pinDir, { recursive: true, force: true });
    }
    for (let i = 0; i < 50 && existsSync(this.cgroupPath); i++) {
      try {
        rmdirSync(this.cgroupPath);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EBUSY' || i === 49) errors.push(err);
        await sleep(100);
      }
    }
    if (errors.length > 0) throw new AggregateError(errors, `cleanup of ${this.cgroupPath} / ${this.pinDir} failed`);
  }
}

/** n distinct /32s from a /8 that loopback tests never touch. */
export function bulkCidrs(firstOctet: number, n: number): string[] {
  const out: string[] = [];
  for (let i = 1; i <= n; i++) out.push(`${firstOctet}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`);
  return out;
}

/** bpftool's view of the trie a pinned outer map points at: its map id. */
export function innerMapId(pinnedOuter: string): number {
  const out = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'lookup', 'pinned', pinnedOuter, 'key', '0', '0', '0', '0'], { encoding: 'utf8' })) as {
    value?: number | string[];
    inner_map_id?: number;
  };
  if (typeof out.inner_map_id === 'number') return out.inner_map_id;
  if (typeof out.value === 'number') return out.value;
  if (Array.isArray(out.value)) return Buffer.from(out.value.map((b) => Number(b))).readUInt32LE(0);
  throw new Error(`cannot read the inner map id from bpftool output ${JSON.stringify(out)}`);
}

/** `bpftool cgroup show <path>` as a list of attached program names. */
export function cgroupPrograms(cgroupPath: string): string[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroupPath], { encoding: 'utf8' }).trim();
  if (!out) return [];
  return (JSON.parse(out) as { name: string }[]).map((p) => p.name);
}

function withPinnedMap<T>(pin: string, use: (fd: number) => T): T {
  const fd = libbpf().bpf_obj_get(pin);
  if (fd < 0) throw new Error(`bpf_obj_get(${pin}) failed: ${libc().errnoName(fd)}`);
  try {
    return use(fd);
  } finally {
    libc().close(fd);
  }
}

/** The pinned cgf_prefilter4 as the kernel holds it: 1 per marked /16 slot. */
export function prefilterMarks(pinDir: string): SlotSet {
  return withPinnedMap(join(pinDir, 'maps', 'cgf_prefilter4'), (fd) => readPrefilter(fd, 'test'));
}

/** Number of marked slots in a prefilter read with prefilterMarks(). */
export function markedCount(marks: SlotSet): number {
  let n = 0;
  for (const m of marks) n += m;
  return n;
}

/** Deletes every entry of the pinned cgf_learned (another party removing learned addresses). */
export function forgetLearned(pinDir: string): number {
  return withPinnedMap(join(pinDir, 'maps', 'cgf_learned'), (fd) => {
    const { keys, count } = readAllEntries(fd, ADDR_KEY.size, 8, 65536, 'test');
    for (let i = 0; i < count; i++) libbpf().bpf_map_delete_elem(fd, keys.subarray(i * ADDR_KEY.size, (i + 1) * ADDR_KEY.size));
    return count;
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface ClientArgs {
  op: 'udp_connected' | 'udp_sendto' | 'tcp_dns' | 'connect' | 'probe_loop' | 'probe_seq' | 'udp_send_twice' | 'udp_many';
  host: string;
  port: number;
  /** probe_seq: TCP connect() to these in turn, over and over, until `stop` exists. */
  hosts?: string[];
  /** probe_seq: a file the probe rewrites with its number of whole rounds after each round. */
  progress?: string;
  payload?: string;
  /** udp_many: sendto() each (hex) in turn from one socket, `interval` seconds apart, never reading. */
  payloads?: string[];
  interval?: number;
  timeout?: number;
  stop?: string;
}

export interface ClientResult {
  pid: number;
  error?: string;
  result?: string;
  reply?: string;
  from?: [string, number];
  localPort?: number;
  tally?: Record<string, number>;
  /** udp_many: the errno name (or OK) of each sendto, in order. */
  sent?: string[];
  /** probe_seq: one letter per attempt, in order: E = EPERM, R = ECONNREFUSED, X = anything else. */
  seq?: string;
  stage?: string;
  second?: string;
}

export class RunningClient {
  readonly done: Promise<ClientResult>;
  private buffered = '';
  private waiters: ((line: string) => void)[] = [];
  private readonly lines: string[] = [];

  constructor(readonly child: ChildProcess, onExit: () => void) {
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      this.buffered += d.toString();
      let nl: number;
      while ((nl = this.buffered.indexOf('\n')) >= 0) {
        const line = this.buffered.slice(0, nl);
        this.buffered = this.buffered.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    this.done = new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => {
        onExit();
        const last = [...this.lines, this.buffered].filter((l) => l.trim()).pop();
        if (code !== 0 || !last) {
          reject(new Error(`python client exited ${code}: ${stderr.trim() || '(no stderr)'}`));
          return;
        }
        resolve(JSON.parse(last) as ClientResult);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Next line the client prints. */
  nextLine(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((r) => this.waiters.push(r));
  }

  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }
}

/** A UDP server that echoes what it gets and records who sent it. */
export class UdpEcho {
  readonly received: { msg: Buffer; from: RemoteInfo }[] = [];
  onMessage?: (msg: Buffer, from: RemoteInfo) => void;
  private constructor(readonly socket: Socket, readonly port: number) {
    socket.on('message', (msg, from) => {
      this.received.push({ msg, from });
      this.onMessage?.(msg, from);
      socket.send(msg, from.port, from.address);
    });
  }

  static async start(host: string, port = 0): Promise<UdpEcho> {
    const socket = host.includes(':') ? createSocket({ type: 'udp6', ipv6Only: true }) : createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new UdpEcho(socket, socket.address().port);
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** A TCP server speaking DNS framing (2-byte length prefix) that echoes each message. */
export class TcpDnsEcho {
  readonly received: { msg: Buffer; remotePort: number }[] = [];
  onMessage?: (msg: Buffer, remotePort: number) => void;
  private readonly sockets = new Set<TcpSocket>();
  private constructor(readonly server: Server, readonly port: number) {}

  static async start(host: string, port: number): Promise<TcpDnsEcho> {
    const server = createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port, host, ipv6Only: host.includes(':') }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const echo = new TcpDnsEcho(server, port);
    server.on('connection', (s) => {
      echo.sockets.add(s);
      s.on('close', () => echo.sockets.delete(s));
      s.on('error', () => undefined);
      let buf = Buffer.alloc(0);
      s.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
          buf = buf.subarray(2 + msg.length);
          echo.received.push({ msg, remotePort: s.remotePort! });
          echo.onMessage?.(msg, s.remotePort!);
          const len = Buffer.alloc(2);
          len.writeUInt16BE(msg.length);
          s.write(Buffer.concat([len, msg]));
        }
      });
    });
    return echo;
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

/**
 * The stand-in DNS proxy: UDP and TCP on one port, on 127.0.0.1 and ::1
 * (the data plane redirects both families to the same port).
 */
export class FakeProxy {
  private constructor(
    readonly port: number,
    readonly udp4: UdpEcho,
    readonly udp6: UdpEcho,
    readonly tcp4: TcpDnsEcho,
    readonly tcp6: TcpDnsEcho,
  ) {}

  static async start(): Promise<FakeProxy> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const udp4 = await UdpEcho.start('127.0.0.1');
      const port = udp4.port;
      const opened: { close(): Promise<void> }[] = [udp4];
      try {
        const udp6 = await UdpEcho.start('::1', port);
        opened.push(udp6);
        const tcp4 = await TcpDnsEcho.start('127.0.0.1', port);
        opened.push(tcp4);
        const tcp6 = await TcpDnsEcho.start('::1', port);
        return new FakeProxy(port, udp4, udp6, tcp4, tcp6);
      } catch {
        await Promise.all(opened.map((o) => o.close()));
      }
    }
    throw new Error('could not find a port free for UDP and TCP on 127.0.0.1 and ::1');
  }

  /** Every DNS message the proxy got, from any listener. */
  get total(): number {
    return this.udp4.received.length + this.udp6.received.length + this.tcp4.received.length + this.tcp6.received.length;
  }

  async close(): Promise<void> {
    await Promise.all([this.udp4.close(), this.udp6.close(), this.tcp4.close(), this.tcp6.close()]);
  }
}

/** A loopback address nobody else uses, for a "real resolver" on port 53. */
export function uniqueLoopback4(): string {
  const b = randomBytes(2);
  return `127.53.${b[0]! % 250}.${(b[1]! % 250) + 2}`;
}

/** A free TCP port on 127.0.0.1 with nothing listening (for ECONNREFUSED probes). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

// The client that runs inside the cgroup. One JSON argument, one JSON line out
// (probe_loop and udp_send_twice print intermediate lines too).
const CLIENT_PY = String.raw`
import errno, json, os, socket, sys
a = json.loads(sys.argv[1])
op = a['op']
fam = socket.AF_INET6 if ':' in a['host'] else socket.AF_INET
dst = (a['host'], a['port'])
out = {'pid': os.getpid()}
def name(e):
    return errno.errorcode.get(e, str(e)) if e else 'OK'
def say(o):
    sys.stdout.write(json.dumps(o) + '\n')
    sys.stdout.flush()
try:
    if op in ('udp_connected', 'udp_sendto'):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.settimeout(a.get('timeout', 2))
        payload = bytes.fromhex(a['payload'])
        if op == 'udp_connected':
            s.connect(dst)
            s.send(payload)
        else:
            s.sendto(payload, dst)
        out['localPort'] = s.getsockname()[1]
        data, frm = s.recvfrom(4096)
        out['reply'] = data.hex()
        out['from'] = [frm[0], frm[1]]
    elif op == 'tcp_dns':
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(a.get('timeout', 2))
        s.connect(dst)
        out['localPort'] = s.getsockname()[1]
        payload = bytes.fromhex(a['payload'])
        s.sendall(len(payload).to_bytes(2, 'big') + payload)
        hdr = b''
        while len(hdr) < 2:
            chunk = s.recv(2 - len(hdr))
            if not chunk:
                raise OSError(errno.ECONNRESET, 'closed')
            hdr += chunk
        n = int.from_bytes(hdr, 'big')
        data = b''
        while len(data) < n:
            chunk = s.recv(n - len(data))
            if not chunk:
                raise OSError(errno.ECONNRESET, 'closed')
            data += chunk
        out['reply'] = data.hex()
        out['from'] = list(s.getpeername()[:2])
    elif op == 'connect':
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(a.get('timeout', 2))
        out['result'] = name(s.connect_ex(dst))
    elif op == 'probe_loop':
        tally = {}
        say({'stage': 'started', 'pid': os.getpid()})
        while not os.path.exists(a['stop']):
            s = socket.socket(fam, socket.SOCK_STREAM)
            r = name(s.connect_ex(dst))
            s.close()
            tally[r] = tally.get(r, 0) + 1
        out['tally'] = tally
    elif op == 'probe_seq':
        letters = {'EPERM': 'E', 'ECONNREFUSED': 'R'}
        hosts = [(h, a['port']) for h in a['hosts']]
        seq = []
        say({'stage': 'started', 'pid': os.getpid()})
        # progress: the number of whole rounds so far, rewritten after each round
        pfd = os.open(a['progress'], os.O_WRONLY | os.O_CREAT, 0o600) if a.get('progress') else None
        i = 0
        while not os.path.exists(a['stop']):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            seq.append(letters.get(name(s.connect_ex(hosts[i % len(hosts)])), 'X'))
            s.close()
            i += 1
            if pfd is not None and i % len(hosts) == 0:
                os.pwrite(pfd, b'%-12d' % (i // len(hosts)), 0)
        # whole rounds only, so position i % len(hosts) names the host
        out['seq'] = ''.join(seq[: len(seq) - len(seq) % len(hosts)])
    elif op == 'udp_many':
        import time
        s = socket.socket(fam, socket.SOCK_DGRAM)
        sent = []
        for p in a['payloads']:
            try:
                s.sendto(bytes.fromhex(p), dst)
                sent.append('OK')
            except OSError as e:
                sent.append(name(e.errno))
            if a.get('interval'):
                time.sleep(a['interval'])
        out['sent'] = sent
    elif op == 'udp_send_twice':
        s = socket.socket(fam, socket.SOCK_DGRAM)
        s.connect(dst)
        s.send(b'one')
        say({'stage': 'connected', 'pid': os.getpid()})
        sys.stdin.readline()
        try:
            s.send(b'two')
            out['second'] = 'OK'
        except OSError as e:
            out['second'] = name(e.errno)
except socket.timeout:
    out['error'] = 'timeout'
except OSError as e:
    out['error'] = name(e.errno)
say(out)
`;
