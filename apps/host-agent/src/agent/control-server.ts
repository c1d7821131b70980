import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { ControlRequest, ControlResponse } from '@cgfence/proto';

export type ControlHandler = (req: ControlRequest) => Promise<unknown>;

/**
 * The agent's local control socket: JSON lines over a unix socket only root
 * can open (mode 0600). A bad line gets an error line back; it never takes the
 * agent down.
 */
export class ControlServer {
  private server?: Server;

  constructor(
    private readonly path: string,
    private readonly handle: ControlHandler,
  ) {}

  async listen(): Promise<void> {
    if (existsSync(this.path)) unlinkSync(this.path);
    const server = createServer((socket) => this.serve(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  private serve(socket: Socket): void {
    socket.on('error', () => undefined);
    const lines = createInterface({ input: socket });
    lines.on('line', (line) => {
      void this.answer(line).then((res) => {
        if (!socket.destroyed) socket.write(`${JSON.stringify(res)}\n`);
      });
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
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
    try {
      return { ok: true, result: await this.handle(parsed.data) };
    } catch (err) {
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
