// `cgfence agent --dns-client-limit / --dns-run-limit`: what is refused
// before anything starts, naming the flag.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildHostProgram } from './main';

async function refused(args: string[]): Promise<string> {
  const program = buildHostProgram();
  program.configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
  try {
    await program.parseAsync(['node', 'cgfence', 'agent', '--policy-file', '/etc/hosts', ...args]);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`not refused: ${args.join(' ')}`);
}

describe('cgfence agent --dns-client-limit / --dns-run-limit', () => {
  it('refuses junk, zero and values beyond the cap, naming the flag and the form', async () => {
    assert.match(await refused(['--dns-client-limit', '1000']), /--dns-client-limit: ratePerSecond must be an integer 1\.\.1000000, got NaN \(give RATE\/WINDOW, e\.g\. 1000\/1000, or off; got "1000"\)/);
    assert.match(await refused(['--dns-client-limit', '0/10']), /--dns-client-limit: ratePerSecond must be an integer 1\.\.1000000, got 0/);
    assert.match(await refused(['--dns-run-limit', '10/0']), /--dns-run-limit: window must be an integer 1\.\.1000000, got 0/);
    assert.match(await refused(['--dns-run-limit', '10/2000000']), /--dns-run-limit: window must be an integer 1\.\.1000000, got 2000000/);
    assert.match(await refused(['--dns-run-limit', 'none']), /--dns-run-limit: .*or off; got "none"/);
  });
});
