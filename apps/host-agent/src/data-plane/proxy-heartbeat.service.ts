import { BeforeApplicationShutdown, Injectable, OnModuleInit } from '@nestjs/common';
import { DnsProxyService } from '../dns/dns-proxy.service';
import { DataPlaneService } from './data-plane.service';

const HEARTBEAT_MS = 250;

/**
 * Tells the kernel the DNS proxy lives, every 250 ms while it does; after
 * --heartbeat-timeout-ms of silence the kernel applies the fail mode. Kept
 * apart so the liveness mechanism can be swapped without touching the rest.
 */
@Injectable()
export class ProxyHeartbeat implements OnModuleInit, BeforeApplicationShutdown {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly dataPlane: DataPlaneService,
    private readonly proxy: DnsProxyService,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => {
      if (this.proxy.alive()) this.dataPlane.kernel.heartbeat();
    }, HEARTBEAT_MS);
    this.timer.unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }
}
