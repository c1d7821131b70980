import { Module } from '@nestjs/common';
import { RunsModule } from '../runs/runs.module';
import { JournalService } from './journal.service';

/** Journal: the local event journal and block log. */
@Module({ imports: [RunsModule], providers: [JournalService], exports: [JournalService] })
export class JournalModule {}
