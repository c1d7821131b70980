// Pure pieces of findings: which (owner, entry) an event belongs to, the
// per-batch grouping done on the ingest decode thread, and command redaction.
import { createHash } from 'node:crypto';
import { REDACTED, redactSecrets } from '@cgfence/proto';

/** Examples kept per finding and per batch group (hosts, runs, commands, ...). */
export const EXAMPLES_MAX = 20;
/** A redacted command is cut to this many characters. */
export const COMMAND_MAX = 200;
/**
 * Longest owner (label value) and entry a finding is made for. A host that
 * sends longer ones (nothing an agent does) keeps its events in the history
 * but makes no finding: a finding's id, stream and notifications stay small.
 */
export const OWNER_MAX = 200;
export const ENTRY_MAX = 300;

/** One (owner, entry) in one ingest batch: what its blocked and audited events add up to. */
export interface OccurrenceGroup {
  ownerKey: string;
  /** The owner label's value; '' when the run had none. */
  owner: string;
  entry: string;
  firstMs: number;
  lastMs: number;
  blocked: number;
  audited: number;
  names: string[];
  hosts: string[];
  cohorts: string[];
  runs: string[];
  commands: string[];
  versions: string[];
}

/** Stable id of the finding of one owner on one entry. */
export function findingIdOf(ownerKey: string, owner: string, entry: string): string {
  return `f-${createHash('sha256').update(`${ownerKey}\u0000${owner}\u0000${entry}`).digest('hex').slice(0, 20)}`;
}

const SECRET_KEY = /(pass(word|wd)?|secret|token|api[-_]?key|auth|credential|private[-_]?key|bearer)/i;
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/)[^/\s@]+@/gi;
const LONG_OPAQUE = /\b[A-Za-z0-9+/_=-]{32,}\b/g;

/**
 * A command line with what looks like a secret taken out: first the shapes
 * the agents also take out (libs/proto redactSecrets: token shapes, headers,
 * URL passwords; an agent's [REDACTED] shows as *** here), then, more
 * eagerly than on the host: values of
 * options and KEY=value pairs whose name says secret (--password x,
 * --token=x, API_KEY=x), user:password@ in URLs, and long opaque strings
 * (keys, tokens). Cut to COMMAND_MAX characters.
 */
export function redactCommand(cmd: string): string {
  const words = redactSecrets(cmd)
    .text.split(REDACTED)
    .join('***')
    .replace(URL_USERINFO, '$1***@').split(/\s+/).filter((w) => w !== '');
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const eq = w.indexOf('=');
    if (eq > 0 && SECRET_KEY.test(w.slice(0, eq))) {
      out.push(`${w.slice(0, eq)}=***`);
      continue;
    }
    out.push(w.replace(LONG_OPAQUE, '***'));
    if (w.startsWith('-') && SECRET_KEY.test(w) && i + 1 < words.length && !words[i + 1]!.startsWith('-')) {
      out.push('***');
      i++;
    }
  }
  const s = out.join(' ');
  return s.length > COMMAND_MAX ? `${s.slice(0, COMMAND_MAX - 1)}…` : s;
}

/** Adds v to a small list of examples: most recent last, no repeats, at most EXAMPLES_MAX. */
export function addExample(list: string[], v: string | null): void {
  if (v === null || v === '') return;
  const at = list.indexOf(v);
  if (at >= 0) {
    if (at === list.length - 1) return;
    list.splice(at, 1);
  } else if (list.length >= EXAMPLES_MAX) list.shift();
  list.push(v);
}

/** Merges examples b into a (b is newer). */
export function mergeExamples(a: readonly string[], b: readonly string[]): string[] {
  const out = [...a];
  for (const v of b) addExample(out, v);
  return out;
}

/** The fields of a block event a finding needs. */
export interface OccurrenceInput {
  ms: number;
  labels: Record<string, string> | string | null;
  entry: string | null;
  action: string;
  qname: string | null;
  host: string;
  cohort: string | null;
  runId: string | null;
  cmdline: string | null;
  comm: string | null;
  policyVersion: string | null;
}

/**
 * Groups one batch's blocked and audited events by (owner, entry). Alerts
 * and events without a matched entry are not findings. Plain data out: the
 * groups cross from the decode thread.
 */
export class OccurrenceGrouper {
  private readonly groups = new Map<string, OccurrenceGroup>();
  /** Raw command → redacted, for the batch (deploys repeat the same few commands). */
  private readonly redacted = new Map<string, string>();

  constructor(readonly ownerKey: string) {}

  add(e: OccurrenceInput): void {
    if ((e.action !== 'blocked' && e.action !== 'audited') || e.entry === null) return;
    const labels = typeof e.labels === 'string' ? (JSON.parse(e.labels) as Record<string, string>) : (e.labels ?? {});
    const owner = labels[this.ownerKey] ?? '';
    if (owner.length > OWNER_MAX || e.entry.length > ENTRY_MAX) return;
    const k = `${owner}\u0000${e.entry}`;
    let g = this.groups.get(k);
    if (!g) {
      g = { ownerKey: this.ownerKey, owner, entry: e.entry, firstMs: e.ms, lastMs: e.ms, blocked: 0, audited: 0, names: [], hosts: [], cohorts: [], runs: [], commands: [], versions: [] };
      this.groups.set(k, g);
    }
    if (e.ms < g.firstMs) g.firstMs = e.ms;
    if (e.ms > g.lastMs) g.lastMs = e.ms;
    if (e.action === 'blocked') g.blocked++;
    else g.audited++;
    addExample(g.names, e.qname);
    addExample(g.hosts, e.host);
    addExample(g.cohorts, e.cohort);
    addExample(g.runs, e.runId);
    const cmd = e.cmdline ?? e.comm;
    if (cmd !== null) {
      let r = this.redacted.get(cmd);
      if (r === undefined) {
        r = redactCommand(cmd);
        if (this.redacted.size < 1000) this.redacted.set(cmd, r);
      }
      addExample(g.commands, r);
    }
    addExample(g.versions, e.policyVersion);
  }

  get size(): number {
    return this.groups.size;
  }

  values(): OccurrenceGroup[] {
    return [...this.groups.values()];
  }
}
