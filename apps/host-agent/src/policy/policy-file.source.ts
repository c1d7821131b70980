import { BeforeApplicationShutdown, Inject, Injectable, OnApplicationBootstrap } from '@nestjs/common';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import { contentHash, parseBlocklistText } from '@cgfence/proto';
import type { AgentConfig } from '../agent/agent-config';
import type { PolicyMeta } from '../agent/policy-apply';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import type { BlocklistEntry } from './entry-types';
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

/** Reads and validates a policy file (hashing and compiling are the caller's). */
export function readPolicyFile(policyFile: string): PolicyFileResult {
  let text: string;
  try {
    text = readFileSync(policyFile, 'utf8');
  } catch (err) {
    return { ok: false, message: `cannot read policy file ${policyFile}: ${(err as Error).message}` };
  }
  const parsed = parseBlocklistText(text);
  if (parsed.errors.length > 0) return { ok: false, message: formatPolicyErrors('file', parsed.errors) };
  return { ok: true, entries: parsed.entries };
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

  constructor(
    @Inject(AGENT_CONFIG) config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly policy: PolicyService,
  ) {
    super();
    if (config.policyFile === undefined) throw new Error('standalone mode needs a policy file');
    this.file = config.policyFile;
    this.description = config.policyFile;
  }

  boot(): Promise<void> {
    const loaded = readPolicyFile(this.file);
    if (!loaded.ok) return Promise.reject(new Error(loaded.message));
    return this.policy.applyEntries(loaded.entries, fileMeta(loaded.entries)).then(() => undefined);
  }

  onApplicationBootstrap(): void {
    watchFile(this.file, { interval: 500 }, () => void this.reload('file changed'));
    this.watching = true;
  }

  beforeApplicationShutdown(): void {
    if (this.watching) unwatchFile(this.file);
    this.watching = false;
  }

  async reload(why: string): Promise<ReloadResult> {
    if (!this.watching) return { reloaded: false, error: 'the agent is not running' };
    const loaded = readPolicyFile(this.file);
    let message: string | undefined;
    let applied = false;
    if (!loaded.ok) message = loaded.message;
    else {
      let meta: PolicyMeta | undefined;
      try {
        // The kernel's tries start building now; hashing (is it a change at all?) overlaps them.
        applied = await this.policy.applyEntries(loaded.entries, () => {
          meta = fileMeta(loaded.entries);
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
