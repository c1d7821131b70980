import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { ManagedProcess } from './process';
import { freePort, waitFor } from './ports';

export interface NatsOptions {
  /** Directory for JetStream storage, config and log. Created if missing. */
  dir: string;
  port?: number;
  /** Extra configuration appended to the generated config file (authorization, accounts...). */
  extraConfig?: string;
}

/** Path of nats-server, or a clear error saying how to install it. */
export function natsServerBin(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server']).toString().trim();
  } catch {
    throw new Error('nats-server not found on PATH: run scripts/setup.sh (installs Debian package nats-server)');
  }
}

/** A real nats-server with JetStream as a child process, on loopback. */
export class NatsServer {
  private proc: ManagedProcess;

  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly configFile: string,
    proc: ManagedProcess,
  ) {
    this.proc = proc;
  }

  static async start(opts: NatsOptions): Promise<NatsServer> {
    mkdirSync(opts.dir, { recursive: true });
    const port = opts.port ?? (await freePort());
    const configFile = join(opts.dir, 'nats.conf');
    const storeDir = join(opts.dir, 'jetstream');
    writeFileSync(
      configFile,
      [
        `listen: "127.0.0.1:${port}"`,
        `server_name: "cgfence-${port}"`,
        `jetstream { store_dir: ${JSON.stringify(storeDir)}, max_memory_store: 256MB, max_file_store: 4GB }`,
        `max_payload: 8MB`,
        opts.extraConfig ?? '',
      ].join('\n'),
    );
    const server = new NatsServer(opts.dir, port, configFile, NatsServer.spawn(opts.dir, configFile));
    await server.ready();
    return server;
  }

  private static spawn(dir: string, configFile: string): ManagedProcess {
    return ManagedProcess.start('nats-server', natsServerBin(), ['-c', configFile], join(dir, 'nats.log'));
  }

  private async ready(): Promise<void> {
    await waitFor(`nats-server on 127.0.0.1:${this.port}`, async () => {
      if (!this.proc.running) throw new Error(`nats-server exited; see ${join(this.dir, 'nats.log')}`);
      return new Promise<boolean>((resolve) => {
        const s = netConnect(this.port, '127.0.0.1');
        s.once('data', (d) => {
          s.destroy();
          resolve(d.toString().startsWith('INFO'));
        });
        s.once('error', () => resolve(false));
      });
    });
  }

  url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Stops and starts the same server (same port, same JetStream data). */
  async restart(): Promise<void> {
    await this.proc.stop();
    this.proc = NatsServer.spawn(this.dir, this.configFile);
    await this.ready();
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}
