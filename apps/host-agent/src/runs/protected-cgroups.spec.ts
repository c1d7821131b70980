import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeProtectedPath, ProtectCgroupError, protectedPaths } from './protected-cgroups';

const ROOT = '/sys/fs/cgroup/unified';

describe(normalizeProtectedPath.name, () => {
  it('takes paths relative to the cgroup root, as /proc/PID/cgroup writes them, or under the mount point', () => {
    assert.equal(normalizeProtectedPath('system.slice/deployd.service', ROOT, 'cgfence-deploy'), 'system.slice/deployd.service');
    assert.equal(normalizeProtectedPath('/system.slice/deployd.service/', ROOT, 'cgfence-deploy'), 'system.slice/deployd.service');
    assert.equal(normalizeProtectedPath(`${ROOT}/system.slice/docker-abc.scope`, ROOT, 'cgfence-deploy'), 'system.slice/docker-abc.scope');
    assert.equal(normalizeProtectedPath('system.slice//./x.service', ROOT, 'cgfence-deploy'), 'system.slice/x.service');
  });

  it('refuses the root, "..", and the deploy cgroup, its runs and its parents, naming the flag', () => {
    for (const bad of ['', '/', ROOT, '.', '../etc', 'a/../../b', 'cgfence-deploy', 'cgfence-deploy/run-1', '/cgfence-deploy']) {
      assert.throws(() => normalizeProtectedPath(bad, ROOT, 'cgfence-deploy'), (e: Error) => e instanceof ProtectCgroupError && /--protect-cgroup/.test(e.message), bad);
    }
    assert.throws(() => normalizeProtectedPath('deploys', ROOT, 'deploys/cgfence'), /overlaps the deploy cgroup/);
  });
});

describe(protectedPaths.name, () => {
  it('splits comma lists (the labels file), drops duplicates and sorts', () => {
    assert.deepEqual(protectedPaths(['b.service', 'a.service,b.service', ' '], ROOT, 'cgfence-deploy'), ['a.service', 'b.service']);
  });

  it('refuses a cgroup inside another protected one', () => {
    assert.throws(() => protectedPaths(['system.slice', 'system.slice/x.service'], ROOT, 'cgfence-deploy'), /inside --protect-cgroup system\.slice/);
  });
});
