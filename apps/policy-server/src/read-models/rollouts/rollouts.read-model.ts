import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import type { RolloutPlan } from '@cgfence/proto';
import type { StoredEvent } from '../../event-store/event-store';
import type { ActivePhase, RolloutEvent, RolloutState } from '../../rollouts/rollout';
import { ReadModel } from '../read-model';

export interface RolloutRow {
  id: string;
  blocklist: string;
  version: number;
  content_hash: string;
  previous: { version: number; contentHash: string };
  plan: RolloutPlan;
  status: Exclude<RolloutState['status'], 'absent'>;
  stage: number;
  phase: ActivePhase;
  phase_since: Date;
  /** Stage index → when it started / converged. */
  stage_started: Record<string, string>;
  converged_at: Record<string, string>;
  gate_failures: { index: number; gate: string; detail: string; at: string }[];
  reason: string | null;
  started_at: Date;
  started_by: string;
  updated_at: Date;
}

const PREFIX = 'rollout-';

/** Rollout progress as the API shows it; rebuilt from the rollout streams. */
@Injectable()
export class RolloutsReadModel implements ReadModel {
  readonly name = 'rollouts';
  readonly tables = ['rm_rollouts'] as const;

  constructor(private readonly db: DataSource) {}

  async apply(stored: StoredEvent, m: EntityManager): Promise<void> {
    if (!stored.streamId.startsWith(PREFIX)) return;
    const id = stored.streamId.slice(PREFIX.length);
    const e = { type: stored.type, data: stored.data } as RolloutEvent;
    const set = async (sql: string, params: unknown[]) =>
      m.query(`update rm_rollouts set ${sql}, updated_at = $2 where id = $1`, [id, stored.metadata.time, ...params]);
    switch (e.type) {
      case 'RolloutStarted':
        await m.query(
          `insert into rm_rollouts (id, blocklist, version, content_hash, previous, plan, status, stage, phase, phase_since, started_at, started_by, updated_at)
           values ($1, $2, $3, $4, $5, $6, 'running', 0, 'converging', $7, $7, $8, $7)`,
          [id, e.data.blocklist, e.data.version, e.data.contentHash, JSON.stringify(e.data.previous), JSON.stringify(e.data.plan), e.data.at, stored.metadata.actor],
        );
        return;
      case 'StageStarted':
        await set(`stage = $3, phase = 'converging', phase_since = $4, stage_started = stage_started || $5::jsonb`, [
          e.data.index,
          e.data.at,
          JSON.stringify({ [e.data.index]: e.data.at }),
        ]);
        return;
      case 'StageConverged':
        await set(`phase = 'soaking', phase_since = $3, converged_at = converged_at || $4::jsonb`, [e.data.at, JSON.stringify({ [e.data.index]: e.data.at })]);
        return;
      case 'StageSoaked':
        await set(`phase = 'awaiting-approval', phase_since = $3`, [e.data.at]);
        return;
      case 'StagePromoted':
        return;
      case 'GateFailed':
        await set(`gate_failures = gate_failures || $3::jsonb, reason = $4`, [JSON.stringify([e.data]), e.data.detail]);
        return;
      case 'RolloutPaused':
        await set(`status = 'paused', reason = $3`, [e.data.reason]);
        return;
      case 'RolloutResumed':
        await set(`status = 'running', phase_since = $3, reason = null`, [e.data.at]);
        return;
      case 'RolloutAborted':
        await set(`status = 'aborted', reason = $3`, [e.data.reason]);
        return;
      case 'RolloutRolledBack':
        await set(`status = 'rolled-back', reason = $3`, [e.data.reason]);
        return;
      case 'RolloutCompleted':
        await set(`status = 'completed'`, []);
        return;
    }
  }

  async get(id: string, m?: EntityManager): Promise<RolloutRow | undefined> {
    const rows: RolloutRow[] = await (m ?? this.db).query(`select * from rm_rollouts where id = $1`, [id]);
    return rows[0];
  }

  async list(filter: { blocklist?: string; active?: boolean } = {}, m?: EntityManager): Promise<RolloutRow[]> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.blocklist) {
      params.push(filter.blocklist);
      where.push(`blocklist = $${params.length}`);
    }
    if (filter.active) where.push(`status in ('running', 'paused')`);
    return (m ?? this.db).query(`select * from rm_rollouts ${where.length ? `where ${where.join(' and ')}` : ''} order by started_at desc, id`, params);
  }
}
