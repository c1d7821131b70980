import { Module } from '@nestjs/common';
import { RunsService } from './runs.service';

/** Runs: `cgfence run` cgroups under the deploy cgroup, their labels and reaping. */
@Module({ providers: [RunsService], exports: [RunsService] })
export class RunsModule {}
