import { Command, InvalidArgumentError, Option } from 'commander';
import { HOST_STATES, type FleetView, type HostView, type SigningKeyView } from '@cgfence/proto';
import { client, globals } from '../context';
import { printJson, printLines, printTable } from '../output';

const onOff = (v: string): boolean => {
  if (v === 'on') return true;
  if (v === 'off') return false;
  throw new InvalidArgumentError('must be "on" or "off"');
};

function ago(iso: string | null): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
}

const ref = (r: { blocklist: string; version: number } | null | undefined): string => (r ? `${r.blocklist} v${r.version}` : '-');

/** One word for where a host stands, worst first. */
export function hostState(h: HostView): string {
  // The server decides the state (HostView.state); this only words it.
  switch (h.state) {
    case 'stale':
      return 'STALE';
    case 'drifted':
      return 'DRIFTED';
    case 'rejected':
      return `REJECTED (${h.lastError?.reason ?? 'unknown'})`;
    case 'converging':
      return 'converging';
    case 'in-sync':
      return h.desired === null ? 'no baseline' : 'in sync';
  }
}

export function hostsCommand(): Command {
  return new Command('hosts')
    .description('hosts of the fleet: desired vs applied version, mode, health, drift')
    .option('--cohort <name>', 'only hosts of this cohort')
    .option('--stale', 'only hosts that stopped reporting')
    .option('--label <key=value>', 'only hosts with this label (repeatable; all must match)', (v: string, all: string[]) => [...all, v], [])
    .addOption(new Option('--state <state>', 'only hosts in this state').choices([...HOST_STATES]))
    .option('--agent-version <version>', 'only hosts running this agent version')
    .option('--applied <name[@n]>', 'only hosts that applied this blocklist (or this version of it: core@3)')
    .option('--desired <name[@n]>', 'only hosts that should enforce this blocklist (or version)')
    .action(async (o: { cohort?: string; stale?: boolean; label: string[]; state?: string; agentVersion?: string; applied?: string; desired?: string }, self: Command) => {
      const q = new URLSearchParams();
      if (o.cohort) q.set('cohort', o.cohort);
      if (o.stale) q.set('stale', 'true');
      for (const l of o.label) q.append('label', l);
      if (o.state) q.set('state', o.state);
      if (o.agentVersion) q.set('agentVersion', o.agentVersion);
      if (o.applied) q.set('applied', o.applied);
      if (o.desired) q.set('desired', o.desired);
      const hosts = await client(self).get<HostView[]>(`hosts${q.size > 0 ? `?${q.toString()}` : ''}`);
      if (globals(self).json) return printJson(hosts);
      if (hosts.length === 0) return printLines(['no hosts match']);
      printTable(
        ['HOST', 'COHORT', 'DESIRED', 'APPLIED', 'MODE', 'STATE', 'LAST SEEN'],
        hosts.map((h) => [h.hostId, h.cohort ?? '-', ref(h.desired), ref(h.applied), h.mode ?? '-', hostState(h), ago(h.lastSeen)]),
      );
      const problems = hosts.filter((h) => h.lastError || h.drift?.drifted);
      for (const h of problems) {
        if (h.lastError) printLines([`${h.hostId}: rejected revision ${h.lastError.revision ?? '?'} at ${h.lastError.at}: ${h.lastError.message}`]);
        if (h.drift?.drifted) printLines([`${h.hostId}: kernel maps drifted: ${h.drift.detail ?? 'no detail'}`]);
      }
    });
}

export function fleetCommand(): Command {
  const cmd = new Command('fleet').description('the fleet as a whole: status, audit-mode kill switch, signing key');

  cmd
    .command('status')
    .description('baseline, audit switches, revision, and how many hosts are in sync')
    .action(async (_o: unknown, self: Command) => {
      const f = await client(self).get<FleetView>('fleet');
      if (globals(self).json) return printJson(f);
      printLines([
        `revision:    ${f.revision}`,
        `baseline:    ${f.baseline ? `${f.baseline.blocklist} v${f.baseline.version} ${f.baseline.hash}` : 'none assigned (cgfence blocklist assign NAME --version N)'}`,
        `audit mode:  ${f.audit.fleet ? 'ON for the whole fleet' : 'off'}${f.audit.cohorts.length > 0 ? `; cohorts in audit: ${f.audit.cohorts.join(', ')}` : ''}`,
        `hosts:       ${f.hosts.total} total, ${f.hosts.inSync} in sync, ${f.hosts.stale} stale, ${f.hosts.drifted} drifted, ${f.hosts.errors} with errors`,
        `changed:     ${f.updatedAt ?? '-'} by ${f.updatedBy ?? '-'}`,
        `signing key: ${f.signingKeyId}`,
      ]);
    });

  cmd
    .command('audit-mode')
    .description('turn enforcement into audit (blocks are only recorded) fleet-wide or for one cohort, and back')
    .argument('<on|off>', 'on: audit; off: back to enforcing', onOff)
    .option('--cohort <name>', 'only this cohort (default: the whole fleet)')
    .action(async (on: boolean, o: { cohort?: string }, self: Command) => {
      const f = await client(self).post<FleetView>('fleet/audit-mode', { on, ...(o.cohort ? { cohort: o.cohort } : {}) });
      if (globals(self).json) return printJson(f);
      const scope = o.cohort ? `cohort ${o.cohort}` : 'the whole fleet';
      printLines([`audit mode ${on ? 'ON' : 'off'} for ${scope} (fleet revision ${f.revision}); connected agents follow within seconds`]);
    });

  cmd
    .command('signing-key')
    .description("print the server's public signing key (PEM) for `cgfence agent --server-key`")
    .action(async (_o: unknown, self: Command) => {
      const k = await client(self).get<SigningKeyView>('fleet/signing-key');
      if (globals(self).json) return printJson(k);
      process.stdout.write(k.publicKeyPem);
    });

  return cmd;
}
