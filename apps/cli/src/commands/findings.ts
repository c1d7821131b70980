import { Command, InvalidArgumentError, Option } from 'commander';
import { DeliveryView, FINDING_STATES, FindingDetailView, FindingView, OwnerSetView, OwnerView, TRIGGERS } from '@cgfence/proto';
import { client, globals } from '../context';
import { printJson, printLines, printTable } from '../output';

const short = (s: string, n: number): string => (s.length > n ? `${s.slice(0, n - 1)}…` : s);
const ownerOf = (f: FindingView): string => (f.owner === '' ? `(no ${f.ownerKey})` : `${f.ownerKey}=${f.owner}`);

function printFinding(f: FindingDetailView): void {
  printLines([
    `finding:   ${f.id}`,
    `owner:     ${ownerOf(f)}${f.team ? ` (team ${f.team})` : ''}`,
    `entry:     ${f.entry}`,
    `state:     ${f.state}${f.regression ? ' (regression)' : ''}${f.fixedAt ? `, marked fixed ${f.fixedAt}` : ''}${f.acceptedUntil ? `, accepted until ${f.acceptedUntil}` : ''}`,
    `seen:      ${f.firstSeen} … ${f.lastSeen}`,
    `count:     ${f.blocked} blocked, ${f.audited} audited`,
    `names:     ${f.names.join(' ') || '-'}`,
    `hosts:     ${f.hosts.join(' ') || '-'}`,
    `cohorts:   ${f.cohorts.join(' ') || '-'}`,
    `versions:  ${f.versions.join(' ') || '-'}`,
    `runs:      ${f.runs.join(' ') || '-'}`,
    'commands:',
    ...(f.commands.length ? f.commands.map((c) => `  ${c}`) : ['  -']),
    '',
    'history:',
  ]);
  printTable(['AT', 'BY', 'WHAT', 'NOTE'], f.history.map((h) => [h.at, h.actor, h.type.replace(/^Finding/, ''), h.note]));
}

export function findingsCommand(): Command {
  const cmd = new Command('findings').description("each owner's dependencies on listed names, and their lifecycle");
  cmd
    .command('list')
    .description('findings, most recently seen first')
    .option('--owner <owner>', 'owner label value (api) or key=value (service=api)')
    .addOption(new Option('--state <state>', 'only in this state').choices(FINDING_STATES))
    .option('--since <time>', 'seen since an ISO time or a duration back (7d)')
    .option('--entry <entry>', 'one listed entry')
    .option('--limit <n>', 'at most this many', '200')
    .action(async (o: { owner?: string; state?: string; since?: string; entry?: string; limit: string }, self: Command) => {
      const q = new URLSearchParams();
      for (const k of ['owner', 'state', 'since', 'entry', 'limit'] as const) if (o[k] !== undefined) q.set(k, o[k]);
      const all = await client(self).get<FindingView[]>(`findings?${q.toString()}`);
      if (globals(self).json) return printJson(all);
      if (all.length === 0) return printLines(['no findings match']);
      printTable(
        ['ID', 'OWNER', 'TEAM', 'ENTRY', 'STATE', 'BLOCKED', 'AUDITED', 'HOSTS', 'LAST SEEN'],
        all.map((f) => [f.id, ownerOf(f), f.team, f.entry, `${f.state}${f.regression ? '*' : ''}`, f.blocked, f.audited, f.hosts.length, f.lastSeen]),
      );
    });
  cmd
    .command('show')
    .description('a finding with its example names, hosts, runs and commands, and its history')
    .argument('<id>')
    .action(async (id: string, _o: unknown, self: Command) => {
      const f = await client(self).get<FindingDetailView>(`findings/${encodeURIComponent(id)}`);
      if (globals(self).json) return printJson(f);
      printFinding(f);
    });
  const transition = (name: string, path: string, description: string): void => {
    const c = cmd
      .command(name)
      .description(description)
      .argument('<id>')
      .requiredOption('--reason <text>', 'why (kept in the history with your name)');
    if (name === 'accept') c.option('--until <when>', 'a span (30d, 12h) or an ISO time; it reopens then', '30d');
    c.action(async (id: string, o: { reason: string; until?: string }, self: Command) => {
      const f = await client(self).post<FindingDetailView>(`findings/${encodeURIComponent(id)}/${path}`, { reason: o.reason, ...(o.until ? { until: o.until } : {}) });
      if (globals(self).json) return printJson(f);
      printLines([`${f.id} (${ownerOf(f)} on ${f.entry}) is ${f.state}${f.fixedAt ? ', marked fixed' : ''}${f.acceptedUntil ? ` until ${f.acceptedUntil}` : ''}`]);
    });
  };
  transition('ack', 'ack', 'acknowledge: someone owns it');
  transition('resolve', 'resolve', 'mark fixed: it resolves once no occurrence follows for the fix quiet period');
  transition('accept', 'accept', 'accept a known dependency until a time; it reopens then');
  return cmd;
}

const ownerArg = (v: string): { key: string; value: string } => {
  const eq = v.indexOf('=');
  if (eq <= 0 || eq === v.length - 1) throw new InvalidArgumentError('must be key=value, like service=api');
  return { key: v.slice(0, eq), value: v.slice(eq + 1) };
};

function printOwners(all: OwnerView[]): void {
  printTable(
    ['OWNER', 'TEAM', 'TARGET', 'FORMAT', 'DIGEST', 'URL', 'TRIGGERS'],
    all.flatMap((o) =>
      o.targets.length === 0
        ? [[`${o.key}=${o.value}`, o.team, '-', '-', '-', '-', '-']]
        : o.targets.map((t) => [`${o.key}=${o.value}`, o.team, t.id, t.format, t.digest, short(t.url, 60), t.triggers.join(',')]),
    ),
  );
}

export function ownersCommand(): Command {
  const cmd = new Command('owners').description('who owns a run label value, and where their notifications go');
  cmd
    .command('set')
    .description('set the team of an owner and add or change a webhook target (a new target\'s secret is printed once)')
    .argument('<key=value>', 'the run label and its value, e.g. service=api', ownerArg)
    .option('--team <team>', 'the team that owns it')
    .option('--webhook <url>', 'send notifications here (http or https)')
    .addOption(new Option('--format <f>', 'payload format').choices(['json', 'slack']).default('json'))
    .option('--triggers <list>', `comma-separated, from: ${TRIGGERS.join(', ')}`)
    .option('--secret <secret>', 'HMAC key for the signature (default: generated)')
    .option('--digest <period>', 'gather finding notifications into one message per period (1h, 1d); "off" to send each')
    .action(async (owner: { key: string; value: string }, o: { team?: string; webhook?: string; format: string; triggers?: string; secret?: string; digest?: string }, self: Command) => {
      const webhook = o.webhook
        ? {
            url: o.webhook, format: o.format,
            ...(o.triggers ? { triggers: o.triggers.split(',').map((t) => t.trim()).filter(Boolean) } : {}),
            ...(o.secret ? { secret: o.secret } : {}),
            ...(o.digest ? { digest: o.digest === 'off' ? null : o.digest } : {}),
          }
        : undefined;
      const r = await client(self).post<OwnerSetView>('owners', { ...owner, ...(o.team ? { team: o.team } : {}), ...(webhook ? { webhook } : {}) });
      if (globals(self).json) return printJson(r);
      printOwners([r.owner]);
      if (r.secret) printLines(['', `signing secret of ${r.secret.targetId} (shown once): ${r.secret.secret}`]);
    });
  cmd
    .command('list')
    .description('owners, their teams and targets')
    .action(async (_o: unknown, self: Command) => {
      const all = await client(self).get<OwnerView[]>('owners');
      if (globals(self).json) return printJson(all);
      if (all.length === 0) return printLines(['no owners set']);
      printOwners(all);
    });
  cmd
    .command('remove-target')
    .description('stop sending to a target')
    .argument('<key=value>', 'the owner', ownerArg)
    .argument('<target>', 'target id (tgt_…)')
    .action(async (owner: { key: string; value: string }, target: string, _o: unknown, self: Command) => {
      const r = await client(self).delete(`owners/${encodeURIComponent(owner.key)}/${encodeURIComponent(owner.value)}/targets/${encodeURIComponent(target)}`);
      if (globals(self).json) return printJson(r ?? { removed: target });
      printLines([`removed ${target}`]);
    });
  return cmd;
}

export function notificationsCommand(): Command {
  const cmd = new Command('notifications').description('webhook deliveries and the dead-letter list');
  cmd
    .command('list')
    .description('deliveries, newest first')
    .addOption(new Option('--status <s>', 'only these (dead: the dead-letter list; held: waiting for a digest)').choices(['pending', 'delivered', 'dead', 'held', 'digested']))
    .option('--target <id>', 'one target')
    .option('--limit <n>', 'at most this many', '100')
    .action(async (o: { status?: string; target?: string; limit: string }, self: Command) => {
      const q = new URLSearchParams({ limit: o.limit });
      if (o.status) q.set('status', o.status);
      if (o.target) q.set('target', o.target);
      const all = await client(self).get<DeliveryView[]>(`notifications/deliveries?${q.toString()}`);
      if (globals(self).json) return printJson(all);
      if (all.length === 0) return printLines(['no deliveries match']);
      printTable(
        ['ID', 'TARGET', 'TRIGGER', 'STATUS', 'ATTEMPTS', 'CREATED', 'LAST ERROR', 'SUBJECT'],
        all.map((d) => [d.id, d.targetId, d.trigger, d.status, d.attempts, d.createdAt, d.lastError ? short(d.lastError, 40) : null, short(d.subject, 60)]),
      );
    });
  cmd
    .command('retry')
    .description('send a dead delivery again')
    .argument('<id>', 'delivery id')
    .action(async (id: string, _o: unknown, self: Command) => {
      const d = await client(self).post<DeliveryView>(`notifications/deliveries/${encodeURIComponent(id)}/retry`, {});
      if (globals(self).json) return printJson(d);
      printLines([`${d.id} is ${d.status}`]);
    });
  return cmd;
}
