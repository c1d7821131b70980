import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { readFile } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { contentHash, parseBlocklistText } from '@cgfence/proto';
import type { AgentConfig } from '../agent/agent-config';
import type { PolicyMeta } from '../agent/policy-apply';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import type { BlocklistEntry } from './entry-types';
import { type FileWriter, writersOf } from './file-writers';
import { formatPolicyErrors } from './policy';
import { PolicySource, ReloadResult } from './policy-source';
import { PolicyService } from './policy.service';

/** A policy file read and validated, not yet hashed or compiled. */
type PolicyFileResult = { readonly ok: true; readonly entries: readonly BlocklistEntry[] } | { readonly ok: false; readonly message: string };

/** A file has no version number: it is named by its content hash. */
export function fileMeta(entries: readonly BlocklistEntry[]): PolicyMeta {
  const hash = contentHash(entries);
  return { version: `file:${hash.slice('sha256:'.length, 'sha256:'.length + 12)}`, hash };
}

/**
 * The line a policy file must hold to mean "no entries on purpose". Without
 * it, a file with no entries replacing a non-empty policy is taken for a file
 * caught half-written (truncated, not yet written) and refused.
 */
export const EMPTY_POLICY_MARKER = '# cgfence: empty';

/**
 * How long a policy file's content must stay the same (two reads this far
 * apart) before a reload applies it, and how many such reads a reload makes
 * before it gives up on a file that keeps changing (keeping the last good policy).
 */
export const POLICY_SETTLE_MS = 250;
export const POLICY_SETTLE_TRIES = 20;

/** Parses and validates a policy file's text (hashing and compiling are the caller's). */
export function parsePolicyFileText(text: string): PolicyFileResult {
  const parsed = parseBlocklistText(text);
  if (parsed.errors.length > 0) return { ok: false, message: formatPolicyErrors('file', parsed.errors) };
  return { ok: true, entries: parsed.entries };
}

/** True when the text carries EMPTY_POLICY_MARKER on a line of its own. */
export function declaresEmpty(text: string): boolean {
  return text.split('\n').some((l) => l.trim() === EMPTY_POLICY_MARKER);
}

/**
 * Reads a file until two reads `settleMs` apart give the same bytes and no
 * process holds it open for writing: a file rewritten in place (truncate,
 * then write) is never taken while partial, even when its writer is
 * descheduled mid-write for longer than `settleMs` (a CPU-starved host: the
 * writer still holds the file open). A writer that pauses with the file
 * closed (several `>>` appends) can still be caught between writes; the
 * documented way to update the file is an atomic rename, never seen partial.
 */
export async function readStable(
  file: string,
  settleMs: number,
  tries: number,
  writers: (file: string) => Promise<FileWriter[]> = writersOf,
): Promise<{ ok: true; text: string } | { ok: false; message: string }> {
  let last: Buffer | undefined;
  let open: FileWriter[] = [];
  for (let i = 0; i <= tries; i++) {
    let now: Buffer;
    try {
      now = await readFile(file);
    } catch (err) {
      return { ok: false, message: `cannot read policy file ${file}: ${(err as Error).message}` };
    }
    if (last !== undefined && last.equals(now)) {
      open = await writers(file);
      // Read once more after the scan: a writer that went on and closed the file while it
      // ran is no longer listed, and what it wrote must not be missed.
      if (open.length === 0) {
        let after: Buffer;
        try {
          after = await readFile(file);
        } catch (err) {
          return { ok: false, message: `cannot read policy file ${file}: ${(err as Error).message}` };
        }
        if (after.equals(now)) return { ok: true, text: now.toString('utf8') };
        now = after;
      }
    }
    last = now;
    if (i < tries) await sleep(settleMs);
  }
  const held = open.length > 0 ? ` (held open for writing by ${open.map((w) => `pid ${w.pid} ${w.comm}`).join(', ')})` : '';
  return { ok: false, message: `policy file ${file} kept changing${held} for ${settleMs * tries} ms; not applied (write it elsewhere and rename it into place)` };
}

/**
 * Standalone mode's policy: a file, read at boot (a bad one stops the start),
 * read again on SIGHUP, on `reload` and when it changes. A bad file (or one the
 * kernel refuses) keeps the last good policy enforced.
 */
@Injectable()
export class PolicyFileSource extends PolicySource implements OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly description: string;
  private readonly file: string;
  private watching = false;
  private reloading: Promise<ReloadResult> = Promise.resolve({ reloaded: true });
  private watchTimer: NodeJS.Timeout | undefined;
  private readonly settleMs: number;

  constructor(
    @Inject(AGENT_CONFIG) config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly policy: PolicyService,
  ) {
    super();
    if (config.policyFile === undefined) throw new Error('standalone mode needs a policy file');
    this.file = config.policyFile;
    this.description = config.policyFile;
    this.settleMs = config.policySettleMs ?? POLICY_SETTLE_MS;
  }

  /** At boot too, the file is taken only once stable: a file being rewritten as the agent starts is not taken partial. */
  async boot(): Promise<void> {
    const read = await readStable(this.file, this.settleMs, POLICY_SETTLE_TRIES);
    const loaded = read.ok ? parsePolicyFileText(read.text) : read;
    if (!loaded.ok) throw new Error(loaded.message);
    await this.policy.applyEntries(loaded.entries, fileMeta(loaded.entries));
  }

  onApplicationBootstrap(): void {
    // Changes seen while a reload waits for the file to settle coalesce into one more reload.
    watchFile(this.file, { interval: 500 }, () => {
      if (this.watchTimer) clearTimeout(this.watchTimer);
      this.watchTimer = setTimeout(() => {
        this.watchTimer = undefined;
        void this.reload('file changed');
      }, this.settleMs);
    });
    this.watching = true;
  }

  beforeApplicationShutdown(): void {
    if (this.watching) unwatchFile(this.file);
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = undefined;
    this.watching = false;
  }

  /** One reload at a time, in the order asked (SIGHUP, `reload`, the watcher). */
  reload(why: string): Promise<ReloadResult> {
    const run = this.reloading.then(() => this.reloadOnce(why));
    this.reloading = run.catch(() => ({ reloaded: false }));
    return run;
  }

  private async reloadOnce(why: string): Promise<ReloadResult> {
    if (!this.watching) return { reloaded: false, error: 'the agent is not running' };
    const read = await readStable(this.file, this.settleMs, POLICY_SETTLE_TRIES);
    let loaded: PolicyFileResult = read.ok ? parsePolicyFileText(read.text) : read;
    if (loaded.ok && read.ok && loaded.entries.length === 0 && this.policy.current.entries.length > 0 && !declaresEmpty(read.text)) {
      loaded = {
        ok: false,
        message: `policy file ${this.file} has no entries but ${this.policy.current.version} has ${this.policy.current.entries.length}: refused as a file caught half-written; a file meant to be empty holds the line '${EMPTY_POLICY_MARKER}'`,
      };
    }
    let message: string | undefined;
    let applied = false;
    if (!loaded.ok) message = loaded.message;
    else {
      let meta: PolicyMeta | undefined;
      const entries = loaded.entries;
      try {
        // The kernel's tries start building now; hashing (is it a change at all?) overlaps them.
        applied = await this.policy.applyEntries(entries, () => {
          meta = fileMeta(entries);
          return meta.hash === this.policy.current.hash ? undefined : meta;
        });
      } catch (err) {
        message = `the kernel refused ${meta?.version ?? 'the policy file'}: ${(err as Error).message}`;
      }
    }
    if (message !== undefined) {
      this.policy.rejected(message, why);
      return { reloaded: false, error: message };
    }
    if (applied) this.logger.info({ why, version: this.policy.current.version, hash: this.policy.current.hash }, 'policy reloaded');
    return { reloaded: true };
  }
}
