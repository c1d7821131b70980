// Issue 19, design 1 (benchmark prototype, not the agent's path): a UDP
// forwarder on a worker thread of its own that receives and sends a batch of
// datagrams per system call (recvmmsg/sendmmsg through koffi, sockets made
// with libc, readiness from libuv through koffi.node.poll), with JavaScript
// deciding on a batch at a time (decide.ts: the proxy's decoder, matcher,
// local answers and answer chain check).
//
// Memory: one native arena (koffi.alloc), fixed at start: BATCH receive
// buffers per socket (4 KiB for queries, 64 KiB for answers), BATCH scratch buffers for local answers, the mmsghdr
// and iovec arrays, and the client address of each of the 65,536 upstream
// ids: about 7 MiB, touched only as used. Queries in flight: at most one per upstream id (65,536); a query
// whose upstream never answers frees its id after the timeout (counted).
import koffi from 'koffi';
import { parentPort, workerData } from 'node:worker_threads';
import { parseBlocklistText, contentHash } from '@cgfence/proto';
import { createPolicy } from '../../policy/policy';
import { decideQuery, newCounters, screenUpstreamAnswer } from './decide';
import { libcMmsg, SOCK, sockaddr } from './libc-mmsg';

export interface MmsgWorkerData {
  readonly listenHost: string;
  readonly upstreamHost: string;
  readonly upstreamPort: number;
  readonly blocklistText: string;
  readonly timeoutMs: number;
}

/** Datagrams per recvmmsg/sendmmsg call. */
export const BATCH = 64;
/** Largest query read (QUERY_CAPS.maxMessageBytes; a longer one is truncated by the kernel and dropped). */
const MAX_MSG = 4096;
/** Largest upstream answer read: a UDP datagram's limit (EDNS allows answers up to 64 KiB). */
const MAX_ANSWER = 65536;
const ADDR_STRIDE = 32;
const IDS = 65536;

const data = workerData as MmsgWorkerData;
const port = parentPort;
if (!port) throw new Error('mmsg-worker runs in a worker thread');

const parsed = parseBlocklistText(data.blocklistText);
if (parsed.errors.length > 0) throw new Error(`blocklist rejected: ${JSON.stringify(parsed.errors.slice(0, 3))}`);
const policy = createPolicy(parsed.entries, { version: 'bench', hash: contentHash(parsed.entries) });
const counters = { ...newCounters(), timeouts: 0, stray: 0, sendErrors: 0 };
const libc = libcMmsg();

// ------------------------------------------------------------ the arena
let off = 0;
const region = (bytes: number): number => {
  const at = off;
  off += bytes;
  return at;
};
const Q_BUF = region(BATCH * MAX_MSG);
const Q_ADDR = region(BATCH * ADDR_STRIDE);
const Q_IOV = region(BATCH * SOCK.IOVEC_BYTES);
const Q_MSG = region(BATCH * SOCK.MMSGHDR_BYTES);
const A_BUF = region(BATCH * MAX_ANSWER);
const A_IOV = region(BATCH * SOCK.IOVEC_BYTES);
const A_MSG = region(BATCH * SOCK.MMSGHDR_BYTES);
const U_IOV = region(BATCH * SOCK.IOVEC_BYTES);
const U_MSG = region(BATCH * SOCK.MMSGHDR_BYTES);
const C_IOV = region(BATCH * SOCK.IOVEC_BYTES);
const C_MSG = region(BATCH * SOCK.MMSGHDR_BYTES);
const SCRATCH = region(BATCH * MAX_MSG); // local answers: a question plus an OPT, far under 4 KiB
const SLOT_ADDR = region(IDS * ADDR_STRIDE);
const ARENA_BYTES = off;

const basePtr = koffi.alloc('uint8_t', ARENA_BYTES) as bigint;
const base = Number(basePtr); // < 2^53: written as two 32-bit halves, no BigInt per pointer
const arena = Buffer.from(koffi.view(basePtr, ARENA_BYTES));
// The headers and address slots start zeroed (msg_control, msg_flags, padding); the data buffers need not.
arena.fill(0, Q_ADDR, A_BUF);
arena.fill(0, A_IOV, SCRATCH);
const dv = new DataView(arena.buffer, arena.byteOffset, arena.byteLength);
const ptr = (bigOffset: number): bigint => basePtr + BigInt(bigOffset);
const setPtr = (at: number, offset: number): void => {
  const a = base + offset;
  dv.setUint32(at, a % 0x1_0000_0000, true);
  dv.setUint32(at + 4, Math.floor(a / 0x1_0000_0000), true);
};
const setIov = (iov: number, buf: number, len: number): void => {
  setPtr(iov, buf);
  dv.setUint32(iov + 8, len, true);
  dv.setUint32(iov + 12, 0, true);
};
for (let i = 0; i < BATCH; i++) {
  const q = Q_MSG + i * SOCK.MMSGHDR_BYTES;
  setIov(Q_IOV + i * SOCK.IOVEC_BYTES, Q_BUF + i * MAX_MSG, MAX_MSG);
  setPtr(q + SOCK.MSG_NAME, Q_ADDR + i * ADDR_STRIDE);
  setPtr(q + SOCK.MSG_IOV, Q_IOV + i * SOCK.IOVEC_BYTES);
  dv.setUint32(q + SOCK.MSG_IOVLEN, 1, true);
  const a = A_MSG + i * SOCK.MMSGHDR_BYTES;
  setIov(A_IOV + i * SOCK.IOVEC_BYTES, A_BUF + i * MAX_ANSWER, MAX_ANSWER);
  setPtr(a + SOCK.MSG_IOV, A_IOV + i * SOCK.IOVEC_BYTES);
  dv.setUint32(a + SOCK.MSG_IOVLEN, 1, true);
  const u = U_MSG + i * SOCK.MMSGHDR_BYTES;
  setPtr(u + SOCK.MSG_IOV, U_IOV + i * SOCK.IOVEC_BYTES);
  dv.setUint32(u + SOCK.MSG_IOVLEN, 1, true);
  const c = C_MSG + i * SOCK.MMSGHDR_BYTES;
  setPtr(c + SOCK.MSG_IOV, C_IOV + i * SOCK.IOVEC_BYTES);
  dv.setUint32(c + SOCK.MSG_IOVLEN, 1, true);
}
const Q_MSG_PTR = ptr(Q_MSG);
const A_MSG_PTR = ptr(A_MSG);
const U_MSG_PTR = ptr(U_MSG);
const C_MSG_PTR = ptr(C_MSG);

// ------------------------------------------------------------ sockets
function check(what: string, r: number): number {
  if (r < 0) throw new Error(`${what} failed (errno ${koffi.errno()})`);
  return r;
}
const listen = sockaddr(data.listenHost, 0);
const up = sockaddr(data.upstreamHost, data.upstreamPort);
const type = SOCK.SOCK_DGRAM | SOCK.SOCK_NONBLOCK | SOCK.SOCK_CLOEXEC;
const cfd = check('socket', libc.socket(listen.family, type, 0));
const ufd = check('socket', libc.socket(up.family, type, 0));
const rcvbuf = Buffer.alloc(4);
rcvbuf.writeInt32LE(4 << 20);
check('setsockopt', libc.setsockopt(cfd, SOCK.SOL_SOCKET, SOCK.SO_RCVBUF, rcvbuf, 4));
check('setsockopt', libc.setsockopt(ufd, SOCK.SOL_SOCKET, SOCK.SO_RCVBUF, rcvbuf, 4));
check('bind', libc.bind(cfd, listen.addr, listen.len));
check('connect', libc.connect(ufd, up.addr, up.len));
const nameLen = [SOCK.SOCKADDR_BYTES];
const bound = Buffer.alloc(SOCK.SOCKADDR_BYTES);
check('getsockname', libc.getsockname(cfd, bound, nameLen));

// ------------------------------------------------------------ in flight
const used = new Uint8Array(IDS);
const clientId = new Uint16Array(IDS);
const slotAddrLen = new Uint8Array(IDS);
const sentAt = new Float64Array(IDS);
const qhash = new Uint32Array(IDS);
const asked: (string | undefined)[] = new Array<string | undefined>(IDS).fill(undefined);
let nextId = 0;
let now = performance.now();

/** FNV-1a over the question (name, type, class) as sent: an answer must carry the same. */
function questionHash(m: Buffer): number {
  let pos = 12;
  while (pos < m.length) {
    const l = m[pos];
    if (l === 0) break;
    if ((l & 0xc0) !== 0) return 0;
    pos += 1 + l;
  }
  const end = pos + 5;
  if (end > m.length) return 0;
  let h = 0x811c9dc5;
  for (let j = 12; j < end; j++) h = Math.imul(h ^ m[j], 0x01000193);
  return h >>> 0;
}

function admit(): number {
  for (let tries = 0; tries < IDS; tries++) {
    const id = nextId;
    nextId = (nextId + 1) & 0xffff;
    if (used[id] === 0) return id;
  }
  return -1;
}

function flush(fd: number, msgs: bigint, n: number): void {
  let sent = 0;
  while (sent < n) {
    const r = libc.sendmmsg(fd, msgs + BigInt(sent * SOCK.MMSGHDR_BYTES), n - sent, 0);
    if (r <= 0) {
      counters.sendErrors += n - sent; // EAGAIN/ENOBUFS: the rest is lost, as a datagram may be
      return;
    }
    sent += r;
  }
}

/** Queues a reply to a client: scratch copy of `reply`, to the address at addrOffset. */
function queueReply(c: number, scratch: number, reply: Buffer, addrOffset: number, addrLen: number): void {
  const at = SCRATCH + scratch * MAX_MSG;
  const len = Math.min(reply.length, MAX_MSG);
  reply.copy(arena, at, 0, len);
  const m = C_MSG + c * SOCK.MMSGHDR_BYTES;
  setPtr(m + SOCK.MSG_NAME, addrOffset);
  dv.setUint32(m + SOCK.MSG_NAMELEN, addrLen, true);
  setIov(C_IOV + c * SOCK.IOVEC_BYTES, at, len);
}

function onQueries(): void {
  for (;;) {
    for (let i = 0; i < BATCH; i++) dv.setUint32(Q_MSG + i * SOCK.MMSGHDR_BYTES + SOCK.MSG_NAMELEN, SOCK.SOCKADDR_BYTES, true);
    const n = libc.recvmmsg(cfd, Q_MSG_PTR, BATCH, SOCK.MSG_DONTWAIT, null);
    if (n <= 0) return;
    now = performance.now();
    let u = 0;
    let c = 0;
    for (let i = 0; i < n; i++) {
      const hdr = Q_MSG + i * SOCK.MMSGHDR_BYTES;
      const len = dv.getUint32(hdr + SOCK.MSG_LEN, true);
      if ((dv.getInt32(hdr + SOCK.MSG_FLAGS, true) & SOCK.MSG_TRUNC) !== 0) continue;
      const at = Q_BUF + i * MAX_MSG;
      const q = arena.subarray(at, at + len);
      const addrLen = dv.getUint32(hdr + SOCK.MSG_NAMELEN, true);
      const v = decideQuery(q, policy, counters);
      if (v.forward) {
        const id = admit();
        if (id < 0) continue;
        used[id] = 1;
        arena.copy(arena, SLOT_ADDR + id * ADDR_STRIDE, Q_ADDR + i * ADDR_STRIDE, Q_ADDR + i * ADDR_STRIDE + addrLen);
        slotAddrLen[id] = addrLen;
        clientId[id] = q.readUInt16BE(0);
        sentAt[id] = now;
        asked[id] = v.qname;
        q.writeUInt16BE(id, 0);
        qhash[id] = questionHash(q);
        setIov(U_IOV + u * SOCK.IOVEC_BYTES, at, len);
        u++;
      } else if (v.reply) {
        queueReply(c, c, v.reply, Q_ADDR + i * ADDR_STRIDE, addrLen);
        c++;
      }
    }
    flush(ufd, U_MSG_PTR, u);
    flush(cfd, C_MSG_PTR, c);
    if (n < BATCH) return;
  }
}

function onAnswers(): void {
  for (;;) {
    const n = libc.recvmmsg(ufd, A_MSG_PTR, BATCH, SOCK.MSG_DONTWAIT, null);
    if (n <= 0) return;
    let c = 0;
    for (let i = 0; i < n; i++) {
      const hdr = A_MSG + i * SOCK.MMSGHDR_BYTES;
      const len = dv.getUint32(hdr + SOCK.MSG_LEN, true);
      const at = A_BUF + i * MAX_ANSWER;
      const a = arena.subarray(at, at + len);
      if (len < 12 || (dv.getInt32(hdr + SOCK.MSG_FLAGS, true) & SOCK.MSG_TRUNC) !== 0) {
        counters.stray++;
        continue;
      }
      const id = a.readUInt16BE(0);
      if (used[id] === 0 || questionHash(a) !== qhash[id]) {
        counters.stray++;
        continue;
      }
      used[id] = 0;
      a.writeUInt16BE(clientId[id], 0);
      const out = screenUpstreamAnswer(a, policy, counters, asked[id]);
      asked[id] = undefined;
      const m = C_MSG + c * SOCK.MMSGHDR_BYTES;
      if (out === a) {
        setPtr(m + SOCK.MSG_NAME, SLOT_ADDR + id * ADDR_STRIDE);
        dv.setUint32(m + SOCK.MSG_NAMELEN, slotAddrLen[id], true);
        setIov(C_IOV + c * SOCK.IOVEC_BYTES, at, len);
      } else {
        queueReply(c, c, out, SLOT_ADDR + id * ADDR_STRIDE, slotAddrLen[id]);
      }
      c++;
    }
    flush(cfd, C_MSG_PTR, c);
    if (n < BATCH) return;
  }
}

const onClient = koffi.node.poll(cfd, { readable: true }, () => onQueries());
const onUpstream = koffi.node.poll(ufd, { readable: true }, () => onAnswers());
const sweep = setInterval(() => {
  const t = performance.now() - data.timeoutMs;
  for (let id = 0; id < IDS; id++) {
    if (used[id] === 1 && sentAt[id] < t) {
      used[id] = 0;
      asked[id] = undefined;
      counters.timeouts++;
    }
  }
}, 500);

port.on('message', (m: { type: string }) => {
  if (m.type === 'stats') port.postMessage({ type: 'stats', counters: { ...counters } });
  if (m.type === 'close') {
    clearInterval(sweep);
    onClient.close();
    onUpstream.close();
    libc.close(cfd);
    libc.close(ufd);
    koffi.free(basePtr);
    port.postMessage({ type: 'closed' });
    port.close();
  }
});
port.postMessage({ type: 'listening', port: bound.readUInt16BE(2) });
