import { Controller, Get, Res } from '@nestjs/common';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { DataSource } from 'typeorm';
import { z } from 'zod';
import { Public } from '../auth/roles';
import { Contract } from '../common/contract';
import { NatsService } from '../nats/nats.service';
import { OutboxRepository } from '../outbox/outbox.repository';

const Ready = z.object({
  status: z.enum(['ready', 'not ready']),
  reason: z.string().optional(),
  nats: z.enum(['connected', 'disconnected', 'disabled']).optional(),
  outboxPending: z.number().int().optional(),
});

@ApiTags('health')
@Public()
@Controller()
export class HealthController {
  constructor(
    private readonly db: DataSource,
    private readonly nats: NatsService,
    private readonly outbox: OutboxRepository,
  ) {}

  @Get('health')
  @ApiOperation({ summary: 'Liveness: the process answers' })
  @Contract({ responses: [{ status: 200, json: z.object({ status: z.literal('ok') }) }] })
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  @ApiOperation({
    summary: 'Readiness: the database answers and every migration has run',
    description: 'Also says whether NATS is connected and how many outbox messages wait; a NATS outage does not make the API unready (changes wait in the outbox).',
  })
  @Contract({
    responses: [
      { status: 200, json: Ready, description: 'Ready' },
      { status: 503, json: Ready, description: 'Not ready (the reason says why)' },
    ],
  })
  async ready(
    @Res({ passthrough: true }) res: Response,
  ): Promise<{ status: 'ready' | 'not ready'; reason?: string; nats?: 'connected' | 'disconnected' | 'disabled'; outboxPending?: number }> {
    try {
      await this.db.query('select 1');
      if (await this.db.showMigrations()) {
        res.status(503);
        return { status: 'not ready', reason: 'migrations pending' };
      }
      const nats = !this.nats.enabled ? 'disabled' : this.nats.connected ? 'connected' : 'disconnected';
      return { status: 'ready', nats, outboxPending: await this.outbox.pending() };
    } catch (err) {
      res.status(503);
      return { status: 'not ready', reason: `database: ${(err as Error).message}` };
    }
  }
}
