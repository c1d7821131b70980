// Who sent a DNS query, read from the pinned attribution map (cgf_dns_attr)
// by a process other than the one holding the DataPlane: the agent's DNS
// proxy worker processes open the map by its pin path.
import { constants } from 'node:os';
import { join } from 'node:path';
import { decodeProc, encodeDnsKey, ProcessInfo } from './codec';
import { DataPlaneError, fail, intStep } from './errors';
import { PROC } from './layout';
import { libbpf, libc } from './libbpf';

/** Where attach() pins the attribution map under a pin dir. */
export function dnsAttributionPin(pinDir: string): string {
  return join(pinDir, 'maps', 'cgf_dns_attr');
}

/** Looks up (client port, DNS id) in the attribution map behind `fd`. */
export function lookupDnsOriginIn(fd: number, clientPort: number, dnsId: number): ProcessInfo | undefined {
  const value = Buffer.alloc(PROC.size);
  const rc = libbpf().bpf_map_lookup_elem(fd, encodeDnsKey(clientPort, dnsId), value);
  if (rc === -constants.errno.ENOENT) return undefined;
  if (rc < 0) fail('lookupDnsOrigin', 'bpf_map_lookup_elem(cgf_dns_attr)', rc);
  return decodeProc(value);
}

/** The pinned attribution map of a DataPlane, opened read-only by path in this process. */
export class DnsAttributionReader {
  private fd: number;

  private constructor(fd: number) {
    this.fd = fd;
  }

  /** Opens `<pinDir>/maps/cgf_dns_attr`; throws a DataPlaneError if it is not pinned (yet). */
  static open(pinDir: string): DnsAttributionReader {
    const pin = dnsAttributionPin(pinDir);
    return new DnsAttributionReader(intStep('open attribution map', `bpf_obj_get(${pin})`, () => libbpf().bpf_obj_get(pin)));
  }

  lookup(clientPort: number, dnsId: number): ProcessInfo | undefined {
    if (this.fd < 0) throw new DataPlaneError('lookupDnsOrigin', 'this reader is closed');
    return lookupDnsOriginIn(this.fd, clientPort, dnsId);
  }

  close(): void {
    if (this.fd >= 0) libc().close(this.fd);
    this.fd = -1;
  }
}
