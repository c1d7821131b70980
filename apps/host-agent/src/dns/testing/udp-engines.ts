/** Both ways the proxy does UDP (DnsProxyOptions.udpEngine): the proxy's int tests run each suite with each. */
export const UDP_ENGINES = ['node', 'core'] as const;
export type UdpEngine = (typeof UDP_ENGINES)[number];
