import { Command, Option } from 'commander';
import { ROLES, TokenView } from '@cgfence/proto';
import { client, globals } from '../context';
import { printJson, printLines, printTable } from '../output';

export function tokenCommand(): Command {
  const cmd = new Command('token').description('manage API tokens (admin)');
  cmd
    .command('create')
    .description('issue a token; its secret is printed once')
    .argument('<name>', 'who or what uses it, e.g. ci-deployer')
    .addOption(new Option('--role <role>', 'what it may do').choices(ROLES).default('viewer'))
    .action(async (name: string, o: { role: string }, self: Command) => {
      const r = await client(self).post<{ token: TokenView; secret: string }>('tokens', { name, role: o.role });
      if (globals(self).json) return printJson(r);
      printLines([`issued ${r.token.role} token ${r.token.id} for ${r.token.name}`, `secret (shown once): ${r.secret}`]);
    });
  cmd
    .command('list')
    .description('list tokens')
    .action(async (_o: unknown, self: Command) => {
      const all = await client(self).get<TokenView[]>('tokens');
      if (globals(self).json) return printJson(all);
      printTable(['ID', 'NAME', 'ROLE', 'CREATED', 'BY', 'REVOKED'], all.map((t) => [t.id, t.name, t.role, t.createdAt, t.createdBy, t.revokedAt]));
    });
  cmd
    .command('revoke')
    .description('revoke a token')
    .argument('<id>')
    .action(async (id: string, _o: unknown, self: Command) => {
      await client(self).delete(`tokens/${encodeURIComponent(id)}`);
      if (globals(self).json) return printJson({ revoked: id });
      printLines([`revoked ${id}`]);
    });
  return cmd;
}
