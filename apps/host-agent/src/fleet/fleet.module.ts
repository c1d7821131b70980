import { Module } from '@nestjs/common';
import { StatusModule } from '../control/status.module';
import { DataPlaneModule } from '../data-plane/data-plane.module';
import { PolicySource } from '../policy/policy-source';
import { PolicyModule } from '../policy/policy.module';
import { DriftService } from './drift.service';
import { FleetLinkService } from './fleet-link.service';
import { FleetPolicySource } from './fleet-policy.source';

/** Fleet link: the policy from the policy server over NATS, drift checks, reports. */
@Module({
  imports: [PolicyModule, StatusModule, DataPlaneModule],
  providers: [FleetLinkService, DriftService, FleetPolicySource, { provide: PolicySource, useExisting: FleetPolicySource }],
  exports: [FleetLinkService, DriftService, PolicySource],
})
export class FleetModule {}
