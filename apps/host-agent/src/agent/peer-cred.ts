import koffi from 'koffi';
import { constants } from 'node:os';
import type { Socket } from 'node:net';

/**
 * Who is on the other end of a connected unix socket, as the kernel recorded
 * it when the peer called connect(): SO_PEERCRED (pid, uid, gid) and
 * SO_PEERGROUPS (supplementary groups). Node has no API for either, so they
 * are read with getsockopt(2) through koffi. Nothing here comes from the
 * client's own words.
 */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
  /** Supplementary group ids (SO_PEERGROUPS, Linux 4.13+). */
  readonly groups: readonly number[];
}

// <asm-generic/socket.h>
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_PEERGROUPS = 59;
/** sizeof(struct ucred): pid_t pid, uid_t uid, gid_t gid. */
const UCRED_SIZE = 12;
/** NGROUPS_MAX (65536) gids of 4 bytes: the most SO_PEERGROUPS can return. */
const MAX_GROUPS_BYTES = 65_536 * 4;

type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, len: [number]) => number;
let getsockopt: GetSockOpt | undefined;

function bind(): GetSockOpt {
  getsockopt ??= koffi
    .load('libc.so.6')
    .func('int getsockopt(int fd, int level, int optname, void *optval, _Inout_ uint32_t *optlen)') as GetSockOpt;
  return getsockopt;
}

function errnoText(): string {
  const n = koffi.errno();
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}

/** The file descriptor under a connected net.Socket (a libuv pipe handle keeps it in `fd`). */
export function socketFd(socket: Socket): number {
  // Not in Node's typings: the handle is internal, and this is the one way to its fd.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the control connection has no file descriptor');
  return fd;
}

/** Reads the peer's credentials of a connected unix socket; throws if the kernel will not say. */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = socketFd(socket);
  const call = bind();
  const cred = Buffer.alloc(UCRED_SIZE);
  const len: [number] = [UCRED_SIZE];
  if (call(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) throw new Error(`getsockopt(SO_PEERCRED): ${errnoText()}`);
  const pid = cred.readInt32LE(0);
  const uid = cred.readUInt32LE(4);
  const gid = cred.readUInt32LE(8);
  // Most callers have few groups: try small, then the size the kernel asks for (ERANGE).
  let size = 256;
  for (;;) {
    const buf = Buffer.alloc(size);
    const glen: [number] = [size];
    if (call(fd, SOL_SOCKET, SO_PEERGROUPS, buf, glen) === 0) {
      const groups: number[] = [];
      for (let at = 0; at + 4 <= glen[0]; at += 4) groups.push(buf.readUInt32LE(at));
      return { pid, uid, gid, groups };
    }
    if (koffi.errno() !== constants.errno.ERANGE || glen[0] <= size || glen[0] > MAX_GROUPS_BYTES) {
      throw new Error(`getsockopt(SO_PEERGROUPS): ${errnoText()}`);
    }
    size = glen[0];
  }
}
