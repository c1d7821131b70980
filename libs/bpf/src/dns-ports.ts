// Refused DNS ports (cgf_dns_ports): the ports other than 53 a resolver answers
// on (DoT and DNS over QUIC on 853 by default). The connect/sendmsg hooks
// refuse them (EPERM) to the deploy cgroup and count each refusal per port.
import { intStep } from './errors';
import { CONSTANTS } from './layout';
import { KERNEL_ABI, libbpf } from './libbpf';

/** DoT (RFC 7858) and DNS over QUIC (RFC 9250) both use 853. */
export const DEFAULT_REFUSED_DNS_PORTS: readonly number[] = [853];

/** Throws a RangeError naming the problem: ports 1..65535 but 53 (redirected, not refused), at most CGF_DNS_PORTS_MAX. */
export function validateRefusedDnsPorts(ports: readonly number[]): void {
  if (ports.length > CONSTANTS.CGF_DNS_PORTS_MAX) {
    throw new RangeError(`at most ${CONSTANTS.CGF_DNS_PORTS_MAX} refused DNS ports, got ${ports.length}`);
  }
  for (const p of ports) {
    if (!Number.isInteger(p) || p < 1 || p > 65535) throw new RangeError(`a refused DNS port must be an integer 1..65535, got ${p}`);
    if (p === CONSTANTS.CGF_DNS_PORT) throw new RangeError('port 53 cannot be a refused DNS port: it is redirected to the proxy');
  }
}

export class DnsPortGuard {
  constructor(private readonly fd: number) {}

  /** Makes `ports` the refused set; ports kept keep their counts. */
  set(ports: readonly number[]): void {
    validateRefusedDnsPorts(ports);
    const want = new Set(ports);
    for (const p of this.ports()) {
      if (want.has(p)) continue;
      intStep('set refused DNS ports', `bpf_map_delete_elem(cgf_dns_ports, ${p})`, () => libbpf().bpf_map_delete_elem(this.fd, portKey(p)));
    }
    const have = new Set(this.ports());
    for (const p of want) {
      if (have.has(p)) continue;
      intStep('set refused DNS ports', `bpf_map_update_elem(cgf_dns_ports, ${p})`, () =>
        libbpf().bpf_map_update_elem(this.fd, portKey(p), Buffer.alloc(8), KERNEL_ABI.BPF_ANY),
      );
    }
  }

  /** The refused ports and how often each was refused (audit mode: would have been). */
  refusals(): Map<number, number> {
    const out = new Map<number, number>();
    const value = Buffer.alloc(8);
    for (const p of this.ports()) {
      if (libbpf().bpf_map_lookup_elem(this.fd, portKey(p), value) === 0) out.set(p, Number(value.readBigUInt64LE()));
    }
    return out;
  }

  private ports(): number[] {
    const out: number[] = [];
    let prev: Buffer | null = null;
    const next = Buffer.alloc(2);
    // A hash of at most CGF_DNS_PORTS_MAX keys: the walk is bounded.
    while (out.length <= CONSTANTS.CGF_DNS_PORTS_MAX && libbpf().bpf_map_get_next_key(this.fd, prev, next) === 0) {
      out.push(next.readUInt16LE());
      prev = Buffer.from(next);
    }
    return out;
  }
}

function portKey(port: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(port); // host order (little-endian hosts only, like the rest of the loader)
  return b;
}
