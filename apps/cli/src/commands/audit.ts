import { Command, InvalidArgumentError } from 'commander';
import type { AuditRecord } from '@cgfence/proto';
import { client, globals } from '../context';
import { printJson, printLines, printTable } from '../output';

const limit = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) throw new InvalidArgumentError('must be a whole number from 1 to 1000');
  return n;
};

export function auditCommand(): Command {
  return new Command('audit')
    .description('who did what, newest first (operator)')
    .option('--actor <name>', 'only this actor')
    .option('--stream <prefix>', 'only streams starting with this, e.g. blocklist-deploy')
    .option('-n, --limit <n>', 'how many', limit, 50)
    .option('--before <position>', 'page: records older than this position')
    .action(async (o: { actor?: string; stream?: string; limit: number; before?: string }, self: Command) => {
      const q = new URLSearchParams({ limit: String(o.limit) });
      if (o.actor) q.set('actor', o.actor);
      if (o.stream) q.set('stream', o.stream);
      if (o.before) q.set('before', o.before);
      const page = await client(self).get<{ records: AuditRecord[]; next: string | null }>(`audit?${q.toString()}`);
      if (globals(self).json) return printJson(page);
      printTable(['POSITION', 'TIME', 'ACTOR', 'EVENT', 'STREAM'], page.records.map((r) => [r.position, r.time, r.actor, r.type, r.stream]));
      if (page.next) printLines([`(more: --before ${page.next})`]);
    });
}
