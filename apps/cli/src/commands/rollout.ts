import { setTimeout as sleep } from 'node:timers/promises';
import { Command, InvalidArgumentError } from 'commander';
import { MultiBar, type SingleBar } from 'cli-progress';
import { readFileSync } from 'node:fs';
import type { RolloutActionRequest, RolloutHistoryEntry, RolloutView } from '@cgfence/proto';
import type { ApiClient } from '../client/api-client';
import { client, globals } from '../context';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from '../errors';
import { printJson, printLines, printTable } from '../output';
import { parsePlan } from './rollout-plan';
import {
  barPayload,
  headerLine,
  HISTORY_HEADERS,
  historyRows,
  isActive,
  LIST_HEADERS,
  listRow,
  nextSteps,
  PLAN_HEADERS,
  planRows,
  STAGE_HEADERS,
  stageLabel,
  stageLine,
  stageRows,
  summaryLines,
  watchOutcome,
} from './rollout-render';

const enc = encodeURIComponent;

const positiveInt =
  (what: string, min: number) =>
  (v: string): number => {
    if (!/^\d+$/.test(v) || Number(v) < min) throw new InvalidArgumentError(`${what} must be a whole number of at least ${min}`);
    return Number(v);
  };

/** The server's error code of a failed request (the client ends its message with `[code]`). */
export function errorCode(err: unknown): string | undefined {
  if (!(err instanceof CliError)) return undefined;
  return /\[([\w.-]+)\](?: — .*)?$/.exec(err.message)?.[1];
}

function readPlanFile(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file === '-' ? 'standard input' : file}: ${(err as Error).message}`, EXIT_USAGE);
  }
}

const WATCH_HELP = [
  '',
  'Exit codes (when the rollout ends):',
  '  0    completed: every stage is done',
  '  1    rolled back (a gate failed and the plan rolls back), or the rollout could not be read',
  '  3    aborted by an operator',
  '  4    paused (a gate failed and the plan pauses, or an operator paused it): resume or abort it;',
  '       --until-done keeps watching through pauses instead',
  '  130  interrupted (Ctrl-C); the rollout goes on',
].join('\n');

interface WatchOptions {
  intervalMs: number;
  untilDone: boolean;
}


/** Polls a rollout until it ends; its exit code says how (see WATCH_HELP). */
async function watch(api: ApiClient, id: string, o: WatchOptions, json: boolean): Promise<void> {
  const get = (): Promise<RolloutView> => api.get<RolloutView>(`rollouts/${enc(id)}`);
  let view = await get(); // a wrong id fails here, at once
  const display = json ? jsonDisplay() : process.stdout.isTTY ? barDisplay(view) : lineDisplay();
  const onSigint = (): void => {
    display.stop();
    process.stderr.write(`stopped watching; rollout ${id} goes on (cgfence rollout status ${id})\n`);
    process.exit(130);
  };
  process.once('SIGINT', onSigint);
  let failures = 0;
  try {
    for (;;) {
      display.show(view, new Date());
      const end = watchOutcome(view, o.untilDone);
      if (end) {
        display.stop();
        if (end.exitCode === 0) return printLines(end.lines);
        throw new CliError(end.lines[0] ?? `rollout ${id} ended ${view.status}`, end.exitCode, end.lines.slice(1));
      }
      await sleep(o.intervalMs);
      try {
        view = await get();
        failures = 0;
      } catch (err) {
        // A restarting server is no reason to stop watching; a lasting outage is.
        if (++failures >= 5) {
          display.stop();
          throw err;
        }
        display.note(`could not read the rollout (${(err as Error).message}); retrying`);
      }
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

interface Display {
  show(v: RolloutView, now: Date): void;
  note(text: string): void;
  stop(): void;
}

/** --json: one view per line (NDJSON), whenever it changed. */
function jsonDisplay(): Display {
  let last = '';
  return {
    show(v) {
      const text = JSON.stringify(v);
      if (text !== last) process.stdout.write(`${text}\n`);
      last = text;
    },
    note: (text) => process.stderr.write(`${text}\n`),
    stop: () => undefined,
  };
}

const clock = (now: Date): string => now.toISOString().slice(11, 19);

/** Not a terminal (a CI log, a pipe): one line per change, no bars. */
function lineDisplay(): Display {
  let header = '';
  let steps = '';
  const lines = new Map<number, string>();
  return {
    show(v, now) {
      const h = headerLine(v);
      if (h !== header) printLines([`${clock(now)} ${h}`]);
      header = h;
      for (const s of v.stages) {
        const key = stageLine(v, s);
        if (lines.get(s.index) !== key) printLines([`${clock(now)} ${stageLine(v, s, now)}`]);
        lines.set(s.index, key);
      }
      const next = nextSteps(v);
      // A pause ends the watch with its own hints; an approval awaited does not.
      if (next.join() !== steps && v.status === 'running') printLines(next.map((l) => `${clock(now)} ${l}`));
      steps = next.join();
    },
    note: (text) => printLines([`${clock(new Date())} ${text}`]),
    stop: () => undefined,
  };
}

/** A terminal: a header line and one progress bar per stage, redrawn in place. */
function barDisplay(first: RolloutView): Display {
  let prev = first;
  const width = Math.max(...first.stages.map((s) => `${s.index + 1}/${first.stages.length} ${s.name}`.length));
  const multi = new MultiBar({
    stream: process.stdout,
    format: ' {label} {bar} {value}/{total} hosts  {detail}',
    barsize: 24,
    hideCursor: true,
    emptyOnZero: true,
    autopadding: true,
    clearOnComplete: false,
    stopOnComplete: false,
    linewrap: false,
  });
  const header = multi.create(1, 0, { text: headerLine(first) }, { format: '{text}' });
  const bars = new Map<number, SingleBar>();
  for (const s of first.stages) {
    const p = barPayload(first, s, new Date());
    bars.set(s.index, multi.create(p.total, p.value, { label: p.label.padEnd(width), detail: p.detail }));
  }
  if (first.status === 'running') for (const l of nextSteps(first)) multi.log(`${l}\n`);
  let stopped = false;
  return {
    show(v, now) {
      // Changes of status and of phase scroll above the bars, as a log of the watch.
      if (v.status !== prev.status) multi.log(`${clock(now)} ${headerLine(v)}\n`);
      for (const s of v.stages) if (s.phase !== prev.stages[s.index]?.phase) multi.log(`${clock(now)} ${stageLine(v, s)}\n`);
      const next = nextSteps(v);
      if (next.join() !== nextSteps(prev).join() && v.status === 'running') for (const l of next) multi.log(`${clock(now)} ${l}\n`);
      prev = v;
      header.update(0, { text: headerLine(v) });
      for (const s of v.stages) {
        const p = barPayload(v, s, now);
        const bar = bars.get(s.index);
        if (!bar) continue;
        bar.setTotal(p.total);
        bar.update(p.value, { label: p.label.padEnd(width), detail: p.detail });
      }
      multi.update();
    },
    note: (text) => multi.log(`${clock(new Date())} ${text}\n`),
    stop() {
      if (stopped) return;
      stopped = true;
      multi.stop();
    },
  };
}

/** POST an action; a refusal (409 `rollout.state_conflict`) comes back as the server's message, exit 1. */
async function act(self: Command, id: string, action: 'pause' | 'resume' | 'promote' | 'abort', body: RolloutActionRequest): Promise<RolloutView> {
  return client(self).post<RolloutView>(`rollouts/${enc(id)}/${action}`, body);
}

function printView(v: RolloutView, first: string): void {
  printLines([first, ...nextSteps(v)]);
}

export function rolloutCommand(): Command {
  const cmd = new Command('rollout').description('take a blocklist version to the fleet stage by stage, with gates (plan: docs/examples/rollout-plan.yaml)');

  cmd
    .command('start')
    .description('start a staged rollout from a plan file (YAML or JSON); the plan is checked before anything is sent')
    .requiredOption('-p, --plan <file>', 'the plan, YAML or JSON ("-" for standard input); see docs/examples/rollout-plan.yaml')
    .option('-w, --watch', 'then watch it until it ends (exit codes as `rollout watch`)')
    .option('--interval-ms <ms>', 'with --watch: how often to poll', positiveInt('--interval-ms', 100), 1000)
    .option('--until-done', 'with --watch: keep watching through pauses')
    .addHelpText('after', WATCH_HELP.replace('Exit codes (when the rollout ends)', 'Exit codes: 2 for a plan file that cannot be read or is invalid; with --watch, when the rollout ends'))
    .action(async (o: { plan: string; watch?: boolean; intervalMs: number; untilDone?: boolean }, self: Command) => {
      const source = o.plan === '-' ? 'standard input' : o.plan;
      const parsed = parsePlan(readPlanFile(o.plan));
      if (!parsed.ok) throw new CliError(`invalid rollout plan in ${source}:`, EXIT_USAGE, parsed.problems);
      const api = client(self);
      const json = globals(self).json;
      let v: RolloutView;
      try {
        v = await api.post<RolloutView>('rollouts', parsed.input);
      } catch (err) {
        if (errorCode(err) === 'rollout.active_exists' && err instanceof CliError) {
          throw new CliError(err.message, err.exitCode, [...err.details, `see: cgfence rollout list --blocklist ${parsed.plan.blocklist} --active`]);
        }
        throw err;
      }
      if (json && !o.watch) return printJson(v);
      if (!json) {
        const from = v.previousVersion === null ? '' : ` (from v${v.previousVersion})`;
        printLines([`started rollout ${v.id}: ${v.blocklist} v${v.version}${from} in ${v.stages.length} stages; on a failed gate: ${v.onFailure}`, '']);
        printTable(PLAN_HEADERS, planRows(parsed.plan));
        printLines(['']);
        if (!o.watch) return printLines([`watch it: cgfence rollout watch ${v.id}`]);
      }
      await watch(api, v.id, { intervalMs: o.intervalMs, untilDone: o.untilDone === true }, json);
    });

  cmd
    .command('list')
    .description('rollouts, newest first')
    .option('-b, --blocklist <name>', 'only rollouts of this blocklist')
    .option('--active', 'only running and paused rollouts')
    .action(async (o: { blocklist?: string; active?: boolean }, self: Command) => {
      const q = new URLSearchParams();
      if (o.blocklist) q.set('blocklist', o.blocklist);
      let all = await client(self).get<RolloutView[]>(`rollouts${q.size > 0 ? `?${q.toString()}` : ''}`);
      // Active is running or paused: filtered here, as a paused rollout still holds its blocklist.
      if (o.active) all = all.filter(isActive);
      if (globals(self).json) return printJson(all);
      if (all.length === 0) return printLines([o.active || o.blocklist ? 'no rollouts match' : 'no rollouts yet (cgfence rollout start --plan FILE)']);
      printTable(LIST_HEADERS, all.map(listRow));
    });

  cmd
    .command('status')
    .description('a rollout and its stages: hosts, gates, soak; --history for who did what when')
    .argument('<id>')
    .option('--history', 'also the history of the rollout, oldest first (with --json: {rollout, history})')
    .action(async (id: string, o: { history?: boolean }, self: Command) => {
      const api = client(self);
      const v = await api.get<RolloutView>(`rollouts/${enc(id)}`);
      const history = o.history ? await api.get<RolloutHistoryEntry[]>(`rollouts/${enc(id)}/history`) : undefined;
      if (globals(self).json) return printJson(history ? { rollout: v, history } : v);
      printLines([...summaryLines(v), '']);
      printTable(STAGE_HEADERS, stageRows(v, new Date()));
      const next = nextSteps(v);
      if (next.length > 0) printLines(['', ...next]);
      if (history) {
        printLines(['']);
        printTable(HISTORY_HEADERS, historyRows(history));
      }
    });

  cmd
    .command('watch')
    .description('live progress of a rollout, one bar per stage, until it ends (one line per change when not on a terminal)')
    .argument('<id>')
    .option('--interval-ms <ms>', 'how often to poll', positiveInt('--interval-ms', 100), 1000)
    .option('--until-done', 'keep watching through pauses, until it completes, rolls back or is aborted')
    .addHelpText('after', WATCH_HELP)
    .action(async (id: string, o: { intervalMs: number; untilDone?: boolean }, self: Command) => {
      await watch(client(self), id, { intervalMs: o.intervalMs, untilDone: o.untilDone === true }, globals(self).json);
    });

  cmd
    .command('pause')
    .description('stop at the current stage: no stage moves on until resumed (hosts keep what they have)')
    .argument('<id>')
    .option('-r, --reason <text>', 'why; shown in status and history')
    .action(async (id: string, o: { reason?: string }, self: Command) => {
      const v = await act(self, id, 'pause', o.reason ? { reason: o.reason } : {});
      if (globals(self).json) return printJson(v);
      printView(v, `paused rollout ${v.id} at stage ${stageLabel(v)}`);
    });

  cmd
    .command('resume')
    .description('go on with a paused rollout (the current phase starts over: its timeouts count from now)')
    .argument('<id>')
    .action(async (id: string, _o: unknown, self: Command) => {
      const v = await act(self, id, 'resume', {});
      if (globals(self).json) return printJson(v);
      printView(v, `resumed rollout ${v.id} at stage ${stageLabel(v)}: ${v.stages[v.currentStage]?.phase ?? v.status}`);
    });

  cmd
    .command('promote')
    .description('move a rollout on to its next stage (after the current stage converged, e.g. one awaiting approval)')
    .argument('<id>')
    .option('--stage <n>', 'the stage (1-based) you are promoting; default: the current one. Refused if someone promoted it already', positiveInt('--stage', 1))
    .action(async (id: string, o: { stage?: number }, self: Command) => {
      const api = client(self);
      // Send the stage we saw, so two operators promoting at once make one promotion.
      const stage = o.stage !== undefined ? o.stage - 1 : (await api.get<RolloutView>(`rollouts/${enc(id)}`)).currentStage;
      let v: RolloutView;
      try {
        v = await act(self, id, 'promote', { stage });
      } catch (err) {
        if (errorCode(err) === 'rollout.stage_moved') {
          const now = await api.get<RolloutView>(`rollouts/${enc(id)}`).catch(() => undefined);
          const at = now ? `; it is now at stage ${stageLabel(now)} (${now.status})` : '';
          throw new CliError(`someone promoted rollout ${id} past stage ${stage + 1} already${at}: nothing done`, EXIT_FAILURE, [`see: cgfence rollout status ${id} --history`]);
        }
        throw err;
      }
      if (globals(self).json) return printJson(v);
      const what = v.status === 'completed' ? 'the rollout completed' : `now at stage ${stageLabel(v)}: ${v.stages[v.currentStage]?.phase ?? v.status}`;
      printView(v, `promoted rollout ${v.id} past stage ${stageLabel(v, stage)}; ${what}`);
    });

  cmd
    .command('abort')
    .description('stop a running or paused rollout for good')
    .argument('<id>')
    .option('-r, --reason <text>', 'why; shown in status and history')
    .action(async (id: string, o: { reason?: string }, self: Command) => {
      const v = await act(self, id, 'abort', o.reason ? { reason: o.reason } : {});
      if (globals(self).json) return printJson(v);
      printLines([`aborted rollout ${v.id} at stage ${stageLabel(v)}${v.reason ? `: ${v.reason}` : ''}`]);
    });

  return cmd;
}
