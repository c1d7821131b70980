import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { ControlRequest, ControlResponse } from '@cgfence/proto';
import type { GroupEntry } from '../runs/user-lookup';
import { PeerCredentials, peerCredentials } from './peer-cred';

/** Who sent a control request: the kernel's record of the connecting process. */
export interface ControlCaller extends PeerCredentials {
  readonly root: boolean;
}

export type ControlHandler = (req: ControlRequest, caller: ControlCaller) => Promise<unknown>;

/** Thrown by a handler when the caller may not do what it asked; answered with code PERMISSION_DENIED. */
export class ControlPermissionError extends Error {}

/** Requests only root may make, whatever the run group. */
const ROOT_ONLY: ReadonlySet<ControlRequest['op']> = new Set(['reload']);

export interface ControlAccess {
  /**
   * Besides root, members of this group may connect (`--run-group`): the
   * socket is root:GROUP 0660 and its directory root:GROUP 0710 (enter, not
   * list). Without it the socket is 0600, root only.
   */
  readonly runGroup?: GroupEntry;
}

/** What a caller outside the run group is told (the CLI shows it as is). */
export function permissionDeniedMessage(group: string | undefined): string {
  return group === undefined
    ? 'permission denied: this agent takes runs from root only (start it with --run-group GROUP to let a group run deploys)'
    : `permission denied: ask to be added to group ${group} (then log in again)`;
}

/**
 * The agent's local control socket: JSON lines over a unix socket. Every
 * connection is identified by the kernel (SO_PEERCRED/SO_PEERGROUPS), never
 * by what the client claims: root may do everything, members of the run
 * group may start and end their own runs and read the status, anyone else is
 * refused. A bad line gets an error line back; it never takes the agent down.
 */
export class ControlServer {
  private server?: Server;

  constructor(
    private readonly path: string,
    private readonly handle: ControlHandler,
    private readonly access: ControlAccess = {},
  ) {}

  async listen(): Promise<void> {
    if (existsSync(this.path)) unlinkSync(this.path);
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    const group = this.access.runGroup;
    if (group) {
      // The directory first: members must be able to reach the socket, not read the journal.
      chownSync(dirname(this.path), 0, group.gid);
      chmodSync(dirname(this.path), 0o710);
      chownSync(this.path, 0, group.gid);
      chmodSync(this.path, 0o660);
    } else {
      // Root only; a group an earlier start gave the directory is taken back.
      chownSync(dirname(this.path), 0, 0);
      chmodSync(dirname(this.path), 0o700);
      chmodSync(this.path, 0o600);
    }
    this.server = server;
  }

  private serve(socket: Socket): void {
    socket.on('error', () => undefined);
    let caller: ControlCaller | undefined;
    let refusal: string | undefined;
    try {
      const cred = peerCredentials(socket);
      const root = cred.uid === 0;
      const gid = this.access.runGroup?.gid;
      if (root || (gid !== undefined && (cred.gid === gid || cred.groups.includes(gid)))) caller = { ...cred, root };
      else refusal = permissionDeniedMessage(this.access.runGroup?.name);
    } catch (err) {
      refusal = `cannot identify the caller: ${(err as Error).message}`;
    }
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      const answer: Promise<ControlResponse> = caller
        ? this.answer(line, caller)
        : Promise.resolve({ ok: false, error: refusal ?? 'refused', code: 'PERMISSION_DENIED' });
      void answer.then((res) => {
        if (!socket.destroyed) socket.write(`${JSON.stringify(res)}\n`);
        if (!caller) socket.end();
      });
    });
  }

  private async answer(line: string, caller: ControlCaller): Promise<ControlResponse> {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      return { ok: false, error: 'request is not JSON' };
    }
    const parsed = ControlRequest.safeParse(raw);
    if (!parsed.success) {
      return { ok: false, error: `bad request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(request)'}: ${i.message}`).join('; ')}` };
    }
    if (!caller.root && ROOT_ONLY.has(parsed.data.op)) {
      return { ok: false, error: `permission denied: ${parsed.data.op} needs root`, code: 'PERMISSION_DENIED' };
    }
    try {
      return { ok: true, result: await this.handle(parsed.data, caller) };
    } catch (err) {
      if (err instanceof ControlPermissionError) return { ok: false, error: err.message, code: 'PERMISSION_DENIED' };
      return { ok: false, error: (err as Error).message };
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    await new Promise<void>((resolve) => server.close(() => resolve()));
    if (existsSync(this.path)) unlinkSync(this.path);
  }
}
