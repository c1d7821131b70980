import { Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** The Prometheus registry of this process. */
@Injectable()
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'cgfence_http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'cgfence_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });

  readonly outboxPublished = new Counter({
    name: 'cgfence_outbox_published_total',
    help: 'Outbox messages published to NATS (duplicate: JetStream had the message id already)',
    labelNames: ['duplicate'] as const,
    registers: [this.registry],
  });
  readonly agentMessages = new Counter({
    name: 'cgfence_agent_messages_total',
    help: 'Messages from host agents by kind (register, sync, bundle, report) and outcome',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly eventsIngested = new Counter({
    name: 'cgfence_events_ingested_total',
    help: 'Messages of the CGF_EVENTS stream by kind (block, run) and outcome (stored, duplicate, malformed, forged)',
    labelNames: ['kind', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly eventsBatchSeconds = new Histogram({
    name: 'cgfence_events_batch_seconds',
    help: 'Time to write one batch of block events (one transaction)',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly findingOccurrences = new Counter({
    name: 'cgfence_finding_occurrences_total',
    help: 'Occurrence rows (one per owner and entry per ingest batch) turned into finding events',
    registers: [this.registry],
  });
  readonly webhookDeliveries = new Counter({
    name: 'cgfence_webhook_deliveries_total',
    help: 'Webhook delivery attempts by outcome (delivered, retry, dead)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly contentsJobs = new Gauge({
    name: 'cgfence_contents_jobs',
    help: 'Big blocklist jobs (commit, diff, version, replay, transfer encoding) running or waiting for a contents thread',
    registers: [this.registry],
  });
  readonly contentsRefused = new Counter({
    name: 'cgfence_contents_refused_total',
    help: 'Big blocklist jobs refused with 503 server.busy (CGFENCE_CONTENTS_QUEUE full)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'cgfence_server_' });
  }
}
