import { Module } from '@nestjs/common';
import { DnsModule } from '../dns/dns.module';
import { JournalModule } from '../journal/journal.module';
import { PolicyModule } from '../policy/policy.module';
import { DataPlaneService } from './data-plane.service';
import { HostsFileService } from './hosts-file.service';
import { ProxyHeartbeat } from './proxy-heartbeat.service';

/** Data plane: the eBPF programs and maps on the deploy cgroup (libs/bpf), and the proxy heartbeat. */
@Module({ imports: [DnsModule, PolicyModule, JournalModule], providers: [DataPlaneService, ProxyHeartbeat, HostsFileService], exports: [DataPlaneService] })
export class DataPlaneModule {}
