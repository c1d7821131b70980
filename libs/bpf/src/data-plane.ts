// The loader's facade: one DataPlane per attached cgroup, handing each call to
// the class that owns that concern:
//   CgroupAttachment  attach / adopt / teardown, links and pins  (attachment.ts)
//   ProxyLiveness     config, heartbeat and its thread            (liveness.ts)
//   IpPolicyMaps      CIDR tries, prefilter, learned addresses     (ip-policy-maps.ts)
//   NameBackstop      listed names for the egress hook             (name-backstop.ts)
//   KernelTelemetry   counters and ring buffer events              (telemetry.ts)
//   attribution       (client port, DNS id) -> process             (dns-attribution.ts)
//   ClientRateLimiter per-client limit of UDP queries to the proxy (client-rate.ts)
import { resolve } from 'node:path';
import { DataPlaneConfig, DataPlaneCounters, KernelEvent, ProcessInfo, validateConfig } from './codec';
import { CgroupAttachment } from './attachment';
import { lookupDnsOriginIn } from './dns-attribution';
import { DataPlaneError } from './errors';
import { IpPolicyDigest } from './ip-digest';
import { AppliedCounts, IpPolicyMaps, KernelPolicy, PreparedIpPolicy } from './ip-policy-maps';
import { COUNTERS, DNS_COUNTERS, RATE_COUNTERS } from './layout';
import { ClientRateLimiter, DEFAULT_CLIENT_RATE_LIMITS, validateClientRateLimits } from './client-rate';
import { ProxyLiveness } from './liveness';
import { NameBackstop, NamePolicy } from './name-backstop';
import { DEFAULT_REFUSED_DNS_PORTS, DnsPortGuard, validateRefusedDnsPorts } from './dns-ports';
import { markAll } from './prefilter';
import { KernelTelemetry } from './telemetry';
import { DEFAULT_UNIX_GUARD_PATHS, UnixGuard, UnixGuardStatus, validateUnixGuardPaths } from './unix-guard';

export { DataPlaneError } from './errors';
export { BPF_OBJECT_PATH } from './attachment';
export { PreparedIpPolicy } from './ip-policy-maps';
export type { AppliedCounts, KernelPolicy } from './ip-policy-maps';

export interface AttachOptions {
  cgroupPath: string;
  pinDir: string;
  config: DataPlaneConfig;
  /**
   * The unix-socket guard (unix-guard.ts, kernel 6.7+): refused socket paths
   * of resolving daemons, default DEFAULT_UNIX_GUARD_PATHS; [] turns it off.
   * On a kernel without the hook the rest attaches and unixGuardStatus()
   * says what is not covered. attachTypes: tests and diagnostics only.
   */
  unixGuard?: { paths?: readonly string[]; attachTypes?: { connect: number; sendmsg: number } };
}

export class DataPlane {
  private closed = false;

  private constructor(
    private readonly attachment: CgroupAttachment,
    private readonly liveness: ProxyLiveness,
    private readonly policy: IpPolicyMaps,
    private readonly names: NameBackstop,
    private readonly telemetry: KernelTelemetry,
    private readonly dnsPorts: DnsPortGuard,
    private readonly clientRate: ClientRateLimiter,
    private readonly unix: { guard?: UnixGuard; status: UnixGuardStatus },
  ) {}

  /**
   * Attaches the data plane to `cgroupPath`, or adopts the links and maps
   * already pinned in `pinDir` (a restarted agent): open -> pin paths -> load
   * (reusing pinned maps) -> prefilter and config -> attach or adopt each
   * link -> pin (CgroupAttachment).
   */
  static attach(opts: AttachOptions): DataPlane {
    validateConfig(opts.config);
    const refusedPorts = opts.config.refusedDnsPorts ?? DEFAULT_REFUSED_DNS_PORTS;
    validateRefusedDnsPorts(refusedPorts);
    const clientRate = opts.config.clientRate ?? DEFAULT_CLIENT_RATE_LIMITS;
    validateClientRateLimits(clientRate);
    let liveness!: ProxyLiveness;
    const attachment = CgroupAttachment.attach(opts, (mapFds) => {
      // Fail safe until the first apply settles it: every /16 marked, so every
      // lookup takes the full path. The pinned prefilter may be new next to
      // an older agent's policy and learned addresses (an upgrade: libbpf
      // created and pinned it just now, all zeros), or stale (pins kept
      // through a downgrade to an agent that did not maintain it).
      markAll(mapFds.cgf_prefilter4, 'prefilter');
      // With a fresh heartbeat, before any program is attached or switched.
      liveness = ProxyLiveness.initialize(mapFds.cgf_config, mapFds.cgf_heartbeat, opts.config);
      new DnsPortGuard(mapFds.cgf_dns_ports).set(refusedPorts);
      new ClientRateLimiter(mapFds.cgf_rate_config).set(clientRate);
    });
    const fds = attachment.mapFds;
    const names = new NameBackstop(fds.cgf_names);
    const unix = DataPlane.attachUnixGuard(opts, fds.cgf_config, fds.cgf_events, fds.cgf_counters);
    return new DataPlane(
      attachment,
      liveness,
      new IpPolicyMaps(fds, names),
      names,
      new KernelTelemetry({ counters: fds.cgf_counters, dnsCounters: fds.cgf_dns_counters, rateCounters: fds.cgf_rate_counters, events: fds.cgf_events }),
      new DnsPortGuard(fds.cgf_dns_ports),
      new ClientRateLimiter(fds.cgf_rate_config),
      unix,
    );
  }

  /** Attaches (or turns off) the unix-socket guard; its failure leaves the rest attached and is reported, never thrown. */
  private static attachUnixGuard(opts: AttachOptions, configFd: number, eventsFd: number, countersFd: number): { guard?: UnixGuard; status: UnixGuardStatus } {
    const paths = opts.unixGuard?.paths ?? DEFAULT_UNIX_GUARD_PATHS;
    validateUnixGuardPaths(paths);
    if (paths.length === 0) {
      UnixGuard.detach(opts.pinDir);
      return { status: { state: 'off' } };
    }
    try {
      const guard = UnixGuard.attach({ cgroupPath: opts.cgroupPath, pinDir: opts.pinDir, configFd, eventsFd, countersFd, paths, attachTypes: opts.unixGuard?.attachTypes });
      return { guard, status: { state: 'active', paths: [...paths] } };
    } catch (err) {
      return { status: { state: 'unavailable', paths: [...paths], reason: (err as Error).message } };
    }
  }

  /** Detaches every pinned link in `pinDir`, removes all its pins and the directory. Idempotent. */
  static teardown(opts: { cgroupPath: string; pinDir: string }): void {
    CgroupAttachment.teardown(opts);
  }

  /** True when at least one pinned link was adopted. */
  get adopted(): boolean {
    return this.attachment.adopted;
  }

  get cgroupPath(): string {
    return this.attachment.cgroupPath;
  }

  get pinDir(): string {
    return resolve(this.attachment.pinDir);
  }

  setConfig(c: DataPlaneConfig): void {
    this.assertOpen();
    if (c.refusedDnsPorts !== undefined) this.dnsPorts.set(c.refusedDnsPorts);
    if (c.clientRate !== undefined) this.clientRate.set(c.clientRate);
    this.liveness.setConfig(c);
  }

  /** Refused DNS ports and their refusals so far (audit mode: connections that would have been refused). */
  dnsPortRefusals(): Map<number, number> {
    this.assertOpen();
    return this.dnsPorts.refusals();
  }

  /** What the unix-socket guard does: active, off, or unavailable (with the kernel's reason). */
  unixGuardStatus(): UnixGuardStatus {
    return this.unix.status;
  }

  /** Each refused unix socket path and its refusals so far (audit mode: would-be refusals); empty unless active. */
  unixRefusals(): Map<string, number> {
    this.assertOpen();
    return this.unix.guard?.refusals() ?? new Map();
  }

  /** Stamps "proxy alive now" from the calling thread (CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns). */
  heartbeat(): void {
    this.assertOpen();
    this.liveness.heartbeat();
  }

  /**
   * Stamps the heartbeat every `intervalMs` (default: an eighth of the
   * configured timeout, at most 250 ms) from a thread of its own, which no
   * work on this thread can starve; resolves once it has stamped. Ends with
   * close() (or the process).
   */
  startHeartbeat(intervalMs?: number): Promise<void> {
    this.assertOpen();
    return this.liveness.startHeartbeatThread(intervalMs);
  }

  /** Stops (true) or resumes (false) the heartbeat: the caller knows its proxy cannot answer (e.g. every proxy worker is gone). */
  pauseHeartbeat(paused: boolean): void {
    this.assertOpen();
    this.liveness.pauseHeartbeat(paused);
  }

  /**
   * Replaces the blocked CIDR sets (and the backstop's names, if `p.names`).
   * Each new trie and name map is built completely (sized to the list) before
   * one map update swaps it in, so the kernel sees either the whole old list
   * or the whole new one. On error the old policy stays. Runs on the calling
   * thread (blocks it for the whole build); prepareIpPolicy() builds on a
   * worker thread instead.
   */
  applyIpPolicy(p: KernelPolicy): AppliedCounts {
    this.assertOpen();
    return this.policy.applyIpPolicy(p);
  }

  /**
   * Builds a policy's tries (and name map) on the trie builder thread and
   * returns at once; commit() on the result swaps them in on that thread,
   * discard() drops them. See IpPolicyMaps.prepareIpPolicy.
   */
  prepareIpPolicy(p: KernelPolicy): PreparedIpPolicy {
    this.assertOpen();
    return this.policy.prepareIpPolicy(p);
  }

  /** applyIpPolicy() on the trie builder thread: prepareIpPolicy(), then commit(). */
  async applyIpPolicyAsync(p: KernelPolicy): Promise<AppliedCounts> {
    this.assertOpen();
    return this.policy.applyIpPolicyAsync(p);
  }

  /** Replaces only the backstop's names, on the calling thread. Returns the distinct names now listed. */
  applyNamePolicy(p: NamePolicy): number {
    this.assertOpen();
    return this.names.apply(p);
  }

  /** The backstop's keys in force, read from the kernel (sorted hex); see nameKeyHex(). */
  nameBackstopKeys(): string[] {
    this.assertOpen();
    return this.names.keysInKernel();
  }

  ipPrefilterStatus(): { markedSlots: number; settled: boolean; error?: string } {
    this.assertOpen();
    return this.policy.ipPrefilterStatus();
  }

  appliedIpPolicyDigest(): IpPolicyDigest | undefined {
    return this.policy.appliedIpPolicyDigest();
  }

  ipPolicyDigest(): IpPolicyDigest {
    this.assertOpen();
    return this.policy.ipPolicyDigest();
  }

  /** Blocks single addresses (v4 or v6) until now + ttlSeconds. */
  learnAddresses(addrs: string[], ttlSeconds: number): void {
    this.assertOpen();
    this.policy.learnAddresses(addrs, ttlSeconds);
  }

  /** Who sent the DNS query that reached the proxy from `clientPort` with this id. */
  lookupDnsOrigin(clientPort: number, dnsId: number): ProcessInfo | undefined {
    this.assertOpen();
    return lookupDnsOriginIn(this.attachment.mapFds.cgf_dns_attr, clientPort, dnsId);
  }

  /** Every counter, summed over CPUs. */
  counters(): DataPlaneCounters {
    this.assertOpen();
    return this.telemetry.counters();
  }

  /** Delivers kernel events (also those queued while no agent ran) to `cb`, from the event loop. */
  onEvent(cb: (e: KernelEvent) => void): void {
    this.assertOpen();
    const guard = this.unix.guard;
    // unix guard events carry an id: give them the socket path.
    this.telemetry.onEvent((e) => cb(e.unixPathId !== undefined && guard ? { ...e, daddr: guard.pathOfId(e.unixPathId) ?? `unix socket #${e.unixPathId}` } : e));
  }

  /** Names of the programs whose links are attached to the cgroup right now. */
  attachedPrograms(): string[] {
    this.assertOpen();
    return [...this.attachment.attachedPrograms(), ...(this.unix.guard?.attachedPrograms() ?? [])];
  }

  /** Stops the heartbeat and event consumption and frees userspace handles. Pins (and so enforcement) stay. */
  close(): void {
    if (this.closed) return;
    this.telemetry.close();
    this.liveness.close();
    this.policy.close();
    this.unix.guard?.close();
    this.attachment.close();
    this.closed = true;
  }

  private assertOpen(): void {
    if (this.closed) throw new DataPlaneError('use', 'this DataPlane is closed');
  }
}

/** Counter names in the order counters() reports them (for dashboards and tests). */
export const COUNTER_NAMES: readonly string[] = [...COUNTERS, ...DNS_COUNTERS, ...RATE_COUNTERS].map(([, name]) => name);
