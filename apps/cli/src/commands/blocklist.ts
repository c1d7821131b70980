import { Command, InvalidArgumentError } from 'commander';
import { readFileSync } from 'node:fs';
import type { BlocklistView, CommitResult, DiffView, FleetView, VersionDetailView, VersionView } from '@cgfence/proto';
import { client, globals } from '../context';
import { CliError, EXIT_USAGE } from '../errors';
import { printJson, printLines, printTable } from '../output';

const versionNumber = (v: string): number => {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number');
  return Number(v);
};
const collect = (v: string, acc: string[]): string[] => [...acc, v];
const enc = encodeURIComponent;

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw new CliError(`cannot read ${file === '-' ? 'standard input' : file}: ${(err as Error).message}`);
  }
}

export function blocklistCommand(): Command {
  const cmd = new Command('blocklist').description('create, version and inspect blocklists');

  cmd
    .command('create')
    .description('create a new, empty blocklist')
    .argument('<name>', 'lower-case name, e.g. deploy-safety')
    .option('-d, --description <text>', 'what the list is for', '')
    .option('-o, --owner <team>', 'owning team (default: the token name)')
    .action(async (name: string, o: { description: string; owner?: string }, self: Command) => {
      const b = await client(self).post<BlocklistView>('blocklists', { name, description: o.description, owner: o.owner });
      if (globals(self).json) printJson(b);
      else printLines([`created blocklist ${b.name} (owner ${b.owner})`]);
    });

  cmd
    .command('list')
    .description('list blocklists')
    .action(async (_o: unknown, self: Command) => {
      const all = await client(self).get<BlocklistView[]>('blocklists');
      if (globals(self).json) return printJson(all);
      printTable(['NAME', 'VERSION', 'OWNER', 'UPDATED', 'DESCRIPTION'], all.map((b) => [b.name, b.latestVersion, b.owner, b.updatedAt, b.description]));
    });

  cmd
    .command('show')
    .description('show a blocklist, or one version of it with its entries')
    .argument('<name>')
    .argument('[version]', 'show this version with its entries', versionNumber)
    .option('--entries', 'print only the entries of the version (default: latest) in the blocklist file format, to edit and commit back')
    .action(async (name: string, at: number | undefined, o: { entries?: boolean }, self: Command) => {
      const api = client(self);
      const json = globals(self).json;
      if (at === undefined && !o.entries) {
        const b = await api.get<BlocklistView>(`blocklists/${enc(name)}`);
        if (json) return printJson(b);
        return printLines([
          `name:        ${b.name}`,
          `description: ${b.description}`,
          `owner:       ${b.owner}`,
          `created:     ${b.createdAt} by ${b.createdBy}`,
          `latest:      v${b.latestVersion}${b.latestHash ? ` ${b.latestHash}` : ' (no version committed yet)'}`,
        ]);
      }
      const version = at ?? (await api.get<BlocklistView>(`blocklists/${enc(name)}`)).latestVersion;
      if (o.entries && !json) {
        process.stdout.write(await api.getText(`blocklists/${enc(name)}/versions/${version}?format=text`));
        return;
      }
      const v = await api.get<VersionDetailView>(`blocklists/${enc(name)}/versions/${version}`);
      if (json) return printJson(v);
      printLines([`${v.blocklist} v${v.version} ${v.contentHash}`, `${v.entryCount} entries, committed ${v.committedAt} by ${v.committedBy}: ${v.message || '(no message)'}`, '']);
      printTable(['KIND', 'ENTRY', 'COMMENT'], v.entries.map((e) => [e.kind, `${e.value}${e.resolve ? ' !resolve' : ''}`, e.comment ?? '']));
    });

  cmd
    .command('versions')
    .description('list the versions of a blocklist')
    .argument('<name>')
    .action(async (name: string, _o: unknown, self: Command) => {
      const all = await client(self).get<VersionView[]>(`blocklists/${enc(name)}/versions`);
      if (globals(self).json) return printJson(all);
      printTable(
        ['VERSION', 'ENTRIES', '+', '-', 'HASH', 'COMMITTED', 'BY', 'MESSAGE'],
        all.map((v) => [v.version, v.entryCount, v.addedCount, v.removedCount, v.contentHash.slice(0, 19), v.committedAt, v.committedBy, v.message]),
      );
    });

  cmd
    .command('commit')
    .description('commit a new version: a whole list from --file, or --add/--remove changes to the latest version')
    .argument('<name>')
    .option('-f, --file <path>', 'the whole list, one entry per line, # comments ("-" for standard input)')
    .option('-a, --add <entry>', 'add an entry (repeatable)', collect, [])
    .option('-r, --remove <entry>', 'remove an entry (repeatable)', collect, [])
    .option('-m, --message <text>', 'why this change', '')
    .option('--expected-version <n>', 'refuse if the latest version is no longer this one', versionNumber)
    .action(async (name: string, o: { file?: string; add: string[]; remove: string[]; message: string; expectedVersion?: number }, self: Command) => {
      const api = client(self);
      const diffMode = o.add.length > 0 || o.remove.length > 0;
      if (o.file && diffMode) throw new CliError('give either --file or --add/--remove, not both', EXIT_USAGE);
      if (!o.file && !diffMode) throw new CliError('nothing to commit: give --file FILE, or --add/--remove ENTRY', EXIT_USAGE);
      let result: CommitResult;
      if (o.file) {
        const q = new URLSearchParams({ message: o.message });
        if (o.expectedVersion !== undefined) q.set('expectedVersion', String(o.expectedVersion));
        result = await api.postText<CommitResult>(`blocklists/${enc(name)}/versions?${q.toString()}`, readInput(o.file));
      } else {
        result = await api.post<CommitResult>(`blocklists/${enc(name)}/versions`, { add: o.add, remove: o.remove, message: o.message, expectedVersion: o.expectedVersion });
      }
      if (globals(self).json) return printJson(result);
      const v = result.version;
      if (!result.created) return printLines([`unchanged: the content equals ${name} v${v.version} (${v.contentHash}); nothing committed`]);
      const merged = result.merged > 0 ? `, ${result.merged} duplicates merged` : '';
      printLines([`committed ${name} v${v.version}: ${v.entryCount} entries (+${v.addedCount} -${v.removedCount}${merged}) ${v.contentHash}`]);
    });

  cmd
    .command('diff')
    .description('entries added and removed between two versions')
    .argument('<name>')
    .argument('<from>', 'older version (0 = empty)', versionNumber)
    .argument('[to]', 'newer version (default: latest)', versionNumber)
    .action(async (name: string, from: number, to: number | undefined, _o: unknown, self: Command) => {
      const api = client(self);
      const target = to ?? (await api.get<BlocklistView>(`blocklists/${enc(name)}`)).latestVersion;
      const d = await api.get<DiffView>(`blocklists/${enc(name)}/diff?from=${from}&to=${target}`);
      if (globals(self).json) return printJson(d);
      printLines([`${name} v${d.from} → v${d.to}: +${d.added.length} -${d.removed.length}`]);
      printLines(d.added.map((e) => `+ ${e.value}`));
      printLines(d.removed.map((e) => `- ${e.value}`));
    });

  cmd
    .command('assign')
    .description('make a version the fleet baseline: every host converges to it (a commit alone changes no host)')
    .argument('<name>')
    .requiredOption('--version <n>', 'the version to enforce', versionNumber)
    .option('--rollback', 'allow going back to an older version than the current baseline')
    .action(async (name: string, o: { version: number; rollback?: boolean }, self: Command) => {
      const f = await client(self).post<FleetView>(`blocklists/${enc(name)}/assign`, { version: o.version, rollback: o.rollback === true });
      if (globals(self).json) return printJson(f);
      const back = f.rollback ? ' (rollback)' : '';
      printLines([
        `baseline is now ${name} v${o.version}${back}: fleet revision ${f.revision}`,
        `${f.hosts.inSync}/${f.hosts.total} hosts in sync so far; watch with: cgfence hosts`,
      ]);
    });

  return cmd;
}
