import { Resolver as DnsResolver } from 'node:dns/promises';
import type { LookupAddress } from 'node:dns';
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/** Resolves a host name to every address it has (the system resolver by default). */
export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/**
 * Asks the name servers directly (c-ares, on the event loop) with a timeout: `dns.lookup` runs
 * getaddrinfo on libuv's four worker threads, which a tenant's name server that never answers could
 * keep busy, stalling file access and password hashing for everybody. (/etc/hosts is not read: webhook
 * targets are public names.)
 */
const dns = new DnsResolver({ timeout: 2_000, tries: 2 });
export const systemResolver: Resolver = async (hostname) => {
  const [v4, v6] = await Promise.allSettled([dns.resolve4(hostname), dns.resolve6(hostname)]);
  const found: LookupAddress[] = [
    ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
    ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
  ];
  if (!found.length) throw v4.status === 'rejected' ? v4.reason : new Error(`${hostname} has no address`);
  return found;
};

/** A parsed CIDR: the network address and its prefix length. */
type Network = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * Parses a comma-separated list of CIDRs (`10.1.0.0/16, fd00::/8`; a bare address is its own /32 or
 * /128). Throws with the offending item.
 */
export function parseNetworks(list: string): Network[] {
  const out: Network[] = [];
  for (const raw of list.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    try {
      if (item.includes('/')) out.push(ipaddr.parseCIDR(item));
      else {
        const addr = ipaddr.parse(item);
        out.push([addr, addr.kind() === 'ipv4' ? 32 : 128]);
      }
    } catch {
      throw new Error(`"${item}" is not an address or CIDR network`);
    }
  }
  return out;
}

/** The IPv4 address an IPv6 address carries: IPv4-mapped, IPv4-translated, NAT64, 6to4. */
function embeddedIPv4(addr: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const range = addr.range();
  const b = addr.toByteArray();
  if (range === 'ipv4Mapped' || range === 'rfc6145' || range === 'rfc6052') return new ipaddr.IPv4(b.slice(12, 16));
  if (range === '6to4') return new ipaddr.IPv4(b.slice(2, 6));
  return undefined;
}

export interface NetGuard {
  /** Whether a delivery may connect to this address (an IP literal in any notation `ipaddr.js` parses). */
  allowed(address: string): boolean;
  /**
   * Resolves the host (unless it is an IP literal) and checks every address it has. Resolves with the
   * checked addresses; rejects with `AddressNotAllowed` or the resolver's error.
   */
  check(hostname: string): Promise<LookupAddress[]>;
}

/** A host or address in a range webhooks may not reach. */
export class AddressNotAllowed extends Error {
  override name = 'AddressNotAllowed';
  readonly code = 'EADDRNOTALLOWED';
  /** `host`: an IP literal, or the name whose addresses were refused (`viaName`). */
  constructor(
    readonly host: string,
    readonly viaName = false,
  ) {
    super(viaName ? `host ${host} resolves to an address that is not allowed` : `address ${host} is not allowed`);
  }
}

/**
 * Which addresses outbound requests on behalf of tenants (alarm webhooks) may reach: public unicast
 * only — never loopback, private, carrier-grade NAT, link-local (cloud metadata), unique-local,
 * multicast, unspecified, broadcast or reserved ranges, also when embedded in an IPv6 address —
 * unless the operator allows the network.
 */
export function createNetGuard({
  allow = [],
  resolve = systemResolver,
}: { allow?: Network[]; resolve?: Resolver } = {}): NetGuard {
  const allowedByOperator = (addr: ipaddr.IPv4 | ipaddr.IPv6) =>
    allow.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));

  function allowedAddr(addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
    if (allowedByOperator(addr)) return true;
    if (addr.kind() === 'ipv4') return addr.range() === 'unicast';
    const v6 = addr as ipaddr.IPv6;
    const v4 = embeddedIPv4(v6);
    if (v4) return allowedAddr(v4);
    // ::/8 is reserved (IPv4-compatible addresses such as ::7f00:1 among them): never a public host.
    if (v6.parts[0]! < 0x100) return false;
    return v6.range() === 'unicast';
  }

  function allowed(address: string): boolean {
    // Zone identifiers (`fe80::1%eth0`) name an interface: never a public address.
    if (address.includes('%')) return false;
    let addr: ipaddr.IPv4 | ipaddr.IPv6;
    try {
      addr = ipaddr.parse(address);
    } catch {
      return false;
    }
    return allowedAddr(addr);
  }

  return {
    allowed,
    async check(hostname) {
      const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
      const family = isIP(host);
      const addresses: LookupAddress[] = family ? [{ address: host, family }] : await resolve(host);
      if (!addresses.length) throw Object.assign(new Error(`${host} has no address`), { code: 'ENOTFOUND' });
      // The address a name resolved to is not told: the resolver may know names of the private network.
      for (const a of addresses) if (!allowed(a.address)) throw new AddressNotAllowed(host, !family);
      return addresses;
    },
  };
}
