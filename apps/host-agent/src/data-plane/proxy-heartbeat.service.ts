import { BeforeApplicationShutdown, Injectable, OnModuleInit } from '@nestjs/common';
import { DnsProxyService } from '../dns/dns-proxy.service';
import { DataPlaneService } from './data-plane.service';

const CHECK_MS = 250;

/**
 * Whether the kernel may count the DNS proxy alive. The heartbeat itself is
 * stamped by the DataPlane's own thread (libs/bpf liveness.ts), which no
 * work on this event loop can starve, and the kernel also checks the proxy's
 * socket itself. This provider only pauses the heartbeat while the proxy
 * cannot answer although the agent lives (every proxy worker gone: the shared
 * socket stays in this process), so the fail mode applies after
 * --heartbeat-timeout-ms; and resumes it when a worker is back.
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
      if (this.dataPlane.attached) this.dataPlane.kernel.pauseHeartbeat(!this.proxy.alive());
    }, CHECK_MS);
    this.timer.unref();
  }

  beforeApplicationShutdown(): void {
    clearInterval(this.timer);
  }
}
