import { Inject, Injectable, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { CommandRedactor, compileRedactPatterns } from '@cgfence/proto';
import type { Logger } from 'pino';
import type { AgentConfig } from '../agent/agent-config';
import { AGENT_CONFIG, AGENT_LOGGER } from '../app/tokens';
import { RunsService } from '../runs/runs.service';
import { BlockLog } from './block-log';
import { EventJournal } from './event-journal';
import type { JournalRecord, RecordContext } from './journal-record';

/**
 * The local event journal (events.jsonl) and the block log lines: every
 * block, audit and alert is written here first, then handed to listeners
 * (event shipping, metrics).
 */
@Injectable()
export class JournalService implements OnModuleInit, OnApplicationShutdown {
  private journal: EventJournal | undefined;
  private readonly blockLog: BlockLog;
  private readonly listeners = new Set<(r: JournalRecord) => void>();
  /** Takes secrets out of every record's command line (built-in shapes and --redact-pattern). */
  private readonly redactor: CommandRedactor;

  constructor(
    @Inject(AGENT_CONFIG) private readonly config: AgentConfig,
    @Inject(AGENT_LOGGER) logger: Logger,
    private readonly runs: RunsService,
  ) {
    this.blockLog = new BlockLog(logger);
    this.redactor = new CommandRedactor(compileRedactPatterns(config.redactPatterns ?? []));
  }

  onModuleInit(): void {
    this.journal = new EventJournal({ dir: this.config.stateDir });
  }

  onApplicationShutdown(): void {
    this.blockLog.close(); // says how many block lines were held back, if any
    this.journal?.close();
    this.journal = undefined;
  }

  /** What a record needs to name its host, cohort and run. */
  context(): RecordContext {
    return { host: this.config.host, cohort: this.config.cohort, runs: this.runs.lookup, redactor: this.redactor };
  }

  record(r: JournalRecord): void {
    this.journal?.append(r);
    this.blockLog.write(r);
    for (const l of this.listeners) l(r);
  }

  onRecord(listener: (r: JournalRecord) => void): void {
    this.listeners.add(listener);
  }
}
