// Real kernel: mounting the BPF filesystem when it is missing, once.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBpffs, findCgroup2Root, parseMounts } from './mounts';

const bpfMountsAt = (path: string) =>
  parseMounts(readFileSync('/proc/mounts', 'utf8')).filter((m) => m.mountPoint === path && m.fsType === 'bpf').length;

describe(ensureBpffs.name, () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bpffs-'));

  after(() => {
    while (bpfMountsAt(dir) > 0) execFileSync('umount', [dir]);
    rmdirSync(dir);
  });

  it('mounts bpffs where there is none, and only once however often it is called', () => {
    if (process.getuid?.() !== 0) throw new Error('this test needs root to mount bpffs');

    assert.equal(ensureBpffs(dir), dir);
    assert.equal(ensureBpffs(dir), dir);

    assert.equal(bpfMountsAt(dir), 1);
  });
});

describe(findCgroup2Root.name, () => {
  it('finds this host\'s cgroup2 hierarchy in /proc/mounts', () => {
    const root = findCgroup2Root();

    // cgroup.controllers exists only in cgroup v2 directories.
    assert.ok(existsSync(join(root, 'cgroup.controllers')), `${root} is a cgroup2 root`);
  });
});
