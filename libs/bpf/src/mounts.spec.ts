import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { findCgroup2Root, isMountedAs, parseMounts } from './mounts';

const HYBRID = `sysfs /sys sysfs rw,nosuid,nodev,noexec,relatime 0 0
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`;

const UNIFIED = `proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime,nsdelegate,memory_recursiveprot 0 0
bpf /sys/fs/bpf bpf rw,nosuid,nodev,noexec,relatime,mode=700 0 0
`;

describe(findCgroup2Root.name, () => {
  it('finds the unified hierarchy on a hybrid host', () => {
    assert.equal(findCgroup2Root(HYBRID), '/sys/fs/cgroup/unified');
  });

  it('finds /sys/fs/cgroup on a pure cgroup v2 host', () => {
    assert.equal(findCgroup2Root(UNIFIED), '/sys/fs/cgroup');
  });

  it('prefers /sys/fs/cgroup when cgroup2 is mounted twice', () => {
    const text = `cgroup2 /run/other cgroup2 rw 0 0\n${UNIFIED}`;
    assert.equal(findCgroup2Root(text), '/sys/fs/cgroup');
  });

  it('decodes octal escapes in mount points', () => {
    assert.equal(findCgroup2Root('none /mnt/my\\040cgroups cgroup2 rw 0 0\n'), '/mnt/my cgroups');
  });

  it('says clearly when there is no cgroup2 mount', () => {
    const v1Only = HYBRID.split('\n').filter((l) => !l.includes('cgroup2')).join('\n');
    assert.throws(() => findCgroup2Root(v1Only), /no cgroup2 filesystem in \/proc\/mounts/);
    assert.throws(() => findCgroup2Root(''), /no cgroup2/);
  });
});

describe(isMountedAs.name, () => {
  it('matches the exact mount point and type, ignoring a trailing slash', () => {
    assert.equal(isMountedAs(UNIFIED, '/sys/fs/bpf', 'bpf'), true);
    assert.equal(isMountedAs(UNIFIED, '/sys/fs/bpf/', 'bpf'), true);
    assert.equal(isMountedAs(HYBRID, '/sys/fs/bpf', 'bpf'), false);
    assert.equal(isMountedAs(UNIFIED, '/sys/fs/bpf/sub', 'bpf'), false);
    assert.equal(isMountedAs(UNIFIED, '/sys/fs/cgroup', 'bpf'), false);
  });
});

describe(parseMounts.name, () => {
  it('splits each line into source, mount point, type and options, skipping junk', () => {
    assert.deepEqual(parseMounts('bpf /sys/fs/bpf bpf rw,relatime 0 0\n\ngarbage\n'), [
      { source: 'bpf', mountPoint: '/sys/fs/bpf', fsType: 'bpf', options: ['rw', 'relatime'] },
    ]);
  });
});
