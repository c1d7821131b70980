import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import * as dnsPacket from 'dns-packet';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { type Chromium, freePort, launchChromium, waitFor } from '@cgfence/devservices';
import { screenshotDir, seriousViolations } from './browser';

const BIN = join(__dirname, '..', '..', '..', 'cli', 'bin', 'cgfence');

/**
 * The dashboard in a real headless Chromium against a real local fleet
 * (`cgfence local up`: PostgreSQL, NATS, the policy server and one real host
 * agent on the kernel), as a person uses it. Every page is screenshotted and
 * checked with axe-core.
 */
/**
 * The agent's upstream: on loopback, never the machine's resolver. It answers
 * `docs-mirror.example` (any type) with a CNAME to `github.com` (a listed
 * name) and everything else NXDOMAIN.
 */
async function startUpstream(): Promise<{ socket: Socket; port: number }> {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => {
    let q: dnsPacket.Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = q.questions?.[0];
    if (!question) return;
    const chained = question.name.toLowerCase() === 'docs-mirror.example';
    const reply = dnsPacket.encode({
      id: q.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (chained ? 0 : 3), // rcode 3: NXDOMAIN
      questions: [question],
      answers: chained
        ? [
            { type: 'CNAME', name: question.name, ttl: 60, data: 'github.com' },
            ...(question.type === 'A' ? [{ type: 'A' as const, name: 'github.com', ttl: 60, data: '192.0.2.44' }] : []),
          ]
        : [],
    });
    socket.send(reply, from.port, from.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { socket, port: socket.address().port };
}

describe('the dashboard in Chromium against the local fleet', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-dashboard-e2e-'));
  const stateDir = join(dir, 'state');
  const shots = screenshotDir();
  let failed = false;
  afterEach((t) => {
    // TestContext.passed (Node 20.18+; not in this @types/node yet).
    if ((t as { passed?: boolean }).passed !== true) failed = true;
  });
  const agentCgroup = `cgf-dash-e2e-${process.pid}`;
  let fleet: ChildProcess | undefined;
  let out = '';
  let base = '';
  let adminToken = '';
  let chrome: Chromium;
  let admin: BrowserContext;
  let page: Page;
  let rolloutId = '';
  let runId = '';
  let viewerSecret = '';
  let upstream: { socket: Socket; port: number } | undefined;
  const a11y: { page: string; violations: unknown[] }[] = [];

  /** Opens a page, waits for its heading, screenshots it and records axe's serious violations. */
  async function visit(p: Page, path: string, name: string, heading?: RegExp): Promise<void> {
    await p.goto(`${base}${path}`);
    await p.getByRole('heading', { level: 1, ...(heading ? { name: heading } : {}) }).first().waitFor();
    await p.waitForFunction(() => ![...document.querySelectorAll('[role=status]')].some((e) => e.textContent?.startsWith('Loading')));
    await check(p, name);
  }

  async function check(p: Page, name: string): Promise<void> {
    await p.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
    a11y.push({ page: name, violations: await seriousViolations(p) });
  }

  async function signIn(p: Page, token: string): Promise<void> {
    await p.goto(`${base}/`);
    await p.getByLabel('API token').fill(token);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('heading', { level: 1, name: 'Fleet' }).waitFor();
  }

  const api = async <T>(path: string, init: RequestInit = {}): Promise<T> => {
    const res = await fetch(`${base}${path}`, { ...init, headers: { Authorization: `Bearer ${adminToken}`, 'Content-Type': 'application/json', ...(init.headers ?? {}) } });
    assert.ok(res.ok, `${path}: ${res.status} ${await res.clone().text()}`);
    return (await res.json()) as T;
  };

  before(async () => {
    const ports = { pg: await freePort(), nats: await freePort(), api: await freePort() };
    upstream = await startUpstream();
    fleet = spawn(
      process.execPath,
      [
        BIN, 'local', 'up', '--state-dir', stateDir,
        '--pg-port', String(ports.pg), '--nats-port', String(ports.nats), '--api-port', String(ports.api),
        // Never the machine's resolver in a test: the test's own upstream on loopback.
        '--agent-upstream', `127.0.0.1:${upstream.port}`, '--agent-cgroup', agentCgroup,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    fleet.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    fleet.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await waitFor('the local fleet to come up', async () => {
      if (fleet?.exitCode !== null) throw new Error(`local up exited early:\n${out}`);
      return out.includes('Ctrl-C stops everything');
    }, 120_000);
    base = `http://127.0.0.1:${ports.api}`;
    adminToken = readFileSync(join(stateDir, 'server', 'admin-token'), 'utf8').trim();
    chrome = await launchChromium();
    admin = await chrome.context();
    page = await admin.newPage();
  });

  after(async () => {
    await chrome?.close();
    const f = fleet;
    if (f && f.exitCode === null) {
      const exited = new Promise((resolve) => f.once('exit', resolve));
      f.kill('SIGINT');
      await exited;
    }
    upstream?.socket.close();
    rmSync(dir, { recursive: true, force: true });
    // Screenshots are kept where they were asked for (CGFENCE_SCREENSHOTS) or to look at a failure; a passing run leaves nothing in /tmp.
    if (process.env['CGFENCE_SCREENSHOTS'] === undefined && !failed) rmSync(shots, { recursive: true, force: true });
    else console.log(`dashboard screenshots: ${shots}`);
  });

  it('npm run fleet (cgfence local up) prints the dashboard URL and the token to paste', () => {
    assert.match(out, new RegExp(`dashboard: ${base.replace(/\./g, '\\.')}/ +sign in with the admin token: ${adminToken}`));
  });

  it('is served at / to a browser while the API answers API clients on the same paths', async () => {
    const html = await fetch(`${base}/hosts`, { headers: { Accept: 'text/html,application/xhtml+xml' } });
    assert.equal(html.status, 200);
    assert.match(await html.text(), /<div id="root">/);
    const json = await fetch(`${base}/hosts`, { headers: { Accept: 'application/json' } });
    assert.equal(json.status, 401);
    assert.equal(((await json.json()) as { code: string }).code, 'auth.missing_token');
    const doc = await fetch(`${base}/openapi.json`, { headers: { Accept: 'text/html' } });
    assert.match(doc.headers.get('content-type') ?? '', /json/);
  });

  it('refuses a wrong token with the error in the project shape, then signs in with the admin token', async () => {
    await page.goto(`${base}/`);
    await check(page, 'sign-in');
    await page.getByLabel('API token').fill('cgf_not-a-real-token');
    await page.getByRole('button', { name: 'Sign in' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    assert.match(await alert.innerText(), /auth\.invalid_token/);
    await signIn(page, adminToken);
    await page.getByText('● live').waitFor();
  });

  it('creates a blocklist, shows the one bad line of a commit on that line, commits, and makes it the baseline', async () => {
    await visit(page, '/blocklists', 'blocklists-empty');
    await page.getByText('No blocklist yet').waitFor();
    await page.getByLabel('Name').fill('deploy-safety');
    await page.getByRole('button', { name: 'Create' }).click();
    await page.getByRole('heading', { level: 1, name: 'deploy-safety' }).waitFor();
    const entries = page.getByLabel('Entries (one per line)');
    await entries.fill('github.com\nbad_label-.example\n*.githubusercontent.com');
    await page.getByRole('button', { name: 'Commit', exact: true }).click();
    const bad = page.locator('li.bad-line');
    await bad.first().waitFor();
    assert.equal(await bad.count(), 1, 'exactly one line marked');
    assert.equal(await bad.getAttribute('data-line'), '2');
    assert.match(await bad.innerText(), /bad_label-\.example.*line 2/s);
    await check(page, 'blocklist-bad-line');
    await entries.fill('github.com\n*.githubusercontent.com');
    await page.getByRole('button', { name: 'Commit', exact: true }).click();
    await page.getByText('Committed v1').waitFor();
    await page.getByRole('button', { name: 'Make baseline' }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /Every host that no rollout stage covers enforces deploy-safety v1/);
    await dialog.getByRole('button', { name: 'Assign' }).click();
    await page.getByText('baseline', { exact: true }).waitFor();
    await entries.fill('github.com\n*.githubusercontent.com\nexample.org');
    await page.getByRole('button', { name: 'Commit', exact: true }).click();
    await page.getByText('Committed v2').waitFor();
    await page.goto(`${base}/blocklists/deploy-safety?from=1&to=2`);
    await page.getByText('+ example.org').waitFor();
    await check(page, 'blocklist');
  });

  it('starts a two-stage rollout from the plan editor, pauses and resumes it, and watches it complete live', async () => {
    await page.goto(`${base}/rollouts/new?blocklist=deploy-safety&version=2`);
    const plan = page.getByLabel(/^Plan/);
    await plan.fill('blocklist: deploy-safety\nversion: 2\nstages:\n  - name: canary\n    select: { labels: { cohort: nowhere } }\n');
    await page.getByText(/selects no host/).waitFor();
    await plan.fill(
      [
        'blocklist: deploy-safety',
        'version: 2',
        'stages:',
        '  - name: audit-first',
        '    select: { labels: { cohort: local } }',
        '    mode: audit',
        '    soak: 4s',
        '  - name: enforce',
        '    select: { labels: { cohort: local } }',
        '    gates: { manualApproval: true }',
        '',
      ].join('\n'),
    );
    await page.getByText('This plan would start now.').waitFor();
    assert.match(await page.locator('#plan-check').innerText(), /audit-first: 1 host/);
    await check(page, 'rollout-new');
    await page.getByRole('button', { name: 'Start rollout' }).click();
    await page.waitForURL(/\/rollouts\/r-/);
    rolloutId = page.url().split('/').pop()!;
    await page.getByRole('button', { name: 'Pause' }).click();
    await page.getByRole('dialog').getByLabel(/Reason/).fill('checking the canary by hand');
    await page.getByRole('dialog').getByRole('button', { name: 'Pause' }).click();
    await page.getByText('Needs attention: paused: checking the canary by hand').waitFor();
    await page.getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Resume' }).click();
    await page.getByRole('button', { name: 'Pause' }).waitFor();
    // From here on nobody touches the page: the stages move on the server, and
    // the page follows them through the live stream (no polling, no reload).
    await page.getByText('Needs attention: awaiting approval').waitFor({ timeout: 60_000 });
    await check(page, 'rollout');
    await page.getByRole('button', { name: 'Promote' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Promote' }).click();
    await page.locator('h1 .badge', { hasText: 'completed' }).waitFor({ timeout: 60_000 });
    const r = await api<{ status: string }>(`/rollouts/${rolloutId}`);
    assert.equal(r.status, 'completed');
    await visit(page, '/rollouts', 'rollouts');
    await visit(page, '/', 'fleet', /Fleet/);
    await page.getByRole('link', { name: 'deploy-safety' }).waitFor();
  });

  it('finds a blocked lookup made inside cgfence run in History by its run label, exports it as CSV, opens its run, and replays the version over it', async () => {
    const label = `deploy-${process.pid}`;
    // Not spawnSync: the test's own upstream answers from this process's event loop.
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'run', '--state-dir', join(stateDir, 'agent'), '--label', `job=${label}`, '--', 'sh', '-c', 'getent hosts github.com || echo blocked; getent hosts docs-mirror.example || echo not-resolved'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 60_000,
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.once('error', reject);
      child.once('close', (status) => resolve({ status, stdout, stderr }));
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^blocked$/m);
    // An allowed name whose CNAME leads to a listed one: NXDOMAIN, and a block event naming both (below).
    assert.match(run.stdout, /^not-resolved$/m, run.stdout);
    await visit(page, `/history?from=1h&label=${encodeURIComponent(`job=${label}`)}`, 'history-waiting');
    // The block reaches the server through JetStream; the live stream tells the page.
    const cell = page.getByRole('cell', { name: 'github.com' }).first();
    await cell.waitFor({ timeout: 60_000 }).catch(async (err: Error) => {
      const inApi = await api<unknown>(`/events?from=1h&label=${encodeURIComponent(`job=${label}`)}`);
      throw new Error(`${err.message}\nthe API has: ${JSON.stringify(inApi).slice(0, 2000)}`);
    });
    // The chain block names both: the name asked and the listed name its answer led to.
    await page.getByRole('cell', { name: 'docs-mirror.example via github.com' }).first().waitFor({ timeout: 60_000 }).catch(async (err: Error) => {
      const inApi = await api<unknown>(`/events?from=1h&label=${encodeURIComponent(`job=${label}`)}`);
      throw new Error(`${err.message}\nthe API has: ${JSON.stringify(inApi).slice(0, 3000)}`);
    });
    await check(page, 'history');
    // The export of the current filter: the same events, as CSV.
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'CSV' }).click()]);
    assert.equal(download.suggestedFilename(), 'cgfence-events.csv');
    const csv = readFileSync((await download.path())!, 'utf8');
    assert.match(csv, /github\.com/);
    assert.match(csv, new RegExp(label));
    const link = page.getByRole('row').filter({ hasText: 'github.com' }).first().getByRole('link').last();
    await link.click();
    await page.getByRole('heading', { level: 1, name: /Run/ }).waitFor();
    runId = page.url().split('/').pop()!;
    assert.match(await page.locator('main').innerText(), new RegExp(`job=${label}`));
    await page.getByRole('cell', { name: 'github.com' }).first().waitFor();
    await check(page, 'run');
    // Replay: the version would have blocked github.com in this run.
    await page.goto(`${base}/blocklists/deploy-safety`);
    await page.getByLabel('Runs since').fill('1h');
    await page.getByRole('button', { name: 'Replay' }).click();
    await page.getByText(/runs examined; [1-9]\d* would have hit a block/).waitFor();
    assert.match(await page.locator('main').innerText(), /github\.com \(entry github\.com\)/);
    await check(page, 'blocklist-replay');
  });

  it('the kill switch asks for confirmation naming what it will do, and does nothing on cancel', async () => {
    await visit(page, '/', 'fleet-again', /Fleet/);
    await page.getByRole('button', { name: /Kill switch/ }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /Every one of the 1 hosts stops blocking/);
    await check(page, 'kill-switch-confirm');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    assert.equal((await api<{ audit: { fleet: boolean } }>('/fleet')).audit.fleet, false);
    await page.getByRole('button', { name: /Kill switch/ }).click();
    await dialog.getByRole('button', { name: 'Audit the whole fleet' }).click();
    await page.getByText('auditing (nothing is blocked)').waitFor();
    assert.equal((await api<{ audit: { fleet: boolean } }>('/fleet')).audit.fleet, true);
    await page.getByRole('button', { name: 'Resume enforcing (fleet)' }).click();
    await dialog.getByRole('button', { name: 'Resume enforcing' }).click();
    await page.getByText('enforcing', { exact: true }).waitFor();
  });

  it('issues a viewer token on the Tokens page; the viewer sees no button that would change anything', async () => {
    await visit(page, '/tokens', 'tokens');
    await page.getByLabel('Name').fill('e2e-viewer');
    await page.getByRole('button', { name: 'Issue' }).click();
    viewerSecret = (await page.getByTestId('new-secret').innerText()).trim();
    assert.match(viewerSecret, /^cgf_/);
    await visit(page, '/audit', 'audit');
    await page.getByRole('cell', { name: 'TokenIssued' }).first().waitFor();

    const ctx = await chrome.context();
    const viewer = await ctx.newPage();
    await signIn(viewer, viewerSecret);
    const mutating = /kill switch|resume enforcing|audit cohort|^create$|^commit$|make baseline|roll back|start a rollout|start rollout|^pause$|^resume$|^promote$|^abort$|revoke|^issue$/i;
    for (const [path, name] of [
      ['/', 'viewer-fleet'],
      ['/blocklists', 'viewer-blocklists'],
      ['/blocklists/deploy-safety', 'viewer-blocklist'],
      ['/rollouts', 'viewer-rollouts'],
      [`/rollouts/${rolloutId}`, 'viewer-rollout'],
      ['/hosts', 'viewer-hosts'],
    ] as const) {
      await visit(viewer, path, name);
      const buttons = await viewer.getByRole('button').allInnerTexts();
      const links = await viewer.getByRole('link').allInnerTexts();
      const offending = [...buttons, ...links].map((t) => t.trim()).filter((t) => mutating.test(t));
      assert.deepEqual(offending, [], `${path}: a viewer sees ${offending.join(', ')}`);
    }
    assert.equal(await viewer.getByRole('link', { name: 'Tokens' }).count(), 0);
    await ctx.close();
  });

  it('filters hosts on the server by label and state, with the filters in the URL', async () => {
    await visit(page, '/hosts', 'hosts-unfiltered');
    const asked = (want: Record<string, string>) =>
      page.waitForRequest((r) => {
        const u = new URL(r.url());
        return u.pathname === '/hosts' && r.headers()['accept']?.includes('application/json') === true && Object.entries(want).every(([k, v]) => u.searchParams.getAll(k).includes(v));
      });
    const form = page.getByRole('form', { name: 'Filter hosts' });
    await form.getByLabel('Labels').fill('cohort=local');
    let sent = asked({ label: 'cohort=local', limit: '200' });
    await form.getByRole('button', { name: 'Apply' }).click();
    await sent;
    assert.equal(new URL(page.url()).searchParams.get('label'), 'cohort=local');
    await page.getByRole('link', { name: /local/ }).first().waitFor();
    await check(page, 'hosts-label');
    // The same label and a state the host is not in: the server answers no host.
    await form.getByLabel('State').selectOption('stale');
    sent = asked({ label: 'cohort=local', state: 'stale' });
    await form.getByRole('button', { name: 'Apply' }).click();
    await sent;
    await page.getByText('No host matches these filters.').waitFor();
    assert.equal(new URL(page.url()).searchParams.get('state'), 'stale');
    // A shared link opens with its filters applied.
    sent = asked({ label: 'cohort=nowhere' });
    await page.goto(`${base}/hosts?label=${encodeURIComponent('cohort=nowhere')}`);
    await sent;
    await page.getByText('No host matches these filters.').waitFor();
    assert.equal(await page.getByRole('form', { name: 'Filter hosts' }).getByLabel('Labels').inputValue(), 'cohort=nowhere');
  });

  it('shows every other page, and every page passes axe-core without serious violations', async () => {
    await visit(page, '/hosts', 'hosts');
    await page.getByRole('link', { name: 'local' }).first().click();
    await page.getByRole('heading', { level: 1, name: /local/ }).waitFor();
    await check(page, 'host');
    await visit(page, `/runs/${runId}`, 'run-again');
    // A new tab is a new browser session: it signs in again.
    const phone = await admin.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await signIn(phone, adminToken);
    await visit(phone, '/', 'phone-fleet', /Fleet/);
    await visit(phone, '/history?from=1h', 'phone-history');
    await phone.close();
    const bad = a11y.filter((x) => x.violations.length > 0);
    assert.deepEqual(bad, [], JSON.stringify(bad, null, 2));
    assert.ok(a11y.length >= 20, `${a11y.length} pages checked`);
  });
});
