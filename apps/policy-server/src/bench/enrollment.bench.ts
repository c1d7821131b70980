// Benchmark (issue 17): enrollment rate, hosts per second, for 1,000
// simulated enrollments (each a new NATS key and POST /enroll with one join
// token; the server checks the token, records the use and the host, and signs
// a user JWT), one at a time and 32 at once. Baseline in the same run: what
// adding 1,000 hosts costs today with nkeys (`cgfence nats add-host`: a seed
// written and auth.conf rewritten per host; the nats-server reloads are not
// even counted).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, NatsServer, PostgresServer, printTable, quantile, startPolicyServer } from '@cgfence/devservices';
import { addHost, initAuth, initJwtAuth, newUserKey, renderResolverConfig } from '@cgfence/nats-auth';

const HOSTS = Number(process.env.CGFENCE_BENCH_ENROLL_HOSTS ?? 1000);
const CONCURRENCY = [1, 32];
/**
 * The nkey baseline costs O(hosts) per add (auth.conf is rendered from every
 * seed, each turned back into its public key by pure-JS ed25519): O(n²) in
 * all, hours for 1,000 hosts. It is measured on this many, and its per-add
 * cost at the last host reported.
 */
const BASELINE_HOSTS = Math.min(HOSTS, Number(process.env.CGFENCE_BENCH_ENROLL_BASELINE_HOSTS ?? 50));

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cgfence-bench-enroll-'));
  const stops: (() => Promise<unknown>)[] = [];
  try {
    const jwtDir = join(dir, 'jwt');
    const init = await initJwtAuth(jwtDir);
    const pg = await PostgresServer.start({ dir: join(dir, 'pg'), fast: true });
    stops.push(() => pg.stop());
    const nats = await NatsServer.start({ dir: join(dir, 'nats'), extraConfig: renderResolverConfig(jwtDir, join(dir, 'resolver')) });
    stops.push(() => nats.stop());
    const port = await freePort();
    const server = await startPolicyServer({
      main: join(__dirname, '..', 'main.js'),
      port,
      log: join(dir, 'server.log'),
      nats: true,
      env: {
        ...process.env,
        CGFENCE_DATABASE_URL: await pg.createDatabase('enroll_bench'),
        CGFENCE_STATE_DIR: join(dir, 'state'),
        CGFENCE_NATS_URL: nats.url(),
        CGFENCE_NATS_CREDS: init.serverCredsFile,
        CGFENCE_NATS_JWT_DIR: jwtDir,
        CGFENCE_LOG_LEVEL: 'warn',
      },
    });
    stops.push(() => server.stop());
    const api = `http://127.0.0.1:${port}`;
    const admin = readFileSync(join(dir, 'state', 'admin-token'), 'utf8').trim();
    const rows: (string | number)[][] = [];
    let run = 0;
    for (const concurrency of CONCURRENCY) {
      run++;
      const created = await fetch(`${api}/enroll-tokens`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${admin}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({ uses: HOSTS, ttl: '1h' }),
      });
      const { secret } = (await created.json()) as { secret: string };
      const latencies: number[] = [];
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: concurrency }, async () => {
          while (next < HOSTS) {
            const i = next++;
            const key = newUserKey();
            const s = performance.now();
            const res = await fetch(`${api}/enroll`, {
              method: 'POST',
              headers: { 'Content-Type': 'application/json' },
              body: JSON.stringify({ token: secret, hostId: `r${run}-h${i}`, natsPublicKey: key.getPublicKey() }),
            });
            if (res.status !== 201) throw new Error(`enrollment ${i} got ${res.status}: ${await res.text()}`);
            await res.arrayBuffer();
            latencies.push(performance.now() - s);
          }
        }),
      );
      const seconds = (performance.now() - t0) / 1000;
      rows.push([`POST /enroll, ${concurrency} at once`, HOSTS, Math.round(HOSTS / seconds), quantile(latencies, 0.5), quantile(latencies, 0.99)]);
    }
    // Baseline: today's nkey path, in-process (no HTTP, no database), auth.conf rewritten each time.
    const nkeyDir = join(dir, 'nkeys');
    initAuth(nkeyDir);
    const per: number[] = [];
    const start = performance.now();
    for (let i = 0; i < BASELINE_HOSTS; i++) {
      const s = performance.now();
      addHost(nkeyDir, `h${i}`);
      per.push(performance.now() - s);
    }
    const total = performance.now() - start;
    rows.push([`baseline: nats add-host (nkeys, auth.conf rewritten), first ${BASELINE_HOSTS}`, BASELINE_HOSTS, Number((BASELINE_HOSTS / (total / 1000)).toFixed(1)), quantile(per, 0.5), quantile(per, 0.99)]);
    printTable({
      title: `Enrollment rate: ${HOSTS} simulated hosts (real policy server, PostgreSQL, nats-server with JWT resolver)`,
      head: ['path', 'hosts', 'hosts/s', 'p50 ms', 'p99 ms'],
      rows,
      notes: [
        'each enrollment: token checked and its use recorded with the host (one transaction, turns taken per token), user JWT signed with the account signing key',
        `the nkey baseline grows with the fleet (auth.conf lists every host): adding host ${BASELINE_HOSTS} cost ${Math.round(per[per.length - 1] ?? NaN)} ms, and each change still needs a nats-server reload; JWT enrollment needs none`,
        'one machine (2 cores) shared with other work: figures are noisy',
      ],
    });
  } finally {
    for (const s of stops.reverse()) await s().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
