// koffi bindings to the libc calls issue 19's batched prototypes use:
// sockets made and driven without libuv's UDP handle, datagrams received and
// sent a batch per system call (recvmmsg/sendmmsg). Loaded on first use, in
// whichever thread calls it (a worker loads its own copy of the functions).
import koffi from 'koffi';
import { parseIp } from '@cgfence/bpf';

/** <sys/socket.h> on Linux x86-64 and arm64 (the sizes below are the LP64 ABI's). */
export const SOCK = {
  AF_INET: 2,
  AF_INET6: 10,
  SOCK_DGRAM: 2,
  SOCK_NONBLOCK: 0o4000,
  SOCK_CLOEXEC: 0o2000000,
  SOL_SOCKET: 1,
  SO_RCVBUF: 8,
  MSG_DONTWAIT: 0x40,
  MSG_TRUNC: 0x20,
  /** struct sockaddr_in6, the larger of the two address shapes. */
  SOCKADDR_BYTES: 28,
  /** struct iovec { void *base; size_t len; } */
  IOVEC_BYTES: 16,
  /** struct mmsghdr { struct msghdr (56 bytes); unsigned msg_len; } padded to 64. */
  MMSGHDR_BYTES: 64,
  MSG_NAME: 0,
  MSG_NAMELEN: 8,
  MSG_IOV: 16,
  MSG_IOVLEN: 24,
  MSG_FLAGS: 48,
  MSG_LEN: 56,
} as const;

export interface LibcMmsg {
  socket(domain: number, type: number, protocol: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  getsockname(fd: number, addr: Buffer, len: number[]): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  recvmmsg(fd: number, msgs: bigint, vlen: number, flags: number, timeout: null): number;
  sendmmsg(fd: number, msgs: bigint, vlen: number, flags: number): number;
  close(fd: number): number;
}

let bound: LibcMmsg | undefined;

export function libcMmsg(): LibcMmsg {
  if (bound) return bound;
  const libc = koffi.load('libc.so.6');
  bound = {
    socket: libc.func('int socket(int, int, int)'),
    bind: libc.func('int bind(int, void *, uint32_t)'),
    connect: libc.func('int connect(int, void *, uint32_t)'),
    getsockname: libc.func('int getsockname(int, void *, _Inout_ uint32_t *)'),
    setsockopt: libc.func('int setsockopt(int, int, int, void *, uint32_t)'),
    recvmmsg: libc.func('int recvmmsg(int, void *, unsigned int, int, void *)'),
    sendmmsg: libc.func('int sendmmsg(int, void *, unsigned int, int)'),
    close: libc.func('int close(int)'),
  } as LibcMmsg;
  return bound;
}

/** A sockaddr_in / sockaddr_in6 for an IP literal and port, with its length. */
export function sockaddr(ip: string, port: number): { addr: Buffer; len: number; family: number } {
  const { family, bytes } = parseIp(ip);
  const addr = Buffer.alloc(SOCK.SOCKADDR_BYTES);
  addr.writeUInt16LE(family === 6 ? SOCK.AF_INET6 : SOCK.AF_INET, 0);
  addr.writeUInt16BE(port, 2);
  addr.set(bytes, family === 6 ? 8 : 4);
  return family === 6 ? { addr, len: 28, family: SOCK.AF_INET6 } : { addr, len: 16, family: SOCK.AF_INET };
}
