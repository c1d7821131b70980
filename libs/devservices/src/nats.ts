import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { connect as netConnect } from 'node:net';
import { ManagedProcess } from './process';
import { freePort, waitFor } from './ports';

export interface NatsOptions {
  /** Directory for JetStream storage, config and log. Created if missing. */
  dir: string;
  port?: number;
  /** Extra configuration appended to the generated config file (authorization, accounts...). */
  extraConfig?: string;
  /**
   * Configuration files to include (e.g. the auth.conf of @cgfence/nats-auth).
   * They are re-read on reload(), so a test can change them while the server runs.
   */
  include?: string[];
  /** Address to listen on (default 127.0.0.1); e.g. a bridge address that test network namespaces reach. */
  host?: string;
  /** Serve clients (and cluster routes) over TLS with this certificate; url() is then tls://. */
  tls?: NatsTls;
  /** Join a cluster: this node's route port and every node's route port (its own included). */
  cluster?: { name: string; port: number; routePorts: number[] };
  /** server_name (default cgfence-<port>); must be unique in a cluster. */
  serverName?: string;
}

export interface NatsTls {
  certFile: string;
  keyFile: string;
  /** The CA cluster routes verify each other against. */
  caFile: string;
}

/** The nats-server configuration lines for TLS on client connections and, in a cluster, on routes. */
export function natsTlsConfig(tls: NatsTls, indent = ''): string {
  return `${indent}tls { cert_file: ${JSON.stringify(resolve(tls.certFile))}, key_file: ${JSON.stringify(resolve(tls.keyFile))}, ca_file: ${JSON.stringify(resolve(tls.caFile))}, timeout: 5 }`;
}

function clusterConfig(host: string, c: NonNullable<NatsOptions['cluster']>, tls: NatsTls | undefined): string {
  const routes = c.routePorts.filter((p) => p !== c.port).map((p) => JSON.stringify(`nats-route://${host}:${p}`));
  return [
    'cluster {',
    `  name: ${JSON.stringify(c.name)}`,
    `  listen: "${host}:${c.port}"`,
    `  routes: [${routes.join(', ')}]`,
    ...(tls ? [natsTlsConfig({ ...tls }, '  ').replace('timeout: 5', 'timeout: 5, verify: true')] : []),
    '}',
  ].join('\n');
}

/**
 * The include line for `file` in `configFile`. nats-server 2.9 joins an include
 * path to the including file's directory even when it is absolute, so it must
 * be relative.
 */
function includeLine(configFile: string, file: string): string {
  return `include ${JSON.stringify(relative(dirname(resolve(configFile)), resolve(file)))}`;
}

const RELOADED = 'Reloaded server configuration';
const RELOAD_FAILED = 'Failed to reload server configuration';

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
    readonly host: string,
    readonly tls = false,
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
        `listen: "${opts.host ?? '127.0.0.1'}:${port}"`,
        `server_name: ${JSON.stringify(opts.serverName ?? `cgfence-${port}`)}`,
        ...(opts.tls ? [natsTlsConfig(opts.tls)] : []),
        ...(opts.cluster ? [clusterConfig(opts.host ?? '127.0.0.1', opts.cluster, opts.tls)] : []),
        `jetstream { store_dir: ${JSON.stringify(storeDir)}, max_memory_store: 256MB, max_file_store: 4GB }`,
        `max_payload: 8MB`,
        ...(opts.include ?? []).map((f) => includeLine(configFile, f)),
        opts.extraConfig ?? '',
      ].join('\n'),
    );
    const server = new NatsServer(opts.dir, port, configFile, NatsServer.spawn(opts.dir, configFile), opts.host ?? '127.0.0.1', opts.tls !== undefined);
    await server.ready();
    return server;
  }

  private static spawn(dir: string, configFile: string): ManagedProcess {
    return ManagedProcess.start('nats-server', natsServerBin(), ['-c', configFile], join(dir, 'nats.log'));
  }

  private async ready(): Promise<void> {
    await waitFor(`nats-server on ${this.host}:${this.port}`, async () => {
      if (!this.proc.running) throw new Error(`nats-server exited; see ${join(this.dir, 'nats.log')}`);
      return new Promise<boolean>((resolve) => {
        const s = netConnect(this.port, this.host);
        s.once('data', (d) => {
          s.destroy();
          resolve(d.toString().startsWith('INFO'));
        });
        s.once('error', () => resolve(false));
      });
    });
  }

  url(): string {
    return `${this.tls ? 'tls' : 'nats'}://${this.host}:${this.port}`;
  }

  private log(): string {
    const file = join(this.dir, 'nats.log');
    return existsSync(file) ? readFileSync(file, 'latin1') : '';
  }

  /**
   * Makes the server re-read its configuration (SIGHUP, as `nats-server
   * --signal reload` does) and waits until it says it did; a configuration it
   * rejects is an error with nats-server's message.
   */
  async reload(): Promise<void> {
    const count = (text: string, what: string): number => text.split(what).length - 1;
    const before = this.log();
    const [ok0, failed0] = [count(before, RELOADED), count(before, RELOAD_FAILED)];
    if (!this.proc.running || !this.proc.child.kill('SIGHUP')) throw new Error('nats-server is not running');
    let log = before;
    await waitFor('nats-server to reload its configuration', async () => {
      log = this.log();
      return count(log, RELOADED) > ok0 || count(log, RELOAD_FAILED) > failed0;
    });
    if (count(log, RELOAD_FAILED) > failed0) {
      const line = log.split('\n').filter((l) => l.includes(RELOAD_FAILED)).pop() ?? RELOAD_FAILED;
      throw new Error(`nats-server rejected the new configuration: ${line.slice(line.indexOf(RELOAD_FAILED))}`);
    }
  }

  /** Process id of the running nats-server. */
  get pid(): number | undefined {
    return this.proc.child.pid;
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

  /** Kills the server at once (SIGKILL), as a crash or a lost machine would. start() brings it back. */
  async kill(): Promise<void> {
    await this.proc.kill();
  }

  /** Starts a stopped or killed server again (same port, same data). */
  async start(): Promise<void> {
    if (this.proc.running) return;
    this.proc = NatsServer.spawn(this.dir, this.configFile);
    await this.ready();
  }

  /** The configuration file nats-server runs with. */
  get config(): string {
    return this.configFile;
  }
}

export interface NatsClusterOptions {
  /** Parent directory; node i lives in <dir>/n<i>. */
  dir: string;
  /** Number of nodes (default 3). */
  size?: number;
  tls?: NatsTls;
  /** Extra configuration for node i (e.g. JWT authorization with a resolver directory of its own). */
  extraConfig?: (node: number, nodeDir: string) => string;
  include?: string[];
  /** Client ports of the nodes (default: free ones). */
  clientPorts?: number[];
  /** Address every node listens on, for clients and routes (default 127.0.0.1); e.g. a test lab's bridge address. */
  host?: string;
}

/** A nats-server cluster with JetStream on loopback: every node routes to every other. */
export class NatsCluster {
  private constructor(readonly nodes: NatsServer[]) {}

  static async start(opts: NatsClusterOptions): Promise<NatsCluster> {
    const size = opts.size ?? 3;
    const clientPorts: number[] = [...(opts.clientPorts ?? [])];
    const routePorts: number[] = [];
    while (clientPorts.length < size) {
      const p = await freePort();
      if (!clientPorts.includes(p) && !routePorts.includes(p)) clientPorts.push(p);
    }
    while (routePorts.length < size) {
      const p = await freePort();
      if (!clientPorts.includes(p) && !routePorts.includes(p)) routePorts.push(p);
    }
    const name = `cgfence-${clientPorts[0]}`;
    const nodes = await Promise.all(
      clientPorts.map((port, i) => {
        const dir = join(opts.dir, `n${i}`);
        mkdirSync(dir, { recursive: true });
        return NatsServer.start({
          dir,
          port,
          serverName: `${name}-n${i}`,
          host: opts.host,
          tls: opts.tls,
          include: opts.include,
          cluster: { name, port: routePorts[i]!, routePorts },
          extraConfig: opts.extraConfig?.(i, dir),
        });
      }),
    );
    const cluster = new NatsCluster(nodes);
    await cluster.waitForJetStream();
    return cluster;
  }

  /** Every node's client URL, comma-separated (as the agents' --server takes them). */
  urls(): string[] {
    return this.nodes.map((n) => n.url());
  }

  /**
   * Waits until the cluster has a JetStream meta leader (the nodes' logs say
   * so): before then, stream creation fails with "JetStream not available".
   */
  async waitForJetStream(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      'the NATS cluster to elect a JetStream meta leader',
      () => this.nodes.some((n) => /JetStream cluster new metadata leader|Self is new JetStream cluster metadata leader/.test(readLog(n.dir))),
      timeoutMs,
      100,
    );
  }

  async stop(): Promise<void> {
    await Promise.allSettled(this.nodes.map((n) => n.stop()));
  }
}

function readLog(dir: string): string {
  const file = join(dir, 'nats.log');
  return existsSync(file) ? readFileSync(file, 'latin1') : '';
}
