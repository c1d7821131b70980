import dnsPacket from 'dns-packet';
import type { NameResolver, ResolvedAddresses } from './address-learner';
import { firstQuestionEnd } from './dns-wire';
import type { TcpUpstream, UdpUpstreamPool } from './upstream';

/**
 * The proxy's own lookups (for '!resolve' names), sent through the same
 * upstream as client queries: UDP first, TCP when the answer is truncated.
 */
export class UpstreamResolver implements NameResolver {
  constructor(
    private readonly udp: UdpUpstreamPool,
    private readonly tcp: TcpUpstream,
    private readonly timeoutMs: number,
  ) {}

  async resolveAddresses(name: string): Promise<ResolvedAddresses> {
    const [a, aaaa] = await Promise.all([this.lookup(name, 'A'), this.lookup(name, 'AAAA')]);
    const addresses = [...a.addresses, ...aaaa.addresses];
    const ttls = [a.ttlSeconds, aaaa.ttlSeconds].filter((t): t is number => t !== undefined);
    return { addresses, ttlSeconds: ttls.length > 0 ? Math.min(...ttls) : undefined };
  }

  private async lookup(name: string, type: 'A' | 'AAAA'): Promise<ResolvedAddresses> {
    const query = dnsPacket.encode({
      type: 'query',
      id: 0, // the pool assigns a random wire id
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ type, name, class: 'IN' }],
    });
    let answer = dnsPacket.decode(await this.udp.query(query, firstQuestionEnd(query), this.timeoutMs));
    if (answer.flag_tc) answer = dnsPacket.decode(await this.tcp.query(query, this.timeoutMs));
    // A server failure is a failed lookup, not "no addresses": a pinned name keeps its last addresses (AddressLearner).
    const rcode = (answer as { rcode?: string }).rcode;
    if (rcode === 'SERVFAIL' || rcode === 'REFUSED') throw new Error(`upstream answered ${rcode} for ${name} ${type}`);
    const addresses: string[] = [];
    let ttlSeconds: number | undefined;
    // Take every A/AAAA in the answer section: a CNAME chain puts the
    // addresses under the target's name. The chain's smallest TTL bounds how
    // long the addresses are valid for this name.
    for (const rr of answer.answers ?? []) {
      if (rr.type === 'OPT') continue;
      if (rr.ttl !== undefined) ttlSeconds = ttlSeconds === undefined ? rr.ttl : Math.min(ttlSeconds, rr.ttl);
      if (rr.type === type && typeof rr.data === 'string') addresses.push(rr.data);
    }
    return { addresses, ttlSeconds: addresses.length > 0 ? ttlSeconds : undefined };
  }
}
