import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { resolve } from 'node:path';
import { startLocalFleet } from '../local/local-fleet';
import { printLines } from '../output';

const port = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number');
  return n;
};

/** Where the repository keeps its local state: <repo>/.cgfence. */
/** The admin token to paste into the dashboard's sign-in (the file is the server's bootstrap token, mode 0600). */
function readToken(file: string): string {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return `(see ${file})`;
  }
}

export function defaultLocalStateDir(): string {
  return resolve(__dirname, '..', '..', '..', '..', '..', '.cgfence');
}

export function localCommand(): Command {
  const cmd = new Command('local').description('the local fleet for development and trying cgfence out');
  cmd
    .command('up')
    .description('start PostgreSQL, NATS, the policy server and one host agent on this machine; Ctrl-C stops them all')
    .option('--state-dir <dir>', 'where all their data lives', defaultLocalStateDir())
    .option('--pg-port <port>', 'PostgreSQL port', port, 25432)
    .option('--nats-port <port>', 'NATS port', port, 24222)
    .option('--api-port <port>', 'policy server API port', port, 28080)
    .option('--agent-upstream <host:port>', 'resolver the local agent forwards allowed DNS to (default: first nameserver of /etc/resolv.conf)')
    .option('--agent-cgroup <name>', 'deploy cgroup of the local agent', 'cgfence-local')
    .option('--nats-cluster <n>', 'run NATS as a cluster of n nodes (3: streams replicated three times) on --nats-port and the next ports', (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 5) throw new InvalidArgumentError('must be 1 to 5');
      return n;
    }, 1)
    .action(async (o: { stateDir: string; pgPort: number; natsPort: number; apiPort: number; agentUpstream?: string; agentCgroup: string; natsCluster: number }) => {
      const fleet = await startLocalFleet(o, (l) => printLines([`· ${l}`]));
      printLines([
        '',
        `cgfence local fleet is up (state in ${o.stateDir})`,
        `  dashboard: ${fleet.apiUrl}/   sign in with the admin token: ${readToken(fleet.tokenFile)}`,
        `  API:      ${fleet.apiUrl}`,
        `  API docs: ${fleet.apiUrl}/docs   (OpenAPI: ${fleet.apiUrl}/openapi.json)`,
        `  metrics:  ${fleet.apiUrl}/metrics`,
        `  admin token: ${fleet.tokenFile}`,
        `  NATS:     ${fleet.natsUrls.join(',')} (TLS, CA ${fleet.caFile}; JWT authorization from ${fleet.natsAuthDir})`,
        `  host agent: host "${fleet.agentHostId}" (cohort local, enrolled with a join token), state ${fleet.agentStateDir}`,
        `              (cgfence agent status --state-dir ${fleet.agentStateDir}; cgfence run --state-dir ${fleet.agentStateDir} -- COMMAND)`,
        '',
        'Try this in another shell:',
        `  export CGFENCE_SERVER=${fleet.apiUrl} CGFENCE_TOKEN=$(cat ${fleet.tokenFile})`,
        '  cgfence blocklist create deploy-safety --description "what deploys must not depend on"',
        "  printf 'github.com\\n*.githubusercontent.com\\n' | cgfence blocklist commit deploy-safety --file - -m 'first list'",
        '  cgfence blocklist assign deploy-safety --version 1',
        '  cgfence hosts',
        `  cgfence run --state-dir ${fleet.agentStateDir} -- sh -c 'getent hosts github.com || echo "github.com is blocked for this deploy"'`,
        '',
        'Ctrl-C stops everything.',
      ]);
      await new Promise<void>((done) => {
        const stop = () => {
          printLines(['', 'stopping the local fleet…']);
          void fleet.stop().then(done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
  return cmd;
}
