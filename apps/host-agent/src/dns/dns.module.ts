import { Module } from '@nestjs/common';
import { JournalModule } from '../journal/journal.module';
import { PolicyModule } from '../policy/policy.module';
import { DnsProxyService } from './dns-proxy.service';

/** DNS: the proxy the deploy cgroup's DNS is redirected to (plain classes; Nest owns their lifecycle only). */
@Module({ imports: [PolicyModule, JournalModule], providers: [DnsProxyService], exports: [DnsProxyService] })
export class DnsModule {}
