import net from 'node:net';

/**
 * The key a client address is counted under: IPv4 as is, IPv6 by its /64 network. Shared by the
 * device admission (mqtt-broker/core/admission.ts) and the HTTP limits, so both count one client alike.
 */
export function addressKey(remoteAddress: string | undefined): string {
  if (!remoteAddress) return 'unknown';
  let a = remoteAddress.split('%')[0]!;
  if (a.startsWith('::ffff:') && net.isIPv4(a.slice(7))) a = a.slice(7);
  if (!net.isIPv6(a)) return a;
  // Expand "::" and keep the first four groups.
  const [head, tail = ''] = a.split('::') as [string, string?];
  const h = head ? head.split(':') : [];
  const t = a.includes('::') && tail ? tail.split(':') : [];
  const groups = a.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h;
  return `${groups
    .slice(0, 4)
    .map((g) => (parseInt(g, 16) || 0).toString(16))
    .join(':')}::/64`;
}
