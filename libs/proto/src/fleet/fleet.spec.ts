import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import {
  BUNDLE_KIND,
  bucketOf,
  BundleHeader,
  checkBundle,
  checkContent,
  checkDesired,
  decodeTransfer,
  DESIRED_KIND,
  DesiredDocument,
  encodeTransfer,
  hostOfSubject,
  keyIdOf,
  parsePublicKeys,
  sha256Tag,
  signDocument,
  targetFor,
} from './index';

const server = generateKeyPairSync('ed25519');
const stranger = generateKeyPairSync('ed25519');
const ring = parsePublicKeys(server.publicKey.export({ type: 'spki', format: 'pem' }).toString());
const now = new Date('2026-11-21T12:00:00Z');
const later = '2026-11-28T12:00:00.000Z';
const content = Buffer.from('github.com\n*.npmjs.org\n');
const encoded = encodeTransfer('gzip', content);

const header = (over: Partial<BundleHeader> = {}): BundleHeader => ({
  kind: BUNDLE_KIND,
  blocklistId: 'core',
  name: 'core',
  version: 3,
  hash: sha256Tag(content),
  entries: 2,
  bytes: content.byteLength,
  encoding: 'gzip',
  transferBytes: encoded.byteLength,
  chunkBytes: 512 * 1024,
  chunks: 1,
  issuedAt: now.toISOString(),
  expiresAt: later,
  ...over,
});

const desired = (over: Partial<DesiredDocument> = {}): DesiredDocument => ({
  kind: DESIRED_KIND,
  revision: 7,
  issuedAt: now.toISOString(),
  expiresAt: later,
  baseline: signDocument(header(), server.privateKey),
  assignments: [],
  audit: { fleet: false, cohorts: ['canary'] },
  rollback: null,
  ...over,
});

describe('fleet documents', () => {
  it('accepts a document signed by a trusted key and hands back its content', () => {
    const d = checkDesired(signDocument(desired(), server.privateKey), ring, now, 6);
    assert.ok(d.ok);
    const b = checkBundle(d.value.baseline, ring, now, { blocklistId: 'core', version: 2 }, null);
    assert.ok(b.ok);
    const bytes = decodeTransfer(b.value, encoded);
    assert.ok(bytes.ok);
    const text = checkContent(b.value, bytes.value);
    assert.deepEqual(text, { ok: true, value: content.toString() });
  });

  it('names each reason to refuse', () => {
    const signed = signDocument(desired(), server.privateKey);
    const reason = (r: { ok: boolean; reason?: string }) => (r.ok ? 'ok' : r.reason);
    assert.equal(reason(checkDesired({ payload: signed.payload }, ring, now, null)), 'unsigned');
    assert.equal(reason(checkDesired({ ...signed, payload: signed.payload.replace('"revision":7', '"revision":8') }, ring, now, null)), 'bad-signature');
    assert.equal(reason(checkDesired(signDocument(desired(), stranger.privateKey), ring, now, null)), 'unknown-key');
    assert.equal(reason(checkDesired(signDocument({ kind: 'something else' }, server.privateKey), ring, now, null)), 'malformed');
    assert.equal(reason(checkDesired(signed, ring, new Date('2026-12-01T00:00:00Z'), null)), 'expired');
    assert.equal(reason(checkDesired(signed, ring, now, 8)), 'stale-revision');
    const old = signDocument(header({ version: 1 }), server.privateKey);
    assert.equal(reason(checkBundle(old, ring, now, { blocklistId: 'core', version: 3 }, null)), 'older-version');
    assert.equal(reason(checkBundle(old, ring, now, { blocklistId: 'core', version: 3 }, { blocklistId: 'core', toVersion: 1 })), 'ok');
    assert.equal(reason(checkBundle(old, ring, now, { blocklistId: 'other', version: 3 }, null)), 'ok', 'another blocklist is not older');
    assert.equal(reason(checkContent(header(), Buffer.from('github.com\n*.npmjs.net\n'))), 'hash-mismatch');
    assert.equal(reason(decodeTransfer(header(), encoded.subarray(1))), 'hash-mismatch');
  });

  it('stops inflating at the size the signed header promises', () => {
    const bomb = gzipSync(Buffer.alloc(50 * 1024 * 1024));
    const r = decodeTransfer(header({ bytes: 1024, transferBytes: bomb.byteLength }), bomb);
    assert.equal(r.ok, false);
  });

  it('picks an assignment over the baseline, and audit by fleet, cohort or assignment', () => {
    const other = signDocument(header({ version: 4 }), server.privateKey);
    const d = desired({ assignments: [{ hosts: ['h1'], bundle: other, reason: 'rollout r1' }] });
    assert.equal(targetFor(d, { hostId: 'h1', cohort: undefined }).bundle, other);
    assert.equal(targetFor(d, { hostId: 'h2', cohort: 'prod' }).reason, 'baseline');
    assert.equal(targetFor(d, { hostId: 'h2', cohort: 'prod' }).audit, false);
    assert.equal(targetFor(d, { hostId: 'h2', cohort: 'canary' }).audit, true);
    assert.equal(targetFor({ ...d, audit: { fleet: true, cohorts: [] } }, { hostId: 'h2', cohort: 'prod' }).audit, true);
  });

  it('selects by labels and deterministic buckets, first assignment first', () => {
    const b = signDocument(header({ version: 5 }), server.privateKey);
    const d = desired({
      assignments: [
        { labels: { cohort: 'canary' }, bundle: b, reason: 'stage 1' },
        { bucketBelow: 25, bundle: b, reason: 'stage 2' },
      ],
    });
    assert.equal(targetFor(d, { hostId: 'x', cohort: 'canary' }).reason, 'stage 1');
    const ids = Array.from({ length: 4000 }, (_, i) => `host-${i}`);
    const inStage2 = ids.filter((id) => targetFor(d, { hostId: id, cohort: 'prod' }).reason === 'stage 2');
    assert.ok(inStage2.length > 850 && inStage2.length < 1150, `about a quarter, got ${inStage2.length}`);
    assert.deepEqual(ids.map(bucketOf), ids.map(bucketOf), 'the same host, the same bucket');
    assert.equal(targetFor(d, { hostId: 'x', cohort: 'prod', labels: { region: 'eu' } }).reason, bucketOf('x') < 25 ? 'stage 2' : 'baseline');
  });

  it('ids keys by their public half and reads host ids from subjects', () => {
    assert.equal(keyIdOf(server.privateKey), keyIdOf(server.publicKey));
    assert.equal(hostOfSubject('cgf.agent.host-1.sync'), 'host-1');
    assert.equal(hostOfSubject('cgf.agent.Host!.sync'), undefined);
    assert.equal(hostOfSubject('cgf.fleet.desired'), undefined);
  });
});
