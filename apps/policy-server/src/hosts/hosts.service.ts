import { Inject, Injectable } from '@nestjs/common';
import type { Logger } from 'pino';
import type { HostInfo, HostReport, HostView } from '@cgfence/proto';
import { Clock } from '../common/clock';
import { DomainError } from '../common/errors';
import { LOGGER } from '../common/logger';
import { SERVER_CONFIG, ServerConfig } from '../config/config';
import { CommandHandler } from '../event-store/command-handler.service';
import type { FleetRow } from '../read-models/fleet/fleet.read-model';
import { FleetReadModel } from '../read-models/fleet/fleet.read-model';
import { HostRow, HostsReadModel } from '../read-models/hosts/hosts.read-model';
import { hostDecider, hostStreamOf } from './host';

/** Registration and reports from agents, and the hosts view operators query. */
@Injectable()
export class HostsService {
  constructor(
    private readonly commands: CommandHandler,
    private readonly hosts: HostsReadModel,
    private readonly fleet: FleetReadModel,
    private readonly clock: Clock,
    @Inject(SERVER_CONFIG) private readonly config: ServerConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  async register(info: HostInfo, correlationId: string): Promise<void> {
    const now = this.clock.now();
    const { hostId, ...facts } = info;
    await this.commands.handle(hostStreamOf(hostId), hostDecider, { type: 'RegisterHost', hostId, facts, now }, { actor: `host:${hostId}`, correlationId });
    await this.hosts.seen(hostId, now);
  }

  async report(r: HostReport, correlationId: string): Promise<boolean> {
    const now = this.clock.now();
    const known = await this.hosts.get(r.hostId);
    if (!known) {
      this.logger.warn({ hostId: r.hostId }, 'report from a host that has not registered; dropped (it registers on its next connect)');
      return false;
    }
    const applied = r.applied
      ? { revision: r.applied.revision, blocklist: r.applied.name, version: r.applied.version, contentHash: r.applied.hash, appliedAt: r.applied.appliedAt }
      : null;
    await this.commands.handle(
      hostStreamOf(r.hostId),
      hostDecider,
      { type: 'RecordReport', hostId: r.hostId, applied, rejection: r.lastError, labels: r.labels, now },
      { actor: `host:${r.hostId}`, correlationId },
    );
    await this.hosts.touch(r, now);
    return true;
  }

  async seen(hostId: string): Promise<void> {
    await this.hosts.seen(hostId, this.clock.now());
  }

  async list(filter: { cohort?: string; stale?: boolean } = {}): Promise<HostView[]> {
    const fleet = await this.fleet.get();
    const views = (await this.hosts.list({ cohort: filter.cohort })).map((r) => this.view(r, fleet));
    return filter.stale === undefined ? views : views.filter((h) => h.stale === filter.stale);
  }

  async get(hostId: string): Promise<HostView> {
    const row = await this.hosts.get(hostId);
    if (!row) throw new DomainError('host.not_found', `no host ${hostId} has registered`);
    return this.view(row, await this.fleet.get());
  }

  private view(r: HostRow, fleet: FleetRow | undefined): HostView {
    const now = this.clock.now().getTime();
    const desired =
      fleet?.baseline
        ? {
            blocklist: fleet.baseline.blocklist,
            version: fleet.baseline.version,
            hash: fleet.baseline.contentHash,
            revision: fleet.revision,
            mode: fleet.auditFleet || (r.cohort !== null && fleet.auditCohorts.includes(r.cohort)) ? ('audit' as const) : ('enforce' as const),
          }
        : null;
    const applied = r.applied
      ? { blocklist: r.applied.blocklist, version: r.applied.version, hash: r.applied.contentHash, revision: r.applied.revision, appliedAt: r.applied.appliedAt }
      : null;
    return {
      hostId: r.host_id,
      hostname: r.hostname,
      labels: r.labels,
      cohort: r.cohort,
      kernel: r.kernel,
      agentVersion: r.agent_version,
      capabilities: r.capabilities,
      registeredAt: r.registered_at.toISOString(),
      lastSeen: r.last_seen?.toISOString() ?? null,
      stale: r.last_seen === null || now - r.last_seen.getTime() > this.config.hostStaleMs,
      desired,
      applied,
      inSync: desired !== null && applied !== null && desired.hash === applied.hash,
      seenRevision: r.seen_revision,
      lastError: r.last_error,
      mode: r.mode,
      failMode: r.fail_mode,
      health: r.health,
      drift: r.drift,
    };
  }
}
