import { CommanderError } from 'commander';
import { CliError, EXIT_FAILURE, EXIT_USAGE } from './errors';
import { buildProgram, CLI_VERSION } from './program';

/** Runs the CLI and returns its exit code: 0 ok, 1 failure, 2 usage. */
export async function run(argv: string[]): Promise<number> {
  // Only `cgfence --version` / `-V` alone: a root --version option would also
  // swallow `blocklist assign NAME --version N` further down the line.
  const rest = argv.slice(2);
  if (rest.length === 1 && (rest[0] === '--version' || rest[0] === '-V')) {
    process.stdout.write(`${CLI_VERSION}\n`);
    return 0;
  }
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version "fail" with exit code 0.
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (err instanceof CliError) {
      process.stderr.write(`error: ${err.message}\n`);
      for (const d of err.details) process.stderr.write(`  ${d}\n`);
      return err.exitCode;
    }
    process.stderr.write(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT_FAILURE;
  }
}

/** Entry point of the `cgfence` executable. */
export function cli(): void {
  void run(process.argv).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) cli();
