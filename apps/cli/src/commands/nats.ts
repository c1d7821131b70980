import { Command, Option } from 'commander';
import { dirname, join, relative, resolve } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { Client as PgClient } from 'pg';
import {
  ACCOUNT_JWT_LOCK,
  addHost,
  hostPermissions,
  initAuth,
  initJwtAuth,
  InvalidHostIdError,
  beginAccountKeyRotation,
  finishAccountKeyRotation,
  JWT_FILES,
  listHosts,
  migrateNkeysHosts,
  natsConnectOptions,
  natsIncludeDirective,
  NatsAuthError,
  reloadNats,
  removeHost,
} from '@cgfence/nats-auth';
import { client, globals } from '../context';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../errors';
import { printJson, printLines, printTable } from '../output';

export const DEFAULT_NATS_DIR = '/etc/cgfence/nats';
export const DEFAULT_NATS_JWT_DIR = '/etc/cgfence/nats-jwt';
const DEFAULT_RESOLVER_DIR = '/var/lib/nats/cgfence-resolver';
/** Where Debian's nats-server package keeps its configuration. */
const DEBIAN_NATS_CONF = '/etc/nats-server.conf';

const jwtDirOption = (flags = '--dir <dir>') =>
  new Option(flags, 'the JWT directory of `cgfence nats init-jwt`').env('CGFENCE_NATS_JWT_DIR').default(DEFAULT_NATS_JWT_DIR);

const dirOption = () =>
  new Option('--dir <dir>', 'the NATS credentials directory (seeds and the generated auth.conf)').env('CGFENCE_NATS_DIR').default(DEFAULT_NATS_DIR);

const reloadOptions = (cmd: Command): Command =>
  cmd
    .addOption(new Option('--reload-pid <pid>', 'reload this nats-server process afterwards (SIGHUP)').conflicts('reloadPidFile'))
    .addOption(new Option('--reload-pid-file <file>', 'reload the nats-server whose pid is in this file'));

interface ReloadOpts {
  reloadPid?: string;
  reloadPidFile?: string;
}

/** How long the rotation waits for the account JWT lock (a host removal holds it for a few seconds at most). */
const LOCK_WAIT_MS = 120_000;

/**
 * Runs `fn` holding the account JWT lock (ACCOUNT_JWT_LOCK, a PostgreSQL
 * advisory lock in the policy server's database), the one host removals take
 * while they push revocations: a rotation and a removal never read and push
 * the account JWT at the same time. The lock is the session's: it goes when
 * the connection ends, however this process ends.
 */
async function withAccountJwtLock<T>(databaseUrl: string, fn: () => Promise<T>): Promise<T> {
  const db = new PgClient({ connectionString: databaseUrl, application_name: 'cgfence-rotate-account-key', connectionTimeoutMillis: 10_000 });
  try {
    await db.connect();
  } catch (err) {
    await db.end().catch(() => undefined);
    throw new CliError(`cannot reach the policy server's database (--database-url) to take the account JWT lock: ${(err as Error).message}`, EXIT_FAILURE);
  }
  try {
    const free = (await db.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [ACCOUNT_JWT_LOCK])).rows[0]?.ok === true;
    if (!free) {
      process.stderr.write('waiting for the account JWT lock (a host removal is pushing a revocation)...\n');
      try {
        await db.query(`set statement_timeout = ${LOCK_WAIT_MS}`);
        await db.query('select pg_advisory_lock(hashtext($1))', [ACCOUNT_JWT_LOCK]);
        await db.query('set statement_timeout = 0');
      } catch (err) {
        throw new CliError(`the account JWT lock was not free within ${LOCK_WAIT_MS / 1000} s (held by a policy server removing hosts, or another rotation): ${(err as Error).message}`, EXIT_FAILURE);
      }
    }
    return await fn();
  } finally {
    await db.end().catch(() => undefined);
  }
}

/** Library errors as CLI errors: a bad host id is a usage error, the rest failures. */
function cliErrors<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void {
  return (...args: A) => {
    try {
      fn(...args);
    } catch (err) {
      if (err instanceof InvalidHostIdError) throw new CliError(err.message, EXIT_USAGE);
      if (err instanceof NatsAuthError) throw new CliError(err.message, EXIT_FAILURE);
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code === 'string' && err instanceof Error) throw new CliError(err.message, EXIT_FAILURE);
      throw err;
    }
  };
}

/** Reloads nats-server if asked to; the line saying what happened (or what to do). */
function reload(o: ReloadOpts): { reloaded?: number; line: string } {
  let target: number | string | undefined;
  if (o.reloadPid !== undefined) {
    if (!/^\d+$/.test(o.reloadPid)) throw new CliError(`--reload-pid: ${JSON.stringify(o.reloadPid)} is not a process id`, EXIT_USAGE);
    target = Number(o.reloadPid);
  } else target = o.reloadPidFile;
  if (target === undefined) {
    return { line: 'reload nats-server to apply it: systemctl reload nats-server (or nats-server --signal reload=PID)' };
  }
  try {
    const pid = reloadNats(target);
    return { reloaded: pid, line: `nats-server ${pid} reloaded` };
  } catch (err) {
    if (!(err instanceof NatsAuthError)) throw err;
    throw new CliError(`auth.conf is written, but nats-server was not reloaded: ${err.message}`, EXIT_FAILURE);
  }
}

export function natsCommand(): Command {
  const cmd = new Command('nats').description('NATS credentials of the fleet: one nkey for the policy server, one per host');
  cmd
    .command('init')
    .description('create the directory and the policy server key (kept if present) and write auth.conf')
    .addOption(dirOption())
    .option('--nats-conf <file>', 'the nats-server configuration file that will include auth.conf', DEBIAN_NATS_CONF)
    .action(
      cliErrors((o: { dir: string; natsConf: string }, self: Command) => {
        const r = initAuth(o.dir);
        const include = natsIncludeDirective(o.dir, o.natsConf);
        if (globals(self).json) return printJson({ ...r, include });
        printLines([
          `${r.created ? 'created' : 'kept'} the policy server key ${r.serverPublicKey}`,
          `  seed: ${r.serverSeedFile} (the policy server connects with it)`,
          `wrote ${r.authFile}`,
          `add this line to ${o.natsConf} (nats-server reads include paths relative to that file), then reload nats-server:`,
          `  ${include}`,
          `next: cgfence nats add-host HOST --dir ${r.dir}`,
        ]);
      }),
    );
  reloadOptions(
    cmd
      .command('add-host')
      .description('give a host its key (kept if it has one) and rewrite auth.conf')
      .argument('<host>', 'host id: the --host-id the agent runs with (a-z, 0-9, "-", "_")')
      .addOption(dirOption())
      .option('--rotate', 'replace the host key with a new one (the old one stops working at the reload)', false)
      .option('--nats-url <url>', 'NATS URL the agent connects to, for the printed command line', 'nats://NATS_HOST:4222'),
  ).action(
    cliErrors((hostId: string, o: { dir: string; rotate: boolean; natsUrl: string } & ReloadOpts, self: Command) => {
      const r = addHost(o.dir, hostId, { rotate: o.rotate });
      const reloaded = reload(o);
      const agent = `cgfence agent --host-id ${hostId} --server ${o.natsUrl} --nats-seed ${r.seedFile} --server-key SERVER_KEY.pem …`;
      if (globals(self).json) return printJson({ ...r, permissions: hostPermissions(hostId), reloadedPid: reloaded.reloaded ?? null, agent });
      printLines([
        `host ${hostId}: ${r.rotated ? 'rotated to a new key' : r.created ? 'new key' : 'kept its key'} ${r.publicKey}`,
        `  seed: ${r.seedFile} (copy it to the host, mode 0600, owner root)`,
        `start the agent on ${hostId} with:`,
        `  ${agent}`,
        `wrote ${r.authFile}; ${reloaded.line}`,
      ]);
    }),
  );
  reloadOptions(
    cmd
      .command('remove-host')
      .description('delete a host key and rewrite auth.conf; at the reload its connections are closed')
      .argument('<host>')
      .addOption(dirOption()),
  ).action(
    cliErrors((hostId: string, o: { dir: string } & ReloadOpts, self: Command) => {
      if (!removeHost(o.dir, hostId)) throw new CliError(`no host ${hostId} in ${o.dir}`, EXIT_FAILURE);
      const reloaded = reload(o);
      if (globals(self).json) return printJson({ removed: hostId, reloadedPid: reloaded.reloaded ?? null });
      printLines([`removed host ${hostId}; ${reloaded.line}`]);
    }),
  );
  cmd
    .command('init-jwt')
    .description('JWT authorization (scales to any number of hosts, no reload per host): create the operator, accounts and signing keys (kept if present), the policy server creds and resolver.conf')
    .addOption(new Option('--dir <dir>', 'the JWT directory (keys, creds, resolver.conf); keep it root-only').env('CGFENCE_NATS_JWT_DIR').default(DEFAULT_NATS_JWT_DIR))
    .option('--resolver-dir <dir>', "where nats-server keeps account JWTs (one per node; nats-server's user must own it)", DEFAULT_RESOLVER_DIR)
    .option('--nats-conf <file>', 'the nats-server configuration file that will include resolver.conf', DEBIAN_NATS_CONF)
    .action(async (o: { dir: string; resolverDir: string; natsConf: string }, self: Command) => {
      let r;
      try {
        r = await initJwtAuth(o.dir, { resolverDir: o.resolverDir });
      } catch (err) {
        if (err instanceof NatsAuthError) throw new CliError(err.message, EXIT_FAILURE);
        throw err;
      }
      const include = `include ${JSON.stringify(relative(dirname(resolve(o.natsConf)), r.resolverConfigFile))}`;
      if (globals(self).json) return printJson({ ...r, include });
      printLines([
        `${r.created ? 'created' : 'kept'} operator ${r.operatorPublicKey} and account ${r.accountPublicKey} in ${r.dir}`,
        `wrote ${r.resolverConfigFile}; add this line to ${o.natsConf} (and copy resolver.conf to every cluster node), then restart nats-server:`,
        `  ${include}`,
        'the policy server needs:',
        `  CGFENCE_NATS_CREDS=${r.serverCredsFile}`,
        `  CGFENCE_NATS_JWT_DIR=${r.dir}   (it signs hosts' user JWTs and pushes revocations)`,
        'next: cgfence hosts enroll-token create --uses N, then on each host: cgfence agent --enroll URL --enroll-token-file FILE',
      ]);
    });
  cmd
    .command('rotate-account-key')
    .description(
      'rotate the account signing key (the key that signs hosts\' JWTs) with the fleet connected: first run adds a new key beside the old one; ' +
        'restart the policy servers (they hand each host a JWT signed by the new key at its next sync); then --finish removes the old key',
    )
    .addOption(jwtDirOption())
    .requiredOption('--nats-url <urls>', 'the NATS servers (comma-separated); the system account pushes the account JWT to every node')
    .option('--nats-ca <file>', 'PEM CA of the NATS servers (TLS)')
    .option('--finish', 'remove the old key; refused while a connection still uses a JWT it signed', false)
    .option('--force', 'with --finish: remove it anyway (those connections are closed and refused)', false)
    .addOption(
      new Option('--database-url <url>', "the policy server's PostgreSQL: the rotation takes the lock host removals take, so no revocation is lost").env('CGFENCE_DATABASE_URL'),
    )
    .option('--no-lock', 'rotate without the lock (no policy server runs, or none can remove a host meanwhile)')
    .action(async (o: { dir: string; natsUrl: string; natsCa?: string; finish: boolean; force: boolean; databaseUrl?: string; lock: boolean }, self: Command) => {
      if (o.force && !o.finish) throw new CliError('--force goes with --finish', EXIT_USAGE);
      if (o.lock && !o.databaseUrl) {
        throw new CliError(
          "the rotation rewrites the account JWT that host removals rewrite too: give the policy server's database (--database-url or CGFENCE_DATABASE_URL) so it takes their lock, or --no-lock if no policy server can remove a host meanwhile",
          EXIT_USAGE,
        );
      }
      const sys = await connect({
        servers: o.natsUrl.split(',').map((u) => u.trim()).filter(Boolean),
        ...natsConnectOptions({ credsFile: join(o.dir, JWT_FILES.sysCreds), caFile: o.natsCa }),
        name: 'cgfence-rotate-account-key',
        timeout: 5000,
      }).catch((err: Error) => {
        throw new CliError(`cannot reach NATS at ${o.natsUrl} as the system user: ${err.message}`, EXIT_FAILURE);
      });
      const locked = <T>(fn: () => Promise<T>): Promise<T> => (o.lock ? withAccountJwtLock(o.databaseUrl!, fn) : fn());
      try {
        if (o.finish) {
          const r = await locked(() => finishAccountKeyRotation(o.dir, sys, { force: o.force }));
          if (globals(self).json) return printJson(r);
          printLines([
            `removed the old account signing key ${r.removedKey}; the account now trusts ${r.signingKeys.join(', ')}`,
            ...(r.stillOnOldKey.length > 0 ? [`${r.stillOnOldKey.length} connection(s) on the old key were cut off (--force); those hosts must enroll again`] : []),
          ]);
        } else {
          const r = await locked(() => beginAccountKeyRotation(o.dir, sys));
          if (globals(self).json) return printJson(r);
          printLines([
            `added the account signing key ${r.newKey} beside ${r.previousKey}; both are trusted on every node now`,
            `re-issued ${r.serverCredsFile} with the new key`,
            'next:',
            '  1. restart every policy server (same CGFENCE_NATS_JWT_DIR): it issues new enrollments with the new key,',
            '     and hands each host a JWT signed by it at the host\'s next sync (the agent reconnects with it)',
            '  2. after a sync interval (30 s by default): cgfence nats rotate-account-key --finish (it refuses while a connection still uses the old key)',
          ]);
        }
      } catch (err) {
        if (err instanceof NatsAuthError) throw new CliError(err.message, EXIT_FAILURE);
        throw err;
      } finally {
        await sys.close().catch(() => undefined);
      }
    });
  cmd
    .command('migrate-from-nkeys')
    .description(
      'JWT credentials for the hosts of an nkeys directory (auth.conf): each keeps its key and gets a creds file (JWT + its seed) for `cgfence agent --nats-creds`; ' +
        'each key is recorded with the policy server (--server, --token), which then renews it at an account key rotation and revokes it at `cgfence hosts remove`',
    )
    .addOption(dirOption())
    .addOption(jwtDirOption('--jwt-dir <dir>'))
    .requiredOption('--out <dir>', 'where to write <host>.creds (0600; copy each to its host, as the seed was)')
    .option('--no-register', 'only write the creds files: the policy server will neither renew nor revoke these keys')
    .action(async (o: { dir: string; jwtDir: string; out: string; register: boolean }, self: Command) => {
      let hosts;
      try {
        hosts = await migrateNkeysHosts(o.dir, o.jwtDir, o.out);
      } catch (err) {
        if (err instanceof NatsAuthError) throw new CliError(err.message, EXIT_FAILURE);
        throw err;
      }
      // Recorded after the creds are written: a failure here is fixed by running the command again (both steps repeat safely).
      const registered: string[] = [];
      if (o.register) {
        const api = client(self);
        for (const h of hosts) {
          try {
            await api.post(`hosts/${encodeURIComponent(h.hostId)}/nats-keys`, { natsPublicKey: h.publicKey });
          } catch (err) {
            const done = registered.length > 0 ? ` (recorded: ${registered.join(', ')})` : '';
            throw new CliError(
              `the creds files are written in ${o.out}, but the key of ${h.hostId} was not recorded with the policy server${done}: ${(err as Error).message}; ` +
                'run the command again (or with --no-register, and those hosts can be neither renewed nor revoked by the server)',
              EXIT_FAILURE,
            );
          }
          registered.push(h.hostId);
        }
      }
      if (globals(self).json) return printJson(hosts.map((h) => ({ ...h, registered: registered.includes(h.hostId) })));
      printTable(['HOST', 'PUBLIC KEY', 'CREDS FILE', 'RECORDED'], hosts.map((h) => [h.hostId, h.publicKey, h.credsFile, registered.includes(h.hostId) ? 'yes' : 'no']));
      printLines([
        `${hosts.length} host(s): on each, replace --nats-seed FILE with --nats-creds <host>.creds, once nats-server runs with resolver.conf (cgfence nats init-jwt) instead of auth.conf`,
        o.register
          ? 'their keys are recorded with the policy server: renewed at an account key rotation, revoked by cgfence hosts remove'
          : 'not recorded with the policy server (--no-register): it cannot renew their JWTs at a key rotation nor revoke them; run this command again without --no-register',
      ]);
    });
  cmd
    .command('hosts')
    .description('list the hosts with a key')
    .addOption(dirOption())
    .action(
      cliErrors((o: { dir: string }, self: Command) => {
        const hosts = listHosts(o.dir);
        if (globals(self).json) return printJson(hosts);
        printTable(['HOST', 'PUBLIC KEY', 'SEED FILE'], hosts.map((h) => [h.hostId, h.publicKey, h.seedFile]));
      }),
    );
  return cmd;
}
