import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { JournalRecord } from './journal-record';

export const JOURNAL_FILE = 'events.jsonl';

export interface EventJournalOptions {
  /** The agent's state directory; created if missing. */
  readonly dir: string;
  /** Rotate when the current file would grow past this. Default 16 MiB. */
  readonly maxBytes?: number;
  /** Rotated files kept besides the current one (events.jsonl.1 … .N, 1 the newest). Default 5. */
  readonly keep?: number;
}

/**
 * Append-only JSON-lines journal of block, audit and alert events.
 *
 * Each record is one `write` of one whole line to a file opened O_APPEND, so
 * a reader never sees half a line from a finished write, and a crash loses at
 * most the line being written. Writes are synchronous: events are rare
 * (blocks, not queries), and an event is on disk before `append` returns.
 * At `maxBytes` the file is renamed to events.jsonl.1 (older ones shift up,
 * the oldest beyond `keep` is dropped) and a new file is started.
 */
export class EventJournal {
  readonly path: string;
  private readonly maxBytes: number;
  private readonly keep: number;
  private fd: number;
  private size: number;

  constructor(options: EventJournalOptions) {
    mkdirSync(options.dir, { recursive: true, mode: 0o750 });
    this.path = join(options.dir, JOURNAL_FILE);
    this.maxBytes = options.maxBytes ?? 16 * 1024 * 1024;
    this.keep = options.keep ?? 5;
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  append(record: JournalRecord): void {
    const line = Buffer.from(`${JSON.stringify(record)}\n`, 'utf8');
    if (this.size > 0 && this.size + line.length > this.maxBytes) this.rotate();
    let written = 0;
    while (written < line.length) written += writeSync(this.fd, line, written, line.length - written);
    this.size += line.length;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }

  private rotate(): void {
    closeSync(this.fd);
    if (this.keep <= 0) {
      unlinkSync(this.path);
    } else {
      for (let i = this.keep - 1; i >= 1; i--) {
        const from = `${this.path}.${i}`;
        if (existsSync(from)) renameSync(from, `${this.path}.${i + 1}`);
      }
      renameSync(this.path, `${this.path}.1`);
    }
    this.fd = openSync(this.path, 'a', 0o640);
    this.size = 0;
  }
}

export interface ListOptions {
  /** Only events at or after this time. */
  readonly since?: Date;
  /** Only the newest `limit` events (still returned oldest first). */
  readonly limit?: number;
}

export interface FollowOptions {
  /** Start with every event already in the journal; default: only events appended from now on. */
  readonly fromStart?: boolean;
  /** How often to look for new lines. Default 250 ms. */
  readonly pollMs?: number;
  readonly signal?: AbortSignal;
}

function isRecord(value: unknown): value is JournalRecord {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.id === 'string' && typeof v.time === 'string' && typeof v.action === 'string';
}

/** Splits complete lines off a byte buffer; what follows the last newline stays for later. */
function takeLines(buffer: Buffer): { lines: string[]; rest: Buffer } {
  const lines: string[] = [];
  let start = 0;
  for (let nl = buffer.indexOf(0x0a, start); nl !== -1; nl = buffer.indexOf(0x0a, start)) {
    lines.push(buffer.toString('utf8', start, nl));
    start = nl + 1;
  }
  return { lines, rest: buffer.subarray(start) };
}

function parseLines(lines: readonly string[]): JournalRecord[] {
  const out: JournalRecord[] = [];
  for (const line of lines) {
    if (line.trim() === '') continue;
    try {
      const value: unknown = JSON.parse(line);
      if (isRecord(value)) out.push(value);
    } catch {
      // A line that is not JSON (a torn write before a crash) is skipped, not fatal.
    }
  }
  return out;
}

interface OpenFile {
  fd: number;
  ino: bigint;
  offset: number;
  rest: Buffer;
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Reads the journal: a listing, or a `tail -f` that follows rotation. */
export class JournalReader {
  readonly path: string;

  constructor(dir: string) {
    this.path = join(dir, JOURNAL_FILE);
  }

  /** Journal files oldest first: events.jsonl.N … events.jsonl.1, events.jsonl. */
  files(): string[] {
    const rotated: string[] = [];
    for (let i = 1; existsSync(`${this.path}.${i}`); i++) rotated.unshift(`${this.path}.${i}`);
    return existsSync(this.path) ? [...rotated, this.path] : rotated;
  }

  list(options: ListOptions = {}): JournalRecord[] {
    let records: JournalRecord[] = [];
    for (const file of this.files()) {
      let text: Buffer;
      try {
        text = readFileSync(file);
      } catch {
        continue; // rotated away between listing and reading
      }
      records.push(...parseLines(takeLines(text).lines));
    }
    if (options.since) {
      const since = options.since.getTime();
      records = records.filter((r) => Date.parse(r.time) >= since);
    }
    if (options.limit !== undefined) records = records.slice(Math.max(0, records.length - options.limit));
    return records;
  }

  /**
   * Yields records as they are appended, until `signal` aborts (or the
   * consumer stops iterating). Follows rotation: the rest of the renamed file
   * and any file rotated after it are read before the new one, so no event is
   * missed or repeated (unless files are rotated out of `keep` between two
   * polls, or rotate again while being read).
   */
  async *follow(options: FollowOptions = {}): AsyncGenerator<JournalRecord> {
    const pollMs = options.pollMs ?? 250;
    const { signal } = options;
    if (options.fromStart) {
      for (const file of this.files().filter((f) => f !== this.path)) {
        try {
          yield* parseLines(takeLines(readFileSync(file)).lines);
        } catch {
          // rotated away meanwhile
        }
      }
    }
    let current = this.openCurrent(options.fromStart === true);
    try {
      while (!signal?.aborted) {
        if (!current) current = this.openCurrent(true);
        if (current) {
          yield* this.drain(current);
          const now = this.statPath();
          if (now === undefined || now.ino !== current.ino) {
            yield* this.drain(current); // lines written just before the rename
            closeSync(current.fd);
            // Several rotations may have happened since the last look: read
            // the files rotated after ours, oldest first, before the new one.
            yield* this.newerRotated(current.ino);
            current = now === undefined ? undefined : this.openCurrent(true);
            continue;
          }
          if (now.size < current.offset) {
            current.offset = 0; // truncated by hand: start over
            current.rest = Buffer.alloc(0);
          }
        }
        await pause(pollMs, signal);
      }
    } finally {
      if (current) closeSync(current.fd);
    }
  }

  /** Records of the rotated files newer than the one with inode `ino` (now events.jsonl.k: .k-1 … .1). */
  private newerRotated(ino: bigint): JournalRecord[] {
    let k = 0;
    for (let i = 1; existsSync(`${this.path}.${i}`); i++) {
      try {
        if (statSync(`${this.path}.${i}`, { bigint: true }).ino === ino) {
          k = i;
          break;
        }
      } catch {
        break;
      }
    }
    const records: JournalRecord[] = [];
    for (let j = k - 1; j >= 1; j--) {
      try {
        records.push(...parseLines(takeLines(readFileSync(`${this.path}.${j}`)).lines));
      } catch {
        // rotated away meanwhile
      }
    }
    return records;
  }

  private statPath(): { ino: bigint; size: number } | undefined {
    try {
      const st = statSync(this.path, { bigint: true });
      return { ino: st.ino, size: Number(st.size) };
    } catch {
      return undefined;
    }
  }

  private openCurrent(fromStart: boolean): OpenFile | undefined {
    let fd: number;
    try {
      fd = openSync(this.path, 'r');
    } catch {
      return undefined;
    }
    const st = fstatSync(fd, { bigint: true });
    return { fd, ino: st.ino, offset: fromStart ? 0 : Number(st.size), rest: Buffer.alloc(0) };
  }

  private drain(file: OpenFile): JournalRecord[] {
    const chunk = Buffer.alloc(64 * 1024);
    const records: JournalRecord[] = [];
    for (;;) {
      const n = readSync(file.fd, chunk, 0, chunk.length, file.offset);
      if (n === 0) break;
      file.offset += n;
      const { lines, rest } = takeLines(Buffer.concat([file.rest, chunk.subarray(0, n)]));
      file.rest = Buffer.from(rest);
      records.push(...parseLines(lines));
    }
    return records;
  }
}
