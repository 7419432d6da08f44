import { describe, expect, it } from 'vitest';
import { AddressNotAllowed, createNetGuard, parseNetworks } from '../../src/lib/net-guard.ts';

describe('net guard', () => {
  const guard = createNetGuard({
    resolve: async (host) =>
      host === 'inside.example.com'
        ? [
            { address: '93.184.216.34', family: 4 },
            { address: '10.0.0.7', family: 4 },
          ]
        : [{ address: '93.184.216.34', family: 4 }],
  });

  it('refuses every non-public range, also embedded in IPv6', () => {
    for (const a of [
      '127.0.0.1',
      '127.1',
      '0x7f000001',
      '2130706433',
      '0177.0.0.1',
      '10.1.2.3',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '100.64.0.1',
      '100.100.100.200',
      '169.254.169.254',
      '0.0.0.0',
      '255.255.255.255',
      '224.0.0.1',
      '240.0.0.1',
      '192.0.2.1',
      '198.18.0.1',
      '::1',
      '::',
      'fe80::1',
      'fe80::1%eth0',
      'fc00::1',
      'fd00:ec2::254',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:169.254.169.254',
      '64:ff9b::7f00:1',
      '64:ff9b::a00:1',
      '2002:7f00:1::',
      '2002:a9fe:a9fe::',
      '2001:db8::1',
      '::7f00:1',
      '::a00:1',
      'not an address',
    ]) {
      expect(guard.allowed(a), a).toBe(false);
    }
  });

  it('allows public unicast addresses, also behind NAT64 and 6to4', () => {
    for (const a of [
      '93.184.216.34',
      '8.8.8.8',
      '172.32.0.1',
      '100.128.0.1',
      '2606:4700::1111',
      '64:ff9b::808:808',
      '2002:808:808::1',
      '::ffff:8.8.8.8',
    ]) {
      expect(guard.allowed(a), a).toBe(true);
    }
  });

  it('allows what the operator lists', () => {
    const open = createNetGuard({ allow: parseNetworks('127.0.0.0/8, fd12:3456::/48 ,10.20.30.40') });
    expect(open.allowed('127.0.0.1')).toBe(true);
    expect(open.allowed('fd12:3456::9')).toBe(true);
    expect(open.allowed('10.20.30.40')).toBe(true);
    expect(open.allowed('10.20.30.41')).toBe(false);
    expect(open.allowed('::1')).toBe(false);
    expect(() => parseNetworks('10.0.0.0/33')).toThrow(/10.0.0.0\/33/);
    expect(() => parseNetworks('localhost')).toThrow(/localhost/);
    expect(parseNetworks('')).toEqual([]);
  });

  it('checks every address a name resolves to', async () => {
    await expect(guard.check('hooks.example.com')).resolves.toEqual([{ address: '93.184.216.34', family: 4 }]);
    await expect(guard.check('inside.example.com')).rejects.toBeInstanceOf(AddressNotAllowed);
    await expect(guard.check('[::1]')).rejects.toThrow('address ::1 is not allowed');
    await expect(guard.check('8.8.8.8')).resolves.toEqual([{ address: '8.8.8.8', family: 4 }]);
  });
});
