import { Inject, Injectable, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { open } from 'node:fs/promises';
import { unwatchFile, watchFile } from 'node:fs';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { PolicyService } from '../policy/policy.service';
import { DataPlaneService } from './data-plane.service';
import { HOSTS_FILE_MAX_BYTES, listedHostsEntries, type ListedHostsEntry } from './hosts-file';

/** How long an address taken from the hosts file stays blocked without a new read, and how often it is read again anyway. */
export const HOSTS_TTL_SECONDS = 300;
export const HOSTS_REFRESH_MS = 60_000;
/** How often the file's stat is polled for changes. */
const HOSTS_POLL_MS = 1000;

/**
 * The hosts file (default /etc/hosts; --hosts-file none: off): a listed name
 * found there resolves without any DNS, so its addresses are blocked in the
 * kernel like learned addresses (cgf_learned, refreshed while the entry
 * stays; a removed entry's address lapses within HOSTS_TTL_SECONDS). Read at
 * start, when it changes, when the policy changes, and every HOSTS_REFRESH_MS.
 * Each listed entry found is journaled once as an alert naming its line.
 */
@Injectable()
export class HostsFileService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly file: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> = Promise.resolve();
  private alerted = new Set<string>();
  private current: ListedHostsEntry[] = [];

  constructor(
    @Inject(AGENT_CONFIG) config: AgentConfig,
    @Inject(AGENT_LOGGER) private readonly logger: Logger,
    private readonly dataPlane: DataPlaneService,
    private readonly policy: PolicyService,
  ) {
    this.file = config.hostsFile;
  }

  /** The listed entries found by the last read. */
  get entries(): readonly ListedHostsEntry[] {
    return this.current;
  }

  async onApplicationBootstrap(): Promise<void> {
    const file = this.file;
    if (file === undefined) return;
    await this.scan('start');
    watchFile(file, { interval: HOSTS_POLL_MS }, () => void this.scan('hosts file changed'));
    this.policy.onChange(() => void this.scan('policy changed'));
    this.timer = setInterval(() => void this.scan('refresh'), HOSTS_REFRESH_MS);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.file !== undefined) unwatchFile(this.file);
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Reads the file and blocks the addresses of its listed names (one read at a time). */
  scan(why: string): Promise<void> {
    this.scanning = this.scanning.then(() => this.scanOnce(why)).catch((err: Error) => this.logger.error({ why, file: this.file }, `hosts file: ${err.message}`));
    return this.scanning;
  }

  private async scanOnce(why: string): Promise<void> {
    if (this.file === undefined || !this.dataPlane.attached) return;
    const { text, truncated } = await readBounded(this.file);
    if (truncated) this.alertOnce(`truncated:${this.file}`, `hosts file ${this.file} is larger than ${HOSTS_FILE_MAX_BYTES} bytes: only its first ${HOSTS_FILE_MAX_BYTES} bytes were read for listed names`);
    const found = listedHostsEntries(text, this.policy.current.matcher);
    this.current = found;
    if (found.length === 0) return;
    this.dataPlane.kernel.learnAddresses([...new Set(found.map((e) => e.address))], HOSTS_TTL_SECONDS);
    for (const e of found) {
      this.alertOnce(
        `${e.line} ${e.address} ${e.name}`,
        `hosts file ${this.file} line ${e.line} maps listed name ${e.name} (entry ${e.entry}) to ${e.address}: that address is blocked for the deploy cgroup`,
      );
    }
    this.logger.info({ why, file: this.file, listed: found.length }, 'hosts file: listed names blocked by address');
  }

  private alertOnce(key: string, message: string): void {
    if (this.alerted.has(key)) return;
    // Bounded: one key per listed line of a bounded file; reset if a file churns through many.
    if (this.alerted.size >= 10_000) this.alerted = new Set();
    this.alerted.add(key);
    this.policy.alert(message);
  }
}

/** At most HOSTS_FILE_MAX_BYTES of the file; a missing file reads as empty. */
async function readBounded(file: string): Promise<{ text: string; truncated: boolean }> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { text: '', truncated: false };
    throw err;
  }
  try {
    const buf = Buffer.alloc(HOSTS_FILE_MAX_BYTES + 1);
    let n = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break;
      n += bytesRead;
      if (n === buf.length) break;
    }
    return { text: buf.subarray(0, Math.min(n, HOSTS_FILE_MAX_BYTES)).toString('utf8'), truncated: n > HOSTS_FILE_MAX_BYTES };
  } finally {
    await fh.close();
  }
}
