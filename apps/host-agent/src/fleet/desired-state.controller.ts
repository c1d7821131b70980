import { Controller } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { FLEET_SUBJECTS } from '@cgfence/proto';
import { FleetClient } from './fleet-client';

/**
 * The signed desired-state broadcast (cgf.fleet.desired), as an event of the
 * agent's NATS transport. It only queues the message: the FleetClient checks
 * signatures, revision and target, and applies in order.
 */
@Controller()
export class DesiredStateController {
  constructor(private readonly fleet: FleetClient) {}

  @EventPattern(FLEET_SUBJECTS.desired)
  async desired(@Payload() message: unknown): Promise<void> {
    await this.fleet.submit(message, 'broadcast');
  }
}
