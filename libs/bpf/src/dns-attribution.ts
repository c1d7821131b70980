// Who sent a DNS query, read from the pinned attribution map (cgf_dns_attr)
// by a process other than the one holding the DataPlane: the agent's DNS
// proxy worker processes open the map by its pin path.
import { constants } from 'node:os';
import { join } from 'node:path';
import { decodeProc, encodeDnsKey, ProcessInfo } from './codec';
import { DataPlaneError, fail, intStep } from './errors';
import { DNS_KEY, PROC } from './layout';
import { libbpf, libc } from './libbpf';

/** Where attach() pins the attribution map under a pin dir. */
export function dnsAttributionPin(pinDir: string): string {
  return join(pinDir, 'maps', 'cgf_dns_attr');
}

// The proxy looks up every query it gets: the key and value buffers are
// reused (a JS thread runs one lookup at a time), and a value identical to
// the previous one (the same process asking again, the common case) returns
// the same frozen object, so a lookup allocates nothing in the steady state.
const lookupKey = Buffer.alloc(DNS_KEY.size);
const lookupValue = Buffer.alloc(PROC.size);
const lastValue = Buffer.alloc(PROC.size);
let lastInfo: ProcessInfo | undefined;

/** Looks up (client port, DNS id) in the attribution map behind `fd`. The result is frozen and may be shared with earlier lookups. */
export function lookupDnsOriginIn(fd: number, clientPort: number, dnsId: number): ProcessInfo | undefined {
  encodeDnsKey(clientPort, dnsId, lookupKey);
  const rc = libbpf().bpf_map_lookup_elem(fd, lookupKey, lookupValue);
  if (rc === -constants.errno.ENOENT) return undefined;
  if (rc < 0) fail('lookupDnsOrigin', 'bpf_map_lookup_elem(cgf_dns_attr)', rc);
  if (lastInfo !== undefined && lookupValue.equals(lastValue)) return lastInfo;
  lookupValue.copy(lastValue);
  lastInfo = Object.freeze(decodeProc(lookupValue));
  return lastInfo;
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
