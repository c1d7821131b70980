import { Module } from '@nestjs/common';
import { DnsModule } from '../dns/dns.module';
import { JournalModule } from '../journal/journal.module';
import { PolicyModule } from '../policy/policy.module';
import { DataPlaneService } from './data-plane.service';
import { HostsFileService } from './hosts-file.service';
import { ProxyHeartbeat } from './proxy-heartbeat.service';
import { ProtectedCgroupsService } from './protected-cgroups.service';
import { RunsModule } from '../runs/runs.module';

/** Data plane: the eBPF programs and maps on the deploy cgroup (libs/bpf), the proxy heartbeat, the hosts file, and --protect-cgroup cgroups. */
@Module({
  imports: [DnsModule, PolicyModule, JournalModule, RunsModule],
  providers: [DataPlaneService, ProxyHeartbeat, HostsFileService, ProtectedCgroupsService],
  exports: [DataPlaneService, ProtectedCgroupsService],
})
export class DataPlaneModule {}
