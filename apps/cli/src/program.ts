import { Command, Option } from 'commander';
import { auditCommand } from './commands/audit';
import { blocklistCommand } from './commands/blocklist';
import { blocklistReplayCommand, eventsCommand, runsCommand } from './commands/events';
import { fleetCommand, hostsCommand } from './commands/fleet';
import { findingsCommand, notificationsCommand, ownersCommand } from './commands/findings';
import { localCommand } from './commands/local';
import { natsCommand } from './commands/nats';
import { enrollTokenCommand, removeHostCommand } from './commands/enroll';
import { rolloutCommand } from './commands/rollout';
import { tokenCommand } from './commands/token';
import { DEFAULT_SERVER } from './context';

export const CLI_VERSION = '0.1.0';

/** The `cgfence` command tree. Every subcommand has --help. */
export function buildProgram(): Command {
  const program = new Command('cgfence')
    .description('keep deploy scripts from depending on the service they deploy')
    .addOption(new Option('-s, --server <url>', 'policy server URL').env('CGFENCE_SERVER').default(DEFAULT_SERVER))
    .addOption(new Option('-t, --token <secret>', 'API token').env('CGFENCE_TOKEN'))
    .addOption(new Option('--token-file <path>', 'read the API token from a file').env('CGFENCE_TOKEN_FILE'))
    .addOption(new Option('--ca <file>', "PEM CA the policy server's HTTPS certificate must chain to").env('CGFENCE_CA'))
    .option('--json', 'machine-readable JSON output', false)
    .showHelpAfterError('(add --help for usage)')
    .enablePositionalOptions(false);
  program.addCommand(blocklistCommand().addCommand(blocklistReplayCommand()));
  program.addCommand(tokenCommand());
  program.addCommand(auditCommand());
  program.addCommand(hostsCommand().addCommand(enrollTokenCommand()).addCommand(removeHostCommand()));
  program.addCommand(fleetCommand());
  program.addCommand(rolloutCommand());
  program.addCommand(eventsCommand());
  program.addCommand(runsCommand());
  program.addCommand(findingsCommand());
  program.addCommand(ownersCommand());
  program.addCommand(notificationsCommand());
  program.addCommand(localCommand());
  program.addCommand(natsCommand());
  program.addHelpText(
    'after',
    [
      '',
      'Host commands (run as root on a host; see `cgfence agent --help`, `cgfence run --help`):',
      '  agent [options]          start the host agent on the deploy cgroup',
      '  agent status|events|teardown',
      '  run [--label k=v]... [--user NAME] [--quiet] -- COMMAND ARGS...   run COMMAND protected by the local agent',
      '',
      'cgfence --version prints the version.',
    ].join('\n'),
  );
  // Usage errors exit 2 everywhere, not commander's default 1.
  const exitOverride = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(exitOverride);
  };
  exitOverride(program);
  return program;
}
