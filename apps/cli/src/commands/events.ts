import { Command, InvalidArgumentError, Option } from 'commander';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { AggregateView, BlockEventView, EventsPage, HostView, ReplayView, RunsPage, RunView } from '@cgfence/proto';
import { client, globals, serverUrlOf, tokenOf } from '../context';
import { CliError } from '../errors';
import { printJson, printLines, printTable } from '../output';

const FILTERS: [flag: string, param: string, help: string][] = [
  ['--from <time>', 'from', 'since an ISO time or a duration back from now (30m, 24h, 7d)'],
  ['--to <time>', 'to', 'before an ISO time or a duration back from now'],
  ['--host <id>', 'host', 'one host'],
  ['--cohort <name>', 'cohort', 'one cohort'],
  ['--run <id>', 'run', 'one run'],
  ['--domain <name>', 'domain', 'exact name, or *.suffix for every name under it'],
  ['--pid <n>', 'pid', 'process id'],
  ['--cmd <text>', 'cmd', 'substring of the command line'],
  ['--action <a>', 'action', 'blocked, audited or alert'],
  ['--method <m>', 'method', 'dns or ip'],
  ['--blocklist <name>', 'blocklist', 'events under this blocklist'],
  ['--version <n>', 'version', 'events under this version of it'],
];

const collect = (v: string, acc: string[]): string[] => {
  if (!v.includes('=')) throw new InvalidArgumentError('must be key=value');
  return [...acc, v];
};

function withFilters(cmd: Command): Command {
  for (const [flag, , help] of FILTERS) cmd.option(flag, help);
  return cmd.option('--label <k=v>', 'run label (repeatable; all must match)', collect, []);
}

function filterParams(o: Record<string, unknown>): URLSearchParams {
  const q = new URLSearchParams();
  for (const [, param] of FILTERS) {
    const v = o[param];
    if (typeof v === 'string') q.set(param, v);
  }
  for (const l of (o['label'] as string[] | undefined) ?? []) q.append('label', l);
  return q;
}

/** 850 ms, 12.3 s, 4m05s, 2h03m. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 59_950) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * Nothing matched: a --host or --cohort the fleet does not know is named as
 * such (exit 1) rather than reported as "no events match".
 */
async function whyNoEvents(cmd: Command, o: Record<string, unknown>): Promise<string> {
  const api = client(cmd);
  if (typeof o['host'] === 'string') {
    try {
      await api.get<HostView>(`hosts/${encodeURIComponent(o['host'])}`);
    } catch (err) {
      if (err instanceof CliError && /\[host\.not_found\]/.test(err.message)) {
        throw new CliError(`no such host: ${o['host']} (cgfence hosts lists the fleet's host ids)`);
      }
      throw err;
    }
  }
  if (typeof o['cohort'] === 'string') {
    const hosts = await api.get<HostView[]>(`hosts?cohort=${encodeURIComponent(o['cohort'])}`);
    if (hosts.length === 0) throw new CliError(`no such cohort: no host is in cohort ${o['cohort']} (cgfence hosts shows each host's cohort)`);
  }
  return 'no events match';
}

const short = (s: string | null, n: number): string => (s === null ? '-' : s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The TARGET cell: the name, the destination of an IP block, or `asked -> listed` when an answer chain led to a listed name. */
export function eventTarget(e: Pick<BlockEventView, 'qname' | 'destination' | 'cnameTarget'>): string {
  return e.cnameTarget ? `${e.qname ?? '-'} -> ${e.cnameTarget}` : (e.qname ?? e.destination ?? '-');
}

function printEvents(events: BlockEventView[]): void {
  printTable(
    ['TIME', 'HOST', 'RUN', 'ACTION', 'METHOD', 'TARGET', 'ENTRY', 'VERSION', 'PROCESS'],
    events.map((e) => [
      e.time.slice(0, 23).replace('T', ' '),
      e.host,
      e.runId ?? '-',
      e.action,
      e.method,
      eventTarget(e),
      e.entry ?? '-',
      e.policyVersion ?? '-',
      `${e.pid ?? '-'} ${short(e.cmdline ?? e.comm, 50)}`,
    ]),
  );
}

/** Streams an export (ndjson/csv) from the server to stdout. */
async function streamExport(cmd: Command, path: string): Promise<void> {
  const g = globals(cmd);
  const server = serverUrlOf(g.server);
  const token = tokenOf(g);
  const url = new URL(path, server.endsWith('/') ? server : `${server}/`);
  let res: Response;
  try {
    res = await fetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  } catch (err) {
    throw new CliError(`cannot reach the policy server at ${g.server}: ${(err as Error).message}`);
  }
  if (!res.ok || !res.body) {
    const body = await res.text();
    let message = body.slice(0, 300);
    try {
      message = (JSON.parse(body) as { message: string }).message;
    } catch {
      /* not JSON */
    }
    throw new CliError(`${message} [${res.status}]`);
  }
  await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>), process.stdout);
}

export function eventsCommand(): Command {
  const cmd = new Command('events').description('the block-event history the agents report: query, export, top');

  withFilters(
    cmd
      .command('query')
      .description('block events, newest first (table, json, or a streamed ndjson/csv export)')
      .addOption(new Option('--format <f>', 'output format').choices(['table', 'json', 'ndjson', 'csv']).default('table'))
      .option('--limit <n>', 'events per page (1-1000)', '50')
      .option('--all', 'every matching event (follows the pages; ndjson/csv stream the whole set)'),
  ).action(async (o: Record<string, unknown> & { format: string; limit: string; all?: boolean }, self: Command) => {
    const q = filterParams(o);
    const format = globals(self).json ? 'json' : o.format;
    if (format === 'ndjson' || format === 'csv') {
      q.set('format', format);
      if (!o.all) q.set('limit', o.limit);
      return streamExport(self, `events?${q.toString()}`);
    }
    q.set('limit', o.all ? '1000' : o.limit);
    const events: BlockEventView[] = [];
    let next: string | null = null;
    do {
      if (next) q.set('after', next);
      const page: EventsPage = await client(self).get<EventsPage>(`events?${q.toString()}`);
      events.push(...page.events);
      next = o.all ? page.next : null;
    } while (next);
    if (format === 'json') return printJson(events);
    if (events.length === 0) return printLines([await whyNoEvents(self, o)]);
    printEvents(events);
  });

  withFilters(
    cmd
      .command('top')
      .description('counts of block events by domain, host, cohort, version, command or label:<key>')
      .requiredOption('--by <key>', 'domain | host | cohort | version | command | action | label:<key>')
      .addOption(new Option('--bucket <b>', 'also per time bucket').choices(['minute', 'hour', 'day']))
      .option('--limit <n>', 'rows', '20'),
  ).action(async (o: Record<string, unknown> & { by: string; bucket?: string; limit: string }, self: Command) => {
    const q = filterParams(o);
    q.set('by', o.by);
    q.set('limit', o.limit);
    if (o.bucket) q.set('bucket', o.bucket);
    const a = await client(self).get<AggregateView>(`events/aggregate?${q.toString()}`);
    if (globals(self).json) return printJson(a);
    if (a.rows.length === 0) return printLines([await whyNoEvents(self, o)]);
    const head = o.by.toUpperCase();
    printTable(a.bucket ? ['BUCKET', head, 'COUNT'] : [head, 'COUNT'], a.rows.map((r) => (a.bucket ? [r.bucket, r.key ?? '-', r.count] : [r.key ?? '-', r.count])));
  });

  return cmd;
}

export function runsCommand(): Command {
  const cmd = new Command('runs').description('runs the agents recorded (cgfence run)');
  cmd
    .command('list')
    .description('finished runs, newest first: exit code, duration, blocks, contacted domains')
    .option('--since <time>', 'runs started since (ISO time or 30m, 24h, 7d, …)', '24h')
    .option('--host <id>', 'one host')
    .option('--cohort <name>', 'one cohort')
    .option('--label <k=v>', 'run label (repeatable; all must match)', collect, [])
    .option('--limit <n>', 'at most this many runs (1-1000)', '100')
    .action(async (o: { since: string; host?: string; cohort?: string; label: string[]; limit: string }, self: Command) => {
      const q = new URLSearchParams({ since: o.since, limit: o.limit });
      if (o.host) q.set('host', o.host);
      if (o.cohort) q.set('cohort', o.cohort);
      for (const l of o.label) q.append('label', l);
      const page = await client(self).get<RunsPage>(`runs?${q.toString()}`);
      if (globals(self).json) return printJson(page);
      if (page.runs.length === 0) return printLines([`no runs since ${page.since}`]);
      printTable(
        ['STARTED', 'RUN', 'HOST', 'USER', 'EXIT', 'DURATION', 'BLOCKS', 'DOMAINS', 'LABELS', 'COMMAND'],
        page.runs.map((r) => [
          r.startedAt.slice(0, 19).replace('T', ' '),
          r.runId,
          r.host,
          r.user ?? (r.uid === null ? '-' : r.uid),
          r.signal ?? (r.exitCode === null ? '-' : r.exitCode),
          r.durationMs === null ? '-' : formatDuration(r.durationMs),
          r.audited > 0 ? `${r.blocks} (+${r.audited} audited)` : r.blocks,
          r.domains,
          Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(',') || '-',
          short(r.command, 60),
        ]),
      );
    });
  cmd
    .command('show')
    .description("a run's host, labels, start/end, exit code, block events and contacted domains")
    .argument('<id>', 'run id')
    .action(async (id: string, _o: unknown, self: Command) => {
      const r = await client(self).get<RunView>(`runs/${encodeURIComponent(id)}`);
      if (globals(self).json) return printJson(r);
      printLines([
        `run:      ${r.runId}`,
        `host:     ${r.host}${r.cohort ? ` (cohort ${r.cohort})` : ''}`,
        `labels:   ${Object.entries(r.labels).map(([k, v]) => `${k}=${v}`).join(' ') || '-'}`,
        `command:  ${r.command ?? '-'}`,
        `started:  ${r.startedAt}`,
        `ended:    ${r.endedAt ?? 'still running (no summary yet)'}${r.exitCode !== null ? `, exit ${r.exitCode}` : ''}${r.signal ? `, signal ${r.signal}` : ''}`,
        `policy:   ${r.policyVersion ?? '-'}`,
        `events:   ${r.events.total} (${r.events.blocked} blocked, ${r.events.audited} audited, ${r.events.alert} alerts)`,
        '',
      ]);
      if (r.latest.length > 0) {
        printLines(['latest block events:']);
        printEvents(r.latest);
        printLines(['']);
      }
      printLines([`contacted domains (${r.domains.length}${r.overflow ? `, ${r.overflow} more past the agent's limit` : ''}):`]);
      printTable(['DOMAIN', 'QUERIES', 'BLOCKED', 'FIRST', 'LAST'], r.domains.map((d) => [d.name, d.queries, d.blocked, d.firstSeen, d.lastSeen]));
    });
  return cmd;
}

const positive = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a whole number from 1');
  return n;
};

/** `cgfence blocklist replay NAME --version N --since 7d` (added to the blocklist command). */
export function blocklistReplayCommand(): Command {
  return new Command('replay')
    .description('which domains recorded runs contacted a version would have blocked, per run and per host')
    .argument('<name>', 'blocklist')
    .requiredOption('--version <n>', 'the version to try', positive)
    .option('--since <time>', 'runs started since (ISO time or 24h, 7d, …)', '7d')
    .action(async (name: string, o: { version: number; since: string }, self: Command) => {
      const r = await client(self).post<ReplayView>(`blocklists/${encodeURIComponent(name)}/replay`, { version: o.version, since: o.since });
      if (globals(self).json) return printJson(r);
      printLines([`${r.blocklist} v${r.version} against ${r.runsExamined} runs since ${r.since}: ${r.runs.length} runs on ${r.hosts.length} hosts would have been blocked`]);
      if (r.domains.length === 0) return;
      printLines(['']);
      printTable(['DOMAIN', 'ENTRY', 'RUNS', 'HOSTS'], r.domains.map((d) => [d.name, d.entry, d.runs, d.hosts]));
      printLines(['']);
      printTable(['HOST', 'RUNS', 'DOMAINS'], r.hosts.map((h) => [h.host, h.runs, h.domains.join(' ')]));
      if (!r.owners || r.owners.length === 0) return;
      printLines(['', 'per owner (findings it would create, or add to):']);
      printTable(
        ['OWNER', 'TEAM', 'NEW', 'ENTRY', 'FINDING', 'RUNS', 'HOSTS'],
        r.owners.flatMap((o) =>
          o.findings.map((f) => [o.owner === '' ? `(no ${o.ownerKey})` : `${o.ownerKey}=${o.owner}`, o.team, o.newFindings, f.entry, f.existing === null ? 'new' : `${f.id} (${f.existing})`, f.runs, f.hosts]),
        ),
      );
    });
}
