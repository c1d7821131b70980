import { Module } from '@nestjs/common';
import { StatusModule } from '../control/status.module';
import { DataPlaneModule } from '../data-plane/data-plane.module';
import { PolicySource } from '../policy/policy-source';
import { PolicyModule } from '../policy/policy.module';
import { DesiredStateController } from './desired-state.controller';
import { DriftService } from './drift.service';
import { FleetClient } from './fleet-client';
import { FleetLinkService } from './fleet-link.service';
import { FleetPolicySource } from './fleet-policy.source';

/** Fleet link: the policy from the policy server over NATS, drift checks, reports. */
@Module({
  imports: [PolicyModule, StatusModule, DataPlaneModule],
  controllers: [DesiredStateController],
  providers: [
    FleetLinkService,
    { provide: FleetClient, useFactory: (link: FleetLinkService) => link.client, inject: [FleetLinkService] },
    DriftService,
    FleetPolicySource,
    { provide: PolicySource, useExisting: FleetPolicySource },
  ],
  exports: [FleetLinkService, FleetClient, DriftService, PolicySource],
})
export class FleetModule {}
