import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { Pool, PoolClient } from 'pg';
import { SERVER_CONFIG, ServerConfig } from '../config/config';

/**
 * The block-event history's own small pool of plain pg connections: COPY
 * (pg-copy-streams) and streamed exports need a pg client, not TypeORM.
 */
@Injectable()
export class EventsDb implements OnApplicationShutdown {
  readonly pool: Pool;

  constructor(@Inject(SERVER_CONFIG) config: ServerConfig) {
    this.pool = new Pool({ connectionString: config.databaseUrl, max: 8, application_name: 'cgfence-events' });
    // An idle client that loses its connection must not crash the process.
    this.pool.on('error', () => undefined);
  }

  async tx<T>(fn: (c: PoolClient) => Promise<T>): Promise<T> {
    const c = await this.pool.connect();
    try {
      await c.query('begin');
      const result = await fn(c);
      await c.query('commit');
      return result;
    } catch (err) {
      await c.query('rollback').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  query<R>(sql: string, params: unknown[] = []): Promise<R[]> {
    return this.pool.query(sql, params).then((r) => r.rows as R[]);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
