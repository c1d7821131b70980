// The disk spool between the agent and JetStream: every event (and run
// summary) the agent has produced but the server has not acknowledged yet.
//
// Layout of <state-dir>/spool/:
//   seg-<first seq, 16 digits>.jsonl   append-only segments, one SpoolEntry per line
//   cursor.json                        {"acked": N, "dropped": D}: every entry up to
//                                      seq N is done (acked or dropped); D drops in all
//
// Appends are one write(2) of one whole line, so a crashed agent leaves at most
// one torn line at the end of the newest segment (cut off at the next start);
// a line that does not parse anywhere else is skipped. Durability: lines reach
// the page cache at once (an agent crash loses nothing); the newest segment is
// fdatasync'ed at most every `fsyncIntervalMs` (default 1 s) while it has new
// lines, and when it is closed or rolled, so a power loss loses at most about a
// second of events not yet shipped. The cursor is rewritten (tmp + rename, no
// fsync) at most every 250 ms: a cursor that lags after a crash only re-sends
// events, which JetStream and the server drop as duplicates by message id.
//
// Bounded by `maxBytes` (all segment files together): when an append would go
// past it, the oldest segments are deleted whole, and the entries in them not
// yet acked are counted as dropped. Segments are maxBytes/8 (at most 4 MiB),
// so a drop loses about an eighth of the spool, the oldest events first.
import { closeSync, existsSync, fdatasyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';

export type SpoolKind = 'block' | 'run';

/** One line of a segment. */
export interface SpoolEntry {
  /** Position in the spool: 1, 2, 3, … without gaps, across segments and restarts. */
  readonly seq: number;
  readonly kind: SpoolKind;
  /** The JetStream message id (an event id, or run-<runId>). */
  readonly msgId: string;
  readonly body: unknown;
}

export interface SpoolOptions {
  /** <state-dir>/spool; created if missing. */
  readonly dir: string;
  /** Bound of all segment files together. Default 64 MiB. */
  readonly maxBytes?: number;
  /** Segment size; default maxBytes/8, at most 4 MiB, at least 1 KiB. */
  readonly segmentBytes?: number;
  /** How often a segment with new lines is fdatasync'ed; 0: after every append. Default 1000 ms. */
  readonly fsyncIntervalMs?: number;
  readonly logger?: Logger;
}

export interface SpoolStats {
  /** Entries not yet acked. */
  readonly pending: number;
  /** Bytes of the segment files. */
  readonly bytes: number;
  readonly maxBytes: number;
  /** Entries dropped unshipped because the spool was full, since the spool was created. */
  readonly dropped: number;
  readonly segments: number;
  /** Lines found unreadable when the spool was opened (torn writes). */
  readonly corrupt: number;
}

export const DEFAULT_SPOOL_MAX_BYTES = 64 * 1024 * 1024;
const CURSOR_FILE = 'cursor.json';
const SEGMENT = /^seg-(\d{16})\.jsonl$/;
const CURSOR_WRITE_MS = 250;

interface Segment {
  readonly path: string;
  readonly firstSeq: number;
  /** firstSeq - 1 while empty. */
  lastSeq: number;
  bytes: number;
}

const segmentName = (firstSeq: number): string => `seg-${String(firstSeq).padStart(16, '0')}.jsonl`;

function isEntry(v: unknown): v is SpoolEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.seq === 'number' && Number.isInteger(e.seq) && (e.kind === 'block' || e.kind === 'run') && typeof e.msgId === 'string' && 'body' in e;
}

function parseLine(line: string): SpoolEntry | undefined {
  if (line.trim() === '') return undefined;
  try {
    const v: unknown = JSON.parse(line);
    return isEntry(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Where read() left off, so the next read continues instead of rescanning the segment. */
interface ReadMark {
  readonly seg: Segment;
  /** Byte offset after the line of `seq`. */
  readonly offset: number;
  readonly seq: number;
}

/** The on-disk queue of unacknowledged events. Synchronous; one per state dir. */
export class DiskSpool {
  readonly dir: string;
  readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly fsyncIntervalMs: number;
  private readonly log: Logger | undefined;
  private segments: Segment[] = [];
  private fd = -1;
  private nextSeq = 1;
  private acked = 0;
  private dropped = 0;
  private corrupt = 0;
  private mark: ReadMark | undefined;
  private dirty = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private cursorTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: SpoolOptions) {
    this.dir = options.dir;
    this.maxBytes = options.maxBytes ?? DEFAULT_SPOOL_MAX_BYTES;
    this.segmentBytes = Math.max(1024, options.segmentBytes ?? Math.min(4 * 1024 * 1024, Math.floor(this.maxBytes / 8)));
    this.fsyncIntervalMs = options.fsyncIntervalMs ?? 1000;
    this.log = options.logger;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.recover();
  }

  // ---- writing ------------------------------------------------------------

  /** Appends an entry; returns how many older entries were dropped to make room. */
  append(kind: SpoolKind, msgId: string, body: unknown): { seq: number; dropped: number } {
    if (this.closed) throw new Error('spool closed');
    const seq = this.nextSeq;
    const line = Buffer.from(`${JSON.stringify({ seq, kind, msgId, body })}\n`, 'utf8');
    if (line.length > this.maxBytes) {
      // Larger than the whole spool: it cannot be kept (and takes no seq); counted like any drop.
      this.dropped++;
      this.cursorChanged();
      this.log?.warn({ msgId, bytes: line.length, maxBytes: this.maxBytes }, 'event larger than the whole spool dropped');
      return { seq: -1, dropped: 1 };
    }
    let dropped = 0;
    let active = this.active();
    // A fully shipped segment is not kept around: start afresh (cheap: once per drained backlog).
    if (active.bytes >= 64 * 1024 && active.lastSeq <= this.acked) active = this.roll(true);
    if (active.bytes > 0 && active.bytes + line.length > this.segmentBytes) active = this.roll(false);
    while (this.totalBytes() + line.length > this.maxBytes) {
      dropped += this.dropOldest();
      active = this.active();
    }
    let written = 0;
    while (written < line.length) written += writeSync(this.fd, line, written, line.length - written);
    this.nextSeq = seq + 1;
    active.lastSeq = seq;
    active.bytes += line.length;
    this.dirty = true;
    this.scheduleSync();
    if (dropped > 0) {
      this.dropped += dropped;
      this.cursorChanged();
    }
    return { seq, dropped };
  }

  /** Marks every entry up to `seq` shipped; segments entirely shipped are deleted. */
  ack(seq: number): void {
    if (seq <= this.acked) return;
    this.acked = Math.min(seq, this.nextSeq - 1);
    while (this.segments.length > 1 && this.segments[0]!.lastSeq <= this.acked) this.removeSegment(this.segments[0]!);
    this.cursorChanged();
  }

  // ---- reading ------------------------------------------------------------

  /** Highest seq shipped or dropped. */
  get ackedSeq(): number {
    return this.acked;
  }

  /**
   * Up to `max` entries after `afterSeq` (and after the acked cursor), oldest
   * first. Reading on from where the previous read stopped does not rescan.
   */
  read(afterSeq: number, max: number): SpoolEntry[] {
    const from = Math.max(afterSeq, this.acked);
    const out: SpoolEntry[] = [];
    let i = this.segments.findIndex((s) => s.lastSeq > from);
    if (i < 0) return out;
    let offset = this.mark && this.mark.seg === this.segments[i] && this.mark.seq === from ? this.mark.offset : 0;
    const chunk = Buffer.alloc(256 * 1024);
    for (; i < this.segments.length && out.length < max; i++, offset = 0) {
      const seg = this.segments[i]!;
      if (seg.lastSeq <= from) continue;
      const fd = openSync(seg.path, 'r');
      try {
        let rest = Buffer.alloc(0);
        let pos = offset;
        while (out.length < max && pos < seg.bytes) {
          const n = readSync(fd, chunk, 0, Math.min(chunk.length, seg.bytes - pos), pos);
          if (n === 0) break;
          const buf = rest.length > 0 ? Buffer.concat([rest, chunk.subarray(0, n)]) : chunk.subarray(0, n);
          const bufStart = pos - rest.length;
          pos += n;
          let start = 0;
          for (let nl = buf.indexOf(0x0a, start); nl !== -1 && out.length < max; nl = buf.indexOf(0x0a, start)) {
            const e = parseLine(buf.toString('utf8', start, nl));
            start = nl + 1;
            if (e && e.seq > from) {
              out.push(e);
              this.mark = { seg, offset: bufStart + start, seq: e.seq };
            }
          }
          rest = Buffer.from(buf.subarray(start));
          if (out.length >= max) break;
        }
      } finally {
        closeSync(fd);
      }
    }
    return out;
  }

  stats(): SpoolStats {
    return {
      pending: Math.max(0, this.nextSeq - 1 - this.acked),
      bytes: this.totalBytes(),
      maxBytes: this.maxBytes,
      dropped: this.dropped,
      segments: this.segments.length,
      corrupt: this.corrupt,
    };
  }

  /** Syncs the newest segment and writes the cursor. */
  flush(): void {
    if (this.dirty && this.fd >= 0) fdatasyncSync(this.fd);
    this.dirty = false;
    this.writeCursor();
  }

  close(): void {
    if (this.closed) return;
    clearTimeout(this.syncTimer);
    clearTimeout(this.cursorTimer);
    this.flush();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.closed = true;
  }

  // ---- internals ----------------------------------------------------------

  private active(): Segment {
    return this.segments[this.segments.length - 1]!;
  }

  private totalBytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.bytes;
    return n;
  }

  /** Starts a new segment at nextSeq; `discard`: the old active one is fully acked, delete it. */
  private roll(discard: boolean): Segment {
    const old = this.active();
    if (this.fd >= 0) {
      if (this.dirty && !discard) fdatasyncSync(this.fd);
      closeSync(this.fd);
      this.fd = -1;
    }
    this.dirty = false;
    if (discard) this.removeSegment(old);
    return this.openSegment(this.nextSeq);
  }

  private openSegment(firstSeq: number): Segment {
    const seg: Segment = { path: join(this.dir, segmentName(firstSeq)), firstSeq, lastSeq: firstSeq - 1, bytes: 0 };
    this.fd = openSync(seg.path, 'a', 0o600);
    this.segments.push(seg);
    return seg;
  }

  /** Deletes the oldest segment; returns its entries that were not acked yet. */
  private dropOldest(): number {
    const seg = this.segments[0]!;
    const lost = Math.max(0, seg.lastSeq - Math.max(this.acked, seg.firstSeq - 1));
    this.acked = Math.max(this.acked, seg.lastSeq);
    if (this.segments.length === 1) {
      // The active segment itself: start a new one (nothing older is left).
      closeSync(this.fd);
      this.fd = -1;
      this.dirty = false;
      this.removeSegment(seg);
      this.openSegment(this.nextSeq);
    } else {
      this.removeSegment(seg);
    }
    if (lost > 0) this.log?.warn({ dropped: lost, firstSeq: seg.firstSeq, lastSeq: seg.lastSeq }, 'event spool full: oldest unshipped events dropped');
    return lost;
  }

  private removeSegment(seg: Segment): void {
    this.segments = this.segments.filter((s) => s !== seg);
    if (this.mark?.seg === seg) this.mark = undefined;
    try {
      unlinkSync(seg.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private scheduleSync(): void {
    if (this.fsyncIntervalMs <= 0) {
      fdatasyncSync(this.fd);
      this.dirty = false;
      return;
    }
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      if (this.dirty && this.fd >= 0) {
        try {
          fdatasyncSync(this.fd);
        } catch (err) {
          this.log?.warn({ err: (err as Error).message }, 'event spool fsync failed');
        }
        this.dirty = false;
      }
    }, this.fsyncIntervalMs);
    this.syncTimer.unref();
  }

  private cursorChanged(): void {
    if (this.cursorTimer || this.closed) return;
    this.cursorTimer = setTimeout(() => {
      this.cursorTimer = undefined;
      try {
        this.writeCursor();
      } catch (err) {
        this.log?.warn({ err: (err as Error).message }, 'cannot write the event spool cursor');
      }
    }, CURSOR_WRITE_MS);
    this.cursorTimer.unref();
  }

  private writeCursor(): void {
    const file = join(this.dir, CURSOR_FILE);
    writeFileSync(`${file}.tmp`, `${JSON.stringify({ acked: this.acked, dropped: this.dropped })}\n`, { mode: 0o600 });
    renameSync(`${file}.tmp`, file);
  }

  private readCursor(): void {
    const file = join(this.dir, CURSOR_FILE);
    if (!existsSync(file)) return;
    try {
      const c = JSON.parse(readFileSync(file, 'utf8')) as { acked?: unknown; dropped?: unknown };
      if (typeof c.acked === 'number' && Number.isInteger(c.acked) && c.acked >= 0) this.acked = c.acked;
      if (typeof c.dropped === 'number' && Number.isInteger(c.dropped) && c.dropped >= 0) this.dropped = c.dropped;
    } catch (err) {
      // Without a cursor everything still spooled is sent again: duplicates, which the server drops.
      this.log?.warn({ err: (err as Error).message, file }, 'event spool cursor unreadable; re-sending what is spooled');
    }
  }

  /** Opens what a previous agent left: cursor, segments, a torn last line. */
  private recover(): void {
    this.readCursor();
    const found = readdirSync(this.dir)
      .map((name) => ({ name, m: SEGMENT.exec(name) }))
      .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
      .map((f) => ({ path: join(this.dir, f.name), firstSeq: Number(f.m[1]) }))
      .sort((a, b) => a.firstSeq - b.firstSeq);
    for (const [i, f] of found.entries()) {
      const newest = i === found.length - 1;
      let data = readFileSync(f.path);
      if (newest && data.length > 0 && data[data.length - 1] !== 0x0a) {
        // A write cut short by a crash: the partial line goes, the next append starts clean.
        const keep = data.lastIndexOf(0x0a) + 1;
        truncateSync(f.path, keep);
        data = data.subarray(0, keep);
        this.corrupt++;
        this.log?.warn({ file: f.path, bytes: keep }, 'event spool: torn last line cut off');
      }
      let lastSeq = f.firstSeq - 1;
      let start = 0;
      for (let nl = data.indexOf(0x0a, start); nl !== -1; nl = data.indexOf(0x0a, start)) {
        const line = data.toString('utf8', start, nl);
        start = nl + 1;
        const e = parseLine(line);
        if (e) lastSeq = Math.max(lastSeq, e.seq);
        else if (line.trim() !== '') this.corrupt++;
      }
      this.segments.push({ path: f.path, firstSeq: f.firstSeq, lastSeq, bytes: data.length });
    }
    if (this.corrupt > 0) this.log?.warn({ corrupt: this.corrupt, dir: this.dir }, 'event spool: unreadable lines skipped');
    const last = this.segments[this.segments.length - 1];
    this.nextSeq = Math.max(this.acked + 1, last ? last.lastSeq + 1 : 1, last ? last.firstSeq : 1);
    // Segments already shipped (the cursor moved on before they were deleted) go now.
    for (const s of [...this.segments]) if (s.lastSeq <= this.acked && s !== last) this.removeSegment(s);
    if (last && last.lastSeq <= this.acked && last.bytes > 0) this.removeSegment(last);
    const kept = this.segments[this.segments.length - 1];
    if (kept !== undefined && kept === last) {
      // Appends continue the newest segment.
      this.fd = openSync(kept.path, 'a', 0o600);
      kept.bytes = statSync(kept.path).size;
    } else {
      this.openSegment(this.nextSeq);
    }
    // Seqs must keep going up even if the cursor is ahead of the files (segments deleted after an ack).
    if (this.acked < (this.segments[0]?.firstSeq ?? 1) - 1) this.acked = this.segments[0]!.firstSeq - 1;
  }
}
