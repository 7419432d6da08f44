import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { addressKey, connectionsForFileLimit, createAdmission } from '../../mqtt-broker/core/admission.ts';
import { clientAddress } from '../../mqtt-broker/mqtt/websocket.ts';

/** Connections before login and login attempts (mqtt-broker/core/admission.ts). */
function opener(admission: ReturnType<typeof createAdmission>) {
  const evicted: string[] = [];
  const open = (address: string, name: string) => admission.open(address, () => evicted.push(name));
  return { evicted, open };
}

describe('admission of connections before login', () => {
  it('past the per-address limit closes the oldest pending connection of that address only', () => {
    const a = createAdmission({ pendingPerAddress: 3, pendingMax: 100, maxConnections: 1000 });
    const { evicted, open } = opener(a);
    open('10.0.0.1', 'a1');
    open('10.0.0.2', 'b1');
    open('10.0.0.1', 'a2');
    open('10.0.0.1', 'a3');
    expect(evicted).toEqual([]);
    open('10.0.0.1', 'a4');
    open('10.0.0.1', 'a5');
    expect(evicted).toEqual(['a1', 'a2']);
    expect(a.stats()).toMatchObject({ open: 4, pending: 4, evicted: 2 });
  });

  it('never closes a logged-in connection: the next oldest pending one goes', () => {
    const a = createAdmission({ pendingPerAddress: 2, pendingMax: 100, maxConnections: 1000 });
    const { evicted, open } = opener(a);
    open('10.0.0.1', 'a1')!.admit();
    open('10.0.0.1', 'a2');
    open('10.0.0.1', 'a3');
    open('10.0.0.1', 'a4');
    expect(evicted).toEqual(['a2']);
  });

  it('past the global limit closes the oldest pending connection of the address holding the most', () => {
    const a = createAdmission({ pendingPerAddress: 100, pendingMax: 4, maxConnections: 1000 });
    const { evicted, open } = opener(a);
    open('10.0.0.9', 'x1');
    open('10.0.0.1', 'a1');
    open('10.0.0.1', 'a2');
    open('10.0.0.1', 'a3');
    // A newcomer from another address is admitted; the flooding address pays.
    const t = open('10.0.0.2', 'b1');
    expect(t).toBeDefined();
    expect(evicted).toEqual(['a1']);
    expect(a.stats().pending).toBe(4);
  });

  it('a closed connection frees its slot; beyond the connection limit with nobody pending, new ones are refused', () => {
    const a = createAdmission({ pendingPerAddress: 10, pendingMax: 10, maxConnections: 2 });
    const { evicted, open } = opener(a);
    const t1 = open('10.0.0.1', 'a1')!;
    t1.admit();
    const t2 = open('10.0.0.2', 'b1')!;
    // Full: the pending one makes room, the logged-in one never does.
    expect(open('10.0.0.3', 'c1')).toBeDefined();
    expect(evicted).toEqual(['b1']);
    t2.closed(); // the evicted socket's close arrives later: counted once
    expect(a.stats()).toMatchObject({ open: 2, pending: 1 });
    const a2 = createAdmission({ maxConnections: 1 });
    a2.open('10.0.0.1', () => {})!.admit();
    expect(a2.open('10.0.0.2', () => {})).toBeUndefined();
    expect(a2.stats()).toMatchObject({ open: 1, refused: 1 });
    t1.closed();
    t1.closed();
    expect(a.stats().open).toBe(1);
  });

  it('limits login attempts per address with a token bucket', () => {
    let now = Date.now();
    const a = createAdmission({ loginRate: 2, loginBurst: 3, clock: () => now });
    expect([1, 2, 3, 4].map(() => a.tryLogin('10.0.0.1'))).toEqual([true, true, true, false]);
    // Another address has its own budget.
    expect(a.tryLogin('10.0.0.2')).toBe(true);
    now += 500;
    expect([a.tryLogin('10.0.0.1'), a.tryLogin('10.0.0.1')]).toEqual([true, false]);
    expect(a.stats().loginsLimited).toBe(2);
  });

  it('counts IPv6 clients by /64 and IPv4-mapped addresses as IPv4', () => {
    expect(addressKey('::ffff:10.1.2.3')).toBe('10.1.2.3');
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2::ffff')).toBe('2001:db8:1:2::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey(undefined)).toBe('unknown');
  });

  it('keeps descriptors for HTTP and the database below the open-file limit', () => {
    expect(connectionsForFileLimit(20_000)).toBe(18_976);
    expect(connectionsForFileLimit(1024)).toBe(768);
    expect(connectionsForFileLimit(undefined)).toBe(16_384);
  });

  it('WebSocket clients: the socket peer, or behind a trusted proxy the address the proxy added', () => {
    const req = (xff?: string) =>
      ({
        headers: xff ? { 'x-forwarded-for': xff } : {},
        socket: { remoteAddress: '10.0.0.5' },
      }) as unknown as IncomingMessage;
    expect(clientAddress(req('1.2.3.4'), false)).toBe('10.0.0.5');
    expect(clientAddress(req('6.6.6.6, 1.2.3.4'), true)).toBe('1.2.3.4');
    expect(clientAddress(req(), true)).toBe('10.0.0.5');
  });
});
