import { Controller, Get, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { DeliveriesQuery, DeliveryIdParams, DeliveryView, DeliveryViewSchema } from '@cgfence/proto';
import { RequireRole } from '../auth/roles';
import { Contract } from '../common/contract';
import { DeliveriesRepository, DeliveryRow } from './deliveries.repository';

const iso = (d: Date | null): string | null => (d === null ? null : new Date(d).toISOString());
const view = (d: DeliveryRow): DeliveryView => ({
  id: d.id,
  targetId: d.target_id,
  url: d.url ?? '(removed)',
  trigger: d.trigger,
  subject: d.subject,
  status: d.status,
  attempts: d.attempts,
  nextAttemptAt: d.status === 'pending' ? iso(d.next_attempt_at) : null,
  lastError: d.last_error,
  createdAt: iso(d.created_at)!,
  deliveredAt: iso(d.delivered_at),
});

@ApiTags('notifications')
@ApiBearerAuth()
@Controller('notifications')
export class NotificationsController {
  constructor(private readonly deliveries: DeliveriesRepository) {}

  @Get('deliveries')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Webhook deliveries, newest first; status=dead is the dead-letter list' })
  @Contract({ query: DeliveriesQuery, responses: [{ status: 200, json: z.array(DeliveryViewSchema) }] })
  async list(@Query() q: DeliveriesQuery): Promise<DeliveryView[]> {
    return (await this.deliveries.list(q)).map(view);
  }

  @Post('deliveries/:id/retry')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Send a dead delivery again (a fresh set of attempts)' })
  @Contract({ params: DeliveryIdParams, responses: [{ status: 200, json: DeliveryViewSchema }], errors: [404] })
  async retry(@Param('id') id: string): Promise<DeliveryView> {
    return view(await this.deliveries.retry(id));
  }
}
