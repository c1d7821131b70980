// How rollouts look in the terminal. Pure: every function takes the view (and
// the time, where a countdown shows) and returns text, so tests need no server.
import type { GateState, RolloutHistoryEntry, RolloutPlan, RolloutStatus, RolloutView, StagePlan, StageView } from '@cgfence/proto';

/** ISO time without the milliseconds. */
export function fmtTime(iso: string | null | undefined): string {
  if (!iso) return '-';
  return iso.replace(/\.\d+Z$/, 'Z');
}

/** 45s, 4m12s, 1h05m. */
export function fmtDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** "2/3 quarter": the current stage, 1-based, of how many. */
export function stageLabel(v: RolloutView, index = v.currentStage): string {
  const s = v.stages[index];
  return `${index + 1}/${v.stages.length}${s ? ` ${s.name}` : ''}`;
}

export const LIST_HEADERS = ['ID', 'BLOCKLIST', 'VERSION', 'STATUS', 'STAGE', 'STARTED', 'BY'];

export function listRow(v: RolloutView): string[] {
  const version = v.previousVersion === null ? `v${v.version}` : `v${v.previousVersion}→v${v.version}`;
  return [v.id, v.blocklist, version, v.status, stageLabel(v), fmtTime(v.startedAt), v.startedBy];
}

/** A paused or running rollout still holds its blocklist (hosts follow its stages). */
export const isActive = (v: { status: RolloutStatus }): boolean => v.status === 'running' || v.status === 'paused';

const GATE_NAMES: [keyof StageView['gates'], string][] = [
  ['convergence', 'conv'],
  ['failures', 'fail'],
  ['blockRate', 'rate'],
  ['approval', 'appr'],
];

/** "conv=passed fail=passed rate=pending(0.10→0.12/min)": the gates that apply to the stage (`rates`: with the block rates). */
export function gatesCell(s: StageView, rates = true): string {
  const parts: string[] = [];
  for (const [key, short] of GATE_NAMES) {
    const state: GateState = s.gates[key];
    if (state === 'n/a') continue;
    let part = `${short}=${state}`;
    if (key === 'blockRate' && s.blockRate && rates) part += `(${s.blockRate.before.toFixed(2)}→${s.blockRate.during.toFixed(2)}/min)`;
    parts.push(part);
  }
  return parts.length > 0 ? parts.join(' ') : '-';
}

/** When the soak ends, with the time left while the stage soaks. */
export function soakCell(s: StageView, now: Date): string {
  if (!s.soakEndsAt) return '-';
  const left = Date.parse(s.soakEndsAt) - now.getTime();
  return s.phase === 'soaking' && left > 0 ? `${fmtTime(s.soakEndsAt)} (in ${fmtDuration(left)})` : fmtTime(s.soakEndsAt);
}

export const STAGE_HEADERS = ['STAGE', 'MODE', 'PHASE', 'HOSTS', 'FAILED', 'MISSING', 'GATES', 'SOAK ENDS'];

/** The phase of a stage, and `paused` on the stage a paused rollout stopped at. */
function phaseOf(v: RolloutView, s: StageView): string {
  return v.status === 'paused' && s.index === v.currentStage && s.phase !== 'done' ? `${s.phase} (paused)` : s.phase;
}

export function stageRows(v: RolloutView, now: Date): string[][] {
  return v.stages.map((s) => {
    const pending = s.phase === 'pending';
    return [
      `${s.index + 1} ${s.name}`,
      s.mode,
      phaseOf(v, s),
      pending ? '-' : `${s.hosts.confirmed}/${s.hosts.selected}`,
      pending ? '-' : String(s.hosts.failed),
      pending ? '-' : String(s.hosts.missing),
      gatesCell(s),
      soakCell(s, now),
    ];
  });
}

/** What an operator can do next, as commands to copy. */
export function nextSteps(v: RolloutView): string[] {
  if (v.status === 'paused') return [`resume: cgfence rollout resume ${v.id}`, `abort:  cgfence rollout abort ${v.id}`];
  if (v.status === 'running' && v.stages[v.currentStage]?.phase === 'awaiting-approval') {
    return [`stage ${stageLabel(v)} awaits approval: cgfence rollout promote ${v.id}`];
  }
  return [];
}

/** The head of `cgfence rollout status`: what, where, who, and why it stopped. */
export function summaryLines(v: RolloutView): string[] {
  const from = v.previousVersion === null ? '' : ` (from v${v.previousVersion})`;
  const where = v.status === 'completed' ? `all ${v.stages.length} stages done` : `stage ${stageLabel(v)}`;
  const lines = [
    `rollout:    ${v.id}`,
    `blocklist:  ${v.blocklist} v${v.version}${from}`,
    `status:     ${v.status}, ${where}; on a failed gate: ${v.onFailure}`,
    `started:    ${fmtTime(v.startedAt)} by ${v.startedBy}; updated ${fmtTime(v.updatedAt)}`,
  ];
  if (v.reason && v.status !== 'running' && v.status !== 'completed') lines.push(`reason:     ${v.reason}`);
  return lines;
}

/** The key data of a history event, e.g. `stage=2 gate=block-rate — 0.50 blocks per host…`. */
export function historyDetail(data: unknown): string {
  if (data === null || data === undefined) return '';
  if (typeof data !== 'object') return String(data as string | number | boolean);
  const parts: string[] = [];
  let text = '';
  for (const [k, val] of Object.entries(data as Record<string, unknown>)) {
    if (k === 'at' || k === 'id' || k === 'contentHash' || val === undefined) continue;
    if (k === 'index' && typeof val === 'number') parts.push(`stage=${val + 1}`);
    else if (k === 'reason' || k === 'detail') text = String(val as string);
    else if (k === 'plan' && val && typeof val === 'object') {
      const p = val as Partial<RolloutPlan>;
      if (Array.isArray(p.stages)) parts.push(`stages=${p.stages.length}`);
      if (p.onFailure) parts.push(`onFailure=${p.onFailure}`);
    } else if (val && typeof val === 'object' && 'version' in val) parts.push(`${k}=v${String((val as { version: unknown }).version)}`);
    else if (val === null || typeof val !== 'object') parts.push(`${k}=${String(val as string | number | boolean | null)}`);
    else parts.push(`${k}=${JSON.stringify(val)}`);
  }
  return [parts.join(' '), text].filter((p) => p !== '').join(' — ');
}

export const HISTORY_HEADERS = ['TIME', 'ACTOR', 'EVENT', 'DETAILS'];

export function historyRows(entries: RolloutHistoryEntry[]): string[][] {
  return entries.map((e) => [fmtTime(e.at), e.actor, e.type, historyDetail(e.data)]);
}

function selectText(s: StagePlan): string {
  const parts: string[] = [];
  if (s.select.labels) parts.push(Object.entries(s.select.labels).map(([k, val]) => `${k}=${val}`).join(','));
  if (s.select.percent !== undefined) parts.push(`${s.select.percent}%${s.select.labels ? ' of them' : ''}`);
  return parts.join(' ');
}

function planGates(s: StagePlan): string {
  const g = s.gates;
  const parts = [`converge in ${String(g.convergenceTimeout)}`];
  if (String(g.maxMissing) !== '0') parts.push(`≤${String(g.maxMissing)} missing`);
  if (String(g.maxFailures) !== '0') parts.push(`≤${String(g.maxFailures)} failed`);
  if (g.blockRateFactor !== undefined) parts.push(`block rate ≤${g.blockRateFactor}×`);
  if (g.manualApproval) parts.push('manual approval');
  return parts.join(', ');
}

export const PLAN_HEADERS = ['STAGE', 'MODE', 'HOSTS', 'SOAK', 'GATES'];

/** The stages of a plan as written (with the defaults), for `rollout start`. */
export function planRows(plan: RolloutPlan): string[][] {
  return plan.stages.map((s, i) => [`${i + 1} ${s.name}`, s.mode, selectText(s), String(s.soak) === '0' ? '-' : String(s.soak), planGates(s)]);
}

/**
 * One line for a stage, for watching without a terminal. Without `now`, the
 * line leaves out what moves all the time (the soak countdown, the measured
 * block rates): compared, such lines tell a change of state.
 */
export function stageLine(v: RolloutView, s: StageView, now?: Date): string {
  const head = `stage ${stageLabel(v, s.index)} [${s.mode}]: ${phaseOf(v, s)}`;
  if (s.phase === 'pending') return head;
  const hosts = `${s.hosts.confirmed}/${s.hosts.selected} hosts confirmed, ${s.hosts.failed} failed, ${s.hosts.missing} missing`;
  let soak = '';
  if (s.soakEndsAt && s.phase === 'soaking') {
    const left = now ? Date.parse(s.soakEndsAt) - now.getTime() : 0;
    soak = `; soak ends ${fmtTime(s.soakEndsAt)}${now && left > 0 ? ` (${fmtDuration(left)} left)` : ''}`;
  }
  return `${head}, ${hosts}; gates ${gatesCell(s, now !== undefined)}${soak}`;
}

/** The first line of a watch, and of a change of status. */
export function headerLine(v: RolloutView): string {
  const where = v.status === 'completed' ? 'all stages done' : `stage ${stageLabel(v)}`;
  return `rollout ${v.id} ${v.blocklist} v${v.version}: ${v.status}, ${where}${v.reason && v.status !== 'running' ? ` — ${v.reason}` : ''}`;
}

/** What one progress bar shows: hosts confirmed of selected, and the rest as text. */
export function barPayload(v: RolloutView, s: StageView, now: Date): { label: string; value: number; total: number; detail: string } {
  const soak = s.phase === 'soaking' && s.soakEndsAt ? Date.parse(s.soakEndsAt) - now.getTime() : 0;
  const detail = [
    phaseOf(v, s),
    s.phase === 'pending' ? '' : gatesCell(s),
    s.hosts.failed > 0 ? `${s.hosts.failed} failed` : '',
    s.hosts.missing > 0 && s.phase !== 'pending' ? `${s.hosts.missing} missing` : '',
    soak > 0 ? `soak ${fmtDuration(soak)} left` : '',
  ].filter((p) => p !== '');
  return { label: `${s.index + 1}/${v.stages.length} ${s.name}`, value: s.hosts.confirmed, total: s.hosts.selected, detail: detail.join('  ') };
}

/** Exit codes of `cgfence rollout watch`, by how the rollout ended. */
export const WATCH_EXIT: Record<Exclude<RolloutStatus, 'running'>, number> = {
  completed: 0,
  'rolled-back': 1,
  aborted: 3,
  paused: 4,
};

export interface WatchEnd {
  exitCode: number;
  /** The first line says how it ended; the rest, what to do now. */
  lines: string[];
}

/**
 * Whether watching ends at this view, and with which exit code. A paused
 * rollout ends the watch unless `untilDone`: it waits for an operator.
 */
export function watchOutcome(v: RolloutView, untilDone: boolean): WatchEnd | null {
  const why = v.reason ? `: ${v.reason}` : '';
  switch (v.status) {
    case 'running':
      return null;
    case 'paused':
      return untilDone ? null : { exitCode: WATCH_EXIT.paused, lines: [`rollout ${v.id} paused at stage ${stageLabel(v)}${why}`, ...nextSteps(v)] };
    case 'completed':
      return { exitCode: WATCH_EXIT.completed, lines: [`rollout ${v.id} completed: ${v.blocklist} v${v.version} is out on all ${v.stages.length} stages`] };
    case 'rolled-back': {
      const to = v.previousVersion === null ? '' : ` to v${v.previousVersion}`;
      return { exitCode: WATCH_EXIT['rolled-back'], lines: [`rollout ${v.id} rolled back${to} at stage ${stageLabel(v)}${why}`] };
    }
    case 'aborted':
      return { exitCode: WATCH_EXIT.aborted, lines: [`rollout ${v.id} aborted at stage ${stageLabel(v)}${why}`] };
  }
}
