// Checks that the loader's copy of c/cgfence.h (layout.ts) and of the kernel
// ABI (KERNEL_ABI) match the C side: a probe program generated from the
// TypeScript descriptors is compiled with clang against the real headers and
// prints every offsetof/sizeof/value; and the compiled .bpf.o is opened with
// libbpf to compare its programs and maps with the lists the loader pins.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BPF_OBJECT_PATH } from './data-plane';
import {
  ADDR_KEY,
  CONSTANTS,
  COUNTERS,
  DNS_COUNTERS,
  HEARTBEAT_VALUE_SIZE,
  RATE_CONFIG,
  RATE_COUNTERS,
  LEARNED_MAX_ENTRIES,
  NAME_SCRATCH,
  LEARNED_VALUE_SIZE,
  PINNED_MAPS,
  PREFILTER4_KEY_SIZE,
  PREFILTER4_VALUE_SIZE,
  PROGRAMS,
  STRUCTS,
} from './layout';
import { KERNEL_ABI, libbpf } from './libbpf';

const C_DIR = join(__dirname, '..', '..', 'c');
const HEADER = join(C_DIR, 'cgfence.h');

/** C expression for each KERNEL_ABI entry. */
const KERNEL_ABI_C: Record<keyof typeof KERNEL_ABI, string> = {
  BPF_MAP_TYPE_HASH: 'BPF_MAP_TYPE_HASH',
  BPF_MAP_TYPE_ARRAY: 'BPF_MAP_TYPE_ARRAY',
  BPF_MAP_TYPE_LPM_TRIE: 'BPF_MAP_TYPE_LPM_TRIE',
  BPF_ANY: 'BPF_ANY',
  BPF_F_NO_PREALLOC: 'BPF_F_NO_PREALLOC',
  BPF_LINK_TYPE_CGROUP: 'BPF_LINK_TYPE_CGROUP',
  LINK_INFO_PROG_ID_OFFSET: 'offsetof(struct bpf_link_info, prog_id)',
  LINK_INFO_CGROUP_ID_OFFSET: 'offsetof(struct bpf_link_info, cgroup.cgroup_id)',
  MAP_CREATE_OPTS_SIZE: 'sizeof(struct bpf_map_create_opts)',
  MAP_CREATE_OPTS_FLAGS_OFFSET: 'offsetof(struct bpf_map_create_opts, map_flags)',
  MAP_BATCH_OPTS_SIZE: 'sizeof(struct bpf_map_batch_opts)',
  MAP_INFO_ID_OFFSET: 'offsetof(struct bpf_map_info, id)',
  MAP_INFO_KEY_SIZE_OFFSET: 'offsetof(struct bpf_map_info, key_size)',
  MAP_INFO_VALUE_SIZE_OFFSET: 'offsetof(struct bpf_map_info, value_size)',
  MAP_INFO_MAX_ENTRIES_OFFSET: 'offsetof(struct bpf_map_info, max_entries)',
  CLOCK_MONOTONIC: 'CLOCK_MONOTONIC',
};

/** enum bpf_map_type's BPF_MAP_TYPE_LRU_HASH (only this test needs it; checked in the probe below). */
const BPF_MAP_TYPE_LRU_HASH = 9;

/** Structs in the header the loader never reads (kernel-private state). */
const KERNEL_ONLY_STRUCTS = ['struct cgf_sock_state', 'struct cgf_rate_bucket'];

function probeSource(): string {
  const lines: string[] = [];
  const emit = (key: string, expr: string) => lines.push(`  printf("%s %lld\\n", "${key}", (long long)(${expr}));`);
  for (const s of STRUCTS) {
    emit(`size:${s.cType}`, `sizeof(${s.cType})`);
    for (const field of Object.keys(s.fields)) {
      emit(`offset:${s.cType}.${field}`, `offsetof(${s.cType}, ${field})`);
      emit(`fsize:${s.cType}.${field}`, `sizeof(((${s.cType} *)0)->${field})`);
    }
  }
  for (const name of Object.keys(CONSTANTS)) emit(`const:${name}`, name);
  COUNTERS.forEach(([cName]) => emit(`const:${cName}`, cName));
  emit('const:CGF_CNT_MAX', 'CGF_CNT_MAX');
  DNS_COUNTERS.forEach(([cName]) => emit(`const:${cName}`, cName));
  emit('const:CGF_DCNT_MAX', 'CGF_DCNT_MAX');
  RATE_COUNTERS.forEach(([cName]) => emit(`const:${cName}`, cName));
  emit('const:CGF_RCNT_MAX', 'CGF_RCNT_MAX');
  for (const [key, expr] of Object.entries(KERNEL_ABI_C)) emit(`abi:${key}`, expr);
  emit('abi:BPF_MAP_TYPE_LRU_HASH', 'BPF_MAP_TYPE_LRU_HASH');
  return [
    '#include <stddef.h>',
    '#include <stdio.h>',
    '#include <time.h>',
    '#include <linux/bpf.h>',
    '#include <bpf/bpf.h>',
    '#include "cgfence.h"',
    'int main(void)',
    '{',
    ...lines,
    '  return 0;',
    '}',
  ].join('\n');
}

describe('cgfence.h layout', () => {
  let dir: string;
  let values: Map<string, number>;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cgfence-layout-'));
    writeFileSync(join(dir, 'probe.c'), probeSource());
    try {
      execFileSync('clang', ['-Wall', '-Werror', '-I', C_DIR, '-o', join(dir, 'probe'), join(dir, 'probe.c')], { stdio: 'pipe' });
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      throw new Error(`the layout probe does not compile against cgfence.h (a name in layout.ts is missing in C?):\n${e.stderr?.toString() ?? e.message}`);
    }
    values = new Map(
      execFileSync(join(dir, 'probe'), { encoding: 'utf8' })
        .trim()
        .split('\n')
        .map((l) => {
          const at = l.lastIndexOf(' ');
          return [l.slice(0, at), Number(l.slice(at + 1))] as const;
        }),
    );
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const s of STRUCTS) {
    it(`${s.cType}: every offset and size the loader uses matches C, padding included`, () => {
      assert.equal(values.get(`size:${s.cType}`), s.size, `sizeof(${s.cType})`);
      let covered = 0;
      for (const [field, want] of Object.entries(s.fields)) {
        assert.equal(values.get(`offset:${s.cType}.${field}`), want.offset, `offsetof(${s.cType}, ${field})`);
        assert.equal(values.get(`fsize:${s.cType}.${field}`), want.size, `sizeof(${s.cType}.${field})`);
        covered += want.size;
      }
      assert.equal(covered, s.size, `${s.cType}: the listed fields must cover every byte (no implicit holes, no unlisted field)`);
    });
  }

  it('every constant the loader uses has the value C gives it', () => {
    for (const [name, v] of Object.entries(CONSTANTS)) assert.equal(values.get(`const:${name}`), v, name);
  });

  it('the counter names follow enum cgf_counter index by index', () => {
    assert.equal(values.get('const:CGF_CNT_MAX'), COUNTERS.length);
    COUNTERS.forEach(([cName], idx) => assert.equal(values.get(`const:${cName}`), idx, cName));
  });

  it('the DNS counter names follow enum cgf_dns_counter index by index', () => {
    assert.equal(values.get('const:CGF_DCNT_MAX'), DNS_COUNTERS.length);
    DNS_COUNTERS.forEach(([cName], idx) => assert.equal(values.get(`const:${cName}`), idx, cName));
  });

  it('the rate-limit counter names follow enum cgf_rate_counter index by index', () => {
    assert.equal(values.get('const:CGF_RCNT_MAX'), RATE_COUNTERS.length);
    RATE_COUNTERS.forEach(([cName], idx) => assert.equal(values.get(`const:${cName}`), idx, cName));
  });

  it('every constant and struct the header defines is known to the loader', () => {
    const header = readFileSync(HEADER, 'utf8');
    const known = new Set([
      ...Object.keys(CONSTANTS),
      ...COUNTERS.map(([c]) => c),
      ...DNS_COUNTERS.map(([c]) => c),
      ...RATE_COUNTERS.map(([c]) => c),
      'CGF_CNT_MAX',
      'CGF_DCNT_MAX',
      'CGF_RCNT_MAX',
      'CGFENCE_H',
    ]);
    const defined = [...header.matchAll(/^#define\s+(CGF\w*)/gm), ...header.matchAll(/^\s+(CGF_\w+)\s*=/gm)].map((m) => m[1]!);
    assert.deepEqual(defined.filter((n) => !known.has(n)), [], 'constants in cgfence.h missing from layout.ts');
    const structs = [...header.matchAll(/^struct (cgf_\w+) \{/gm)].map((m) => `struct ${m[1]}`);
    const knownStructs = new Set([...STRUCTS.map((s) => s.cType), ...KERNEL_ONLY_STRUCTS]);
    assert.deepEqual(structs.filter((n) => !knownStructs.has(n)), [], 'structs in cgfence.h missing from layout.ts');
  });

  it('the kernel ABI values the loader hard-codes match <linux/bpf.h> and <bpf/bpf.h>', () => {
    for (const [name, v] of Object.entries(KERNEL_ABI)) assert.equal(values.get(`abi:${name}`), v, name);
    assert.equal(values.get('abi:BPF_MAP_TYPE_LRU_HASH'), BPF_MAP_TYPE_LRU_HASH);
  });

  it('the BPF-target build (BTF of the .bpf.o) lays the shared structs out the same way', () => {
    const btf = JSON.parse(execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', BPF_OBJECT_PATH], { encoding: 'utf8' })) as {
      types: { kind: string; name?: string; size?: number; members?: { name: string; bits_offset: number }[] }[];
    };
    // clang emits a struct's BTF only where the program uses it by value;
    // these four are (the rest are checked by the probe above).
    const mustHave = ['struct cgf_config', 'struct cgf_proc', 'struct cgf_dns_key', 'struct cgf_addr_key'];
    for (const s of STRUCTS) {
      const t = btf.types.find((x) => x.kind === 'STRUCT' && `struct ${x.name}` === s.cType);
      if (!t) {
        assert.ok(!mustHave.includes(s.cType), `${s.cType} missing from the BTF of ${BPF_OBJECT_PATH}`);
        continue;
      }
      assert.equal(t.size, s.size, `BTF size of ${s.cType}`);
      const offsets = Object.fromEntries((t.members ?? []).map((m) => [m.name, m.bits_offset / 8]));
      const want = Object.fromEntries(Object.entries(s.fields).map(([n, fl]) => [n, fl.offset]));
      assert.deepEqual(offsets, want, `BTF member offsets of ${s.cType}`);
    }
  });

  it('the compiled object has exactly the programs and maps the loader attaches and pins', () => {
    const bpf = libbpf();
    const obj = bpf.bpf_object__open_file(BPF_OBJECT_PATH, null);
    assert.ok(obj, `libbpf could not open ${BPF_OBJECT_PATH}`);
    try {
      const progs: string[] = [];
      for (let p = bpf.bpf_object__next_program(obj, null); p; p = bpf.bpf_object__next_program(obj, p)) progs.push(bpf.bpf_program__name(p));
      const maps: string[] = [];
      for (let m = bpf.bpf_object__next_map(obj, null); m; m = bpf.bpf_object__next_map(obj, m)) maps.push(bpf.bpf_map__name(m));

      assert.deepEqual(progs.sort(), [...PROGRAMS].sort());
      // Internal maps (.bss) and map-in-map templates are not pinned.
      assert.deepEqual(maps.filter((m) => !m.includes('.')).sort(), [...PINNED_MAPS].sort());
    } finally {
      bpf.bpf_object__close(obj);
    }
  });

  it('the maps the loader reads and writes by hand have the shape it assumes (prefilter, learned addresses, heartbeat)', () => {
    const bpf = libbpf();
    const obj = bpf.bpf_object__open_file(BPF_OBJECT_PATH, null);
    assert.ok(obj, `libbpf could not open ${BPF_OBJECT_PATH}`);
    try {
      const shape = (name: string) => {
        const m = bpf.bpf_object__find_map_by_name(obj, name);
        assert.ok(m, `${name} missing`);
        return { type: bpf.bpf_map__type(m), key: bpf.bpf_map__key_size(m), value: bpf.bpf_map__value_size(m), max: bpf.bpf_map__max_entries(m) };
      };
      assert.deepEqual(shape('cgf_prefilter4'), {
        type: KERNEL_ABI.BPF_MAP_TYPE_ARRAY,
        key: PREFILTER4_KEY_SIZE,
        value: PREFILTER4_VALUE_SIZE,
        max: CONSTANTS.CGF_PREFILTER4_SLOTS,
      });
      assert.equal(2 ** (32 - CONSTANTS.CGF_PREFILTER4_SHIFT), CONSTANTS.CGF_PREFILTER4_SLOTS, 'one slot per possible top-bits value');
      assert.deepEqual(shape('cgf_learned'), {
        type: KERNEL_ABI.BPF_MAP_TYPE_HASH,
        key: ADDR_KEY.size,
        value: LEARNED_VALUE_SIZE,
        max: LEARNED_MAX_ENTRIES,
      });
      assert.deepEqual(shape('cgf_heartbeat'), { type: KERNEL_ABI.BPF_MAP_TYPE_ARRAY, key: 4, value: HEARTBEAT_VALUE_SIZE, max: 1 });
      assert.equal(shape('cgf_dns_counters').max, DNS_COUNTERS.length);
      assert.deepEqual(shape('cgf_dns_ports'), { type: KERNEL_ABI.BPF_MAP_TYPE_HASH, key: 2, value: 8, max: CONSTANTS.CGF_DNS_PORTS_MAX });
      assert.equal(shape('cgf_scratch').value, NAME_SCRATCH.size);
      assert.deepEqual(shape('cgf_rate_config'), { type: KERNEL_ABI.BPF_MAP_TYPE_ARRAY, key: 4, value: RATE_CONFIG.size, max: 1 });
      assert.deepEqual(shape('cgf_rate_procs'), { type: BPF_MAP_TYPE_LRU_HASH, key: 4, value: 24, max: CONSTANTS.CGF_RATE_PROCS_MAX });
      assert.deepEqual(shape('cgf_rate_cgroups'), { type: BPF_MAP_TYPE_LRU_HASH, key: 8, value: 24, max: CONSTANTS.CGF_RATE_CGROUPS_MAX });
      assert.equal(shape('cgf_rate_counters').max, RATE_COUNTERS.length);
      assert.ok(CONSTANTS.CGF_NAME_MAX < NAME_SCRATCH.fields.name.size, 'the name scratch holds the longest name');
    } finally {
      bpf.bpf_object__close(obj);
    }
  });
});
