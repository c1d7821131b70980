// `cgfence agent --refused-unix-sockets` and the hidden
// `--unix-guard-attach-types`: what is refused before anything starts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildHostProgram, defaultRefusedUnixSockets } from './main';

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

describe(defaultRefusedUnixSockets.name, () => {
  it('lists nscd and systemd-resolved always, sssd only where it serves hosts', () => {
    const base = ['/var/run/nscd/socket', '/run/nscd/socket', '/run/systemd/resolve/io.systemd.Resolve', '/var/run/systemd/resolve/io.systemd.Resolve'];
    assert.deepEqual(defaultRefusedUnixSockets('passwd: files sss\nhosts: files dns\n'), base);
    assert.deepEqual(defaultRefusedUnixSockets(undefined), base);
    assert.deepEqual(defaultRefusedUnixSockets('hosts: files sss dns\n'), [...base, '/var/lib/sss/pipes/nss']);
  });
});

describe('cgfence agent --refused-unix-sockets', () => {
  it('refuses relative paths, over-long paths, more than 32 and junk, naming the flag', async () => {
    assert.match(await refused(['--refused-unix-sockets', 'run/nscd/socket']), /--refused-unix-sockets: unix socket path must be absolute \(\/…\) or abstract \(@name\), got "run\/nscd\/socket"/);
    assert.match(await refused(['--refused-unix-sockets', `/${'x'.repeat(120)}`]), /--refused-unix-sockets: .*121 bytes; sun_path holds 108/);
    const many = Array.from({ length: 33 }, (_, i) => `/run/s${i}`).join(',');
    assert.match(await refused(['--refused-unix-sockets', many]), /--refused-unix-sockets: at most 32 unix socket paths, got 33/);
    assert.match(await refused(['--refused-unix-sockets', 'default,']), /--refused-unix-sockets: .*got ""/);
    assert.match(await refused(['--refused-unix-sockets', '@']), /absolute \(\/…\) or abstract \(@name\), got "@"/);
  });

  it('refuses a malformed --unix-guard-attach-types', async () => {
    assert.match(await refused(['--unix-guard-attach-types', '49']), /--unix-guard-attach-types: give CONNECT,SENDMSG attach type numbers, got "49"/);
  });

  it('keeps --unix-guard-attach-types out of the help', () => {
    const agent = buildHostProgram().commands.find((c) => c.name() === 'agent')!;
    const help = agent.commands.find((c) => c.name() === 'start')!.helpInformation();
    assert.match(help, /--refused-unix-sockets <list>/);
    assert.doesNotMatch(help, /unix-guard-attach-types/);
  });
});
