import { Command, Option } from 'commander';
import { ttlMs, type EnrollTokenView } from '@cgfence/proto';
import { client, globals } from '../context';
import { CliError, EXIT_USAGE } from '../errors';
import { printJson, printLines, printTable } from '../output';

const collect = (v: string, all: string[]): string[] => [...all, v];

function labelsOf(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const p of pairs) {
    const at = p.indexOf('=');
    if (at <= 0) throw new CliError(`--label ${JSON.stringify(p)}: expected key=value`, EXIT_USAGE);
    labels[p.slice(0, at)] = p.slice(at + 1);
  }
  return labels;
}

/** `cgfence hosts enroll-token create|list|revoke`: join tokens new hosts enroll with (operator). */
export function enrollTokenCommand(): Command {
  const cmd = new Command('enroll-token').description('join tokens new hosts enroll with: cgfence agent --enroll URL --enroll-token TOKEN (operator)');
  cmd
    .command('create')
    .description('create a token; its secret is printed once')
    .option('--cohort <name>', 'the enrolled hosts join this cohort')
    .option('--label <key=value>', 'label of the enrolled hosts (repeatable)', collect, [])
    .option('--ttl <duration>', 'how long the token can be used: 30m, 24h, 7d', '24h')
    .addOption(new Option('--uses <n>', 'how many hosts may enroll with it').default('1'))
    .option('--description <text>', 'what it is for')
    .action(async (o: { cohort?: string; label: string[]; ttl: string; uses: string; description?: string }, self: Command) => {
      if (ttlMs(o.ttl) === undefined) throw new CliError(`--ttl ${JSON.stringify(o.ttl)}: expected a duration like 30m, 24h or 7d`, EXIT_USAGE);
      if (!/^\d+$/.test(o.uses)) throw new CliError(`--uses ${JSON.stringify(o.uses)}: expected a whole number`, EXIT_USAGE);
      // `hosts` has a --cohort filter of its own, which may take the flag first.
      const cohort = o.cohort ?? self.optsWithGlobals<{ cohort?: string }>().cohort;
      const body = { cohort, labels: labelsOf(o.label), ttl: o.ttl, uses: Number(o.uses), description: o.description };
      const r = await client(self).post<{ token: EnrollTokenView; secret: string }>('enroll-tokens', body);
      if (globals(self).json) return printJson(r);
      printLines([
        `enrollment token ${r.token.id}: ${r.token.usesAllowed} use(s) until ${r.token.expiresAt}`,
        `secret (shown once): ${r.secret}`,
        `on a new host: cgfence agent --enroll ${globals(self).server} --enroll-token-file FILE  (or --enroll-token TOKEN)`,
      ]);
    });
  cmd
    .command('list')
    .description('list tokens with their uses and status')
    .action(async (_o: unknown, self: Command) => {
      const all = await client(self).get<EnrollTokenView[]>('enroll-tokens');
      if (globals(self).json) return printJson(all);
      printTable(
        ['ID', 'STATUS', 'USED', 'EXPIRES', 'LABELS', 'CREATED BY'],
        all.map((t) => [t.id, t.status, `${t.used}/${t.usesAllowed}`, t.expiresAt, Object.entries(t.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-', t.createdBy]),
      );
    });
  cmd
    .command('revoke')
    .description('revoke a token: no host can enroll with it any more')
    .argument('<id>')
    .action(async (id: string, _o: unknown, self: Command) => {
      await client(self).delete(`enroll-tokens/${encodeURIComponent(id)}`);
      if (globals(self).json) return printJson({ revoked: id });
      printLines([`revoked ${id}`]);
    });
  return cmd;
}

/** `cgfence hosts remove HOST`: revoke the host's NATS credentials; it is disconnected and cannot reconnect. */
export function removeHostCommand(): Command {
  return new Command('remove')
    .description("remove a host: its NATS credentials are revoked (disconnected at once, refused after); it must enroll again to come back")
    .argument('<host>')
    .action(async (hostId: string, _o: unknown, self: Command) => {
      const r = await client(self).deleteJson<{ hostId: string; revokedKeys: string[] }>(`hosts/${encodeURIComponent(hostId)}`);
      if (globals(self).json) return printJson(r);
      printLines([`removed ${r.hostId}; revoked ${r.revokedKeys.length} NATS key(s)${r.revokedKeys.length === 0 ? ' (none recorded for it: a host still on an nkey of auth.conf is removed with cgfence nats remove-host; one migrated with --no-register, record its key with cgfence nats migrate-from-nkeys first)' : ''}`]);
    });
}
