import type { Logger } from 'pino';
import type { JournalRecord } from './journal-record';

const BARE = /^[A-Za-z0-9._:/*@+,=[\]-]+$/;

/** key=value with the value quoted (JSON string escapes) when it holds anything but plain characters. */
function kv(key: string, value: string | number | null, alwaysQuote = false): string {
  if (value === null) return `${key}=-`;
  const text = String(value);
  return `${key}=${!alwaysQuote && text !== '' && BARE.test(text) ? text : JSON.stringify(text)}`;
}

function formatLabels(labels: Readonly<Record<string, string>>): string | null {
  const keys = Object.keys(labels).sort();
  return keys.length === 0 ? null : keys.map((k) => `${k}=${labels[k]}`).join(',');
}

function headline(r: JournalRecord): string {
  if (r.action === 'alert') return 'ALERT';
  const layer = r.method === 'dns' ? 'DNS' : 'IP';
  return r.action === 'blocked' ? `${layer} BLOCKED` : `${layer} AUDIT would-block`;
}

/**
 * The one-line, human-readable account of a block, for operators reading the
 * agent's log (in the spirit of GitHub's
 * `WARN DNS BLOCKED … domain=github.com. pid=266767 cmd="curl github.com "`):
 *
 *     DNS BLOCKED domain=github.com qtype=A entry=github.com pid=4242 comm=curl
 *       cmd="curl https://github.com" uid=0 run=… labels=app=web policy=v3 event=…
 *
 * (one line). Unknown values print as '-'; values with spaces or quotes are
 * JSON-quoted; cmd is always quoted.
 */
export function formatBlockLine(r: JournalRecord): string {
  const parts = [headline(r)];
  if (r.action === 'alert') parts.push(kv('message', r.message, true));
  if (r.method === 'dns' && r.qname !== null) parts.push(kv('domain', r.qname), kv('qtype', r.qtype));
  if (r.method === 'ip' || r.destination !== null) parts.push(kv('dst', r.destination));
  if (r.entry !== null) parts.push(kv('entry', r.entry));
  parts.push(kv('pid', r.pid), kv('comm', r.comm), kv('cmd', r.cmdline, true), kv('uid', r.uid));
  parts.push(kv('run', r.runId), kv('labels', formatLabels(r.labels)));
  parts.push(kv('policy', r.policyVersion), kv('event', r.id));
  return parts.join(' ');
}

/** Writes the human line of each journal record through pino: blocks at warn, audits at info, alerts at error. */
export class BlockLog {
  constructor(private readonly logger: Logger) {}

  write(record: JournalRecord): void {
    const line = formatBlockLine(record);
    const fields = { eventId: record.id, runId: record.runId };
    if (record.action === 'blocked') this.logger.warn(fields, line);
    else if (record.action === 'audited') this.logger.info(fields, line);
    else this.logger.error(fields, line);
  }
}
