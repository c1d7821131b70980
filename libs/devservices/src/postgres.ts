import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Client } from 'pg';
import { ManagedProcess } from './process';
import { freePort, waitFor } from './ports';

export interface PostgresOptions {
  /** Directory that holds the cluster, its socket and its log. Created if missing. */
  dir: string;
  /** TCP port on 127.0.0.1; a free one is chosen when omitted. */
  port?: number;
  /** Trade durability for speed (tests): fsync off. */
  fast?: boolean;
  /** More server settings (`-c name=value`), e.g. shared_buffers for a benchmark. */
  settings?: Record<string, string | number>;
}

/** Finds the newest PostgreSQL server binaries Debian installed. */
export function postgresBinDir(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'postgres'))) : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql: run scripts/setup.sh (installs postgresql-15)');
  }
  versions.sort((a, b) => Number(b) - Number(a));
  return join(base, versions[0], 'bin');
}

function postgresIds(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
  return { uid, gid };
}

/**
 * The postgres user must be able to walk down to its data directory. Temporary
 * directories (mkdtemp makes them 0700) are opened up for traversal; any other
 * closed ancestor is reported rather than changed behind the operator's back.
 */
function ensureTraversable(dir: string): void {
  const tmp = resolve(tmpdir());
  for (let d = resolve(dir); d !== dirname(d); d = dirname(d)) {
    const st = statSync(d);
    if ((st.mode & 0o001) !== 0) continue;
    if (d.startsWith(`${tmp}/`)) chmodSync(d, st.mode | 0o711);
    else throw new Error(`PostgreSQL runs as the postgres user, which cannot enter ${d} (mode ${(st.mode & 0o777).toString(8)}); choose a state directory elsewhere or run: chmod o+x ${d}`);
  }
}

function run(cmd: string, args: string[], ids: { uid?: number; gid?: number }): void {
  try {
    execFileSync(cmd, args, { stdio: 'pipe', ...ids });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(`${cmd} failed: ${stderr || String(err)}`);
  }
}

/**
 * A real PostgreSQL server as a child process. PostgreSQL refuses to run as
 * root, so when we are root it runs as the postgres user (uid/gid passed to
 * spawn), with its data directory owned by that user.
 */
export class PostgresServer {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly proc: ManagedProcess,
  ) {}

  static async start(opts: PostgresOptions): Promise<PostgresServer> {
    const bin = postgresBinDir();
    const dataDir = join(opts.dir, 'data');
    const sockDir = join(opts.dir, 'run');
    mkdirSync(sockDir, { recursive: true });
    const asRoot = process.getuid?.() === 0;
    const ids = asRoot ? postgresIds() : undefined;
    if (ids) {
      ensureTraversable(opts.dir);
      chownSync(opts.dir, ids.uid, ids.gid);
      chownSync(sockDir, ids.uid, ids.gid);
    }
    const spawnIds = ids ? { uid: ids.uid, gid: ids.gid } : {};
    if (!existsSync(join(dataDir, 'PG_VERSION'))) {
      mkdirSync(dataDir, { recursive: true, mode: 0o700 });
      if (ids) chownSync(dataDir, ids.uid, ids.gid);
      run(join(bin, 'initdb'), ['-D', dataDir, '-U', 'cgfence', '-A', 'trust', '-E', 'UTF8', '--no-locale'], spawnIds);
    }
    const port = opts.port ?? (await freePort());
    const logFile = join(opts.dir, 'postgres.log');
    writeFileSync(logFile, '', { flag: 'a' });
    if (ids) chownSync(logFile, ids.uid, ids.gid);
    const args = ['-D', dataDir, '-p', String(port), '-k', sockDir, '-c', 'listen_addresses=127.0.0.1', '-c', 'max_connections=200'];
    if (opts.fast) args.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
    for (const [name, value] of Object.entries(opts.settings ?? {})) args.push('-c', `${name}=${value}`);
    const proc = ManagedProcess.start('postgres', join(bin, 'postgres'), args, logFile, { ...spawnIds });
    const server = new PostgresServer(opts.dir, port, proc);
    await waitFor(`PostgreSQL on 127.0.0.1:${port} (log: ${logFile})`, async () => {
      if (!proc.running) throw new Error(`postgres exited; see ${logFile}`);
      const c = new Client({ host: '127.0.0.1', port, user: 'cgfence', database: 'postgres' });
      await c.connect();
      await c.end();
      return true;
    });
    return server;
  }

  url(database = 'cgfence'): string {
    return `postgres://cgfence@127.0.0.1:${this.port}/${database}`;
  }

  /** Creates a database if it does not exist and returns its URL. */
  async createDatabase(name: string): Promise<string> {
    const c = new Client({ connectionString: this.url('postgres') });
    await c.connect();
    try {
      const exists = await c.query('select 1 from pg_database where datname = $1', [name]);
      if (exists.rowCount === 0) await c.query(`create database "${name.replace(/"/g, '')}"`);
    } finally {
      await c.end();
    }
    return this.url(name);
  }

  /** Drops a database (closing its sessions), e.g. so its autovacuum does not run under the next benchmark case. */
  async dropDatabase(name: string): Promise<void> {
    const c = new Client({ connectionString: this.url('postgres') });
    await c.connect();
    try {
      await c.query(`drop database if exists "${name.replace(/"/g, '')}" with (force)`);
    } finally {
      await c.end();
    }
  }

  async stop(): Promise<void> {
    // SIGINT is PostgreSQL's "fast shutdown": roll back sessions, checkpoint, exit.
    await this.proc.stop(15_000, 'SIGINT');
  }
}
