// Network namespaces standing in for separate hosts: a bridge in the root
// namespace (10.251.0.1/24) and one namespace per host with a veth on it
// (10.251.0.10+i). Services the hosts reach (NATS, an upstream DNS) listen on
// the bridge address; nothing leaves the namespaces this lab made. Programs
// enter a host with `nsenter --net` only (not `ip netns exec`, which remounts
// /sys and so hides a hybrid host's cgroup2 mount); `resolvConf(host)` is a
// resolver file naming the bridge, for a run to bind over /etc/resolv.conf
// (the deploy cgroup's DNS goes to the agent's proxy anyway).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BRIDGE_ADDRESS = '10.251.0.1';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A random 10.252.X subnet for a lab, away from the default one other tests share. */
export function randomLabSubnet(): string {
  return `10.252.${1 + (randomBytes(1)[0]! % 254)}`;
}

export interface LabHost {
  readonly ns: string;
  readonly address: string;
}

export class NetnsLab {
  readonly hosts: LabHost[] = [];
  private readonly tag = randomBytes(2).toString('hex');
  private readonly bridge = `cgfbr${this.tag}`;
  private bridgeUp = false;
  private readonly dir = mkdtempSync(join(tmpdir(), 'cgfence-netns-lab-'));
  /** A resolv.conf naming the bridge address. */
  readonly resolvConf = join(this.dir, 'resolv.conf');

  private constructor(
    /** The lab's /24 without its last number (default 10.251.0). */
    readonly subnet: string,
  ) {}

  /** The bridge's address: where the services the hosts reach listen. */
  get bridgeAddress(): string {
    return `${this.subnet}.1`;
  }

  /**
   * Creates the bridge and `count` namespaces. Labs on the same subnet must
   * not run at once (two bridges with one address): a test that may run
   * beside others passes a subnet of its own (`randomLabSubnet()`).
   */
  static create(count: number, opts: { subnet?: string } = {}): NetnsLab {
    const lab = new NetnsLab(opts.subnet ?? BRIDGE_ADDRESS.split('.').slice(0, 3).join('.'));
    try {
      ip(['link', 'add', lab.bridge, 'type', 'bridge']);
      lab.bridgeUp = true;
      ip(['addr', 'add', `${lab.bridgeAddress}/24`, 'dev', lab.bridge]);
      ip(['link', 'set', lab.bridge, 'up']);
      writeFileSync(lab.resolvConf, `nameserver ${lab.bridgeAddress}\n`);
      for (let i = 1; i <= count; i++) lab.addHost(i);
    } catch (err) {
      lab.destroy();
      throw err;
    }
    return lab;
  }

  private addHost(i: number): void {
    const ns = `cgf-e2e-${this.tag}-${i}`;
    const outside = `cgfv${this.tag}${i}`;
    const inside = `cgfn${this.tag}${i}`;
    const address = `${this.subnet}.${10 + i}`;
    ip(['netns', 'add', ns]);
    this.hosts.push({ ns, address });
    ip(['link', 'add', outside, 'type', 'veth', 'peer', 'name', inside]);
    ip(['link', 'set', outside, 'master', this.bridge]);
    ip(['link', 'set', outside, 'up']);
    ip(['link', 'set', inside, 'netns', ns]);
    ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', inside]);
    ip(['-n', ns, 'link', 'set', inside, 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
  }

  /** The command line to run `argv` in a host's network namespace (mounts as they are). */
  exec(host: LabHost, argv: string[]): string[] {
    return ['nsenter', `--net=/run/netns/${host.ns}`, '--', ...argv];
  }

  /** The same, with the lab's resolv.conf over /etc/resolv.conf (a private mount namespace). */
  execWithResolver(host: LabHost, argv: string[]): string[] {
    return this.exec(host, ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /etc/resolv.conf && exec "$@"', this.resolvConf, ...argv]);
  }

  /** Removes every namespace (their veths go with them), the bridge and the lab's files. */
  destroy(): void {
    for (const h of this.hosts) {
      try {
        ip(['netns', 'del', h.ns]);
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    if (this.bridgeUp) {
      try {
        ip(['link', 'del', this.bridge]);
      } catch {
        // already gone
      }
    }
  }
}
