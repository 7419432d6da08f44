import { describe, expect, it, vi } from 'vitest';
import { createAdmission } from '../../mqtt-broker/core/admission.ts';

/**
 * A ticket lives as long as its connection, and a reconnect storm makes tens of thousands: its methods are
 * shared, not closures made per connection (each had a property table of its own under tsx, see admission.ts).
 */
describe('admission tickets', () => {
  it('share their methods and own nothing but their state', () => {
    const admission = createAdmission({ maxConnections: 10 });
    const a = admission.open('10.0.0.1', () => {})!;
    const b = admission.open('10.0.0.2', () => {})!;
    expect(a.admit).toBe(b.admit);
    expect(a.closed).toBe(b.closed);
    expect(
      Object.values(a).filter((v) => typeof v === 'function' && v !== (a as unknown as { evict: unknown }).evict),
    ).toEqual([]);
  });

  it('still count each connection as its own', () => {
    const admission = createAdmission({ maxConnections: 10 });
    const a = admission.open('10.0.0.1', () => {})!;
    const b = admission.open('10.0.0.1', () => {})!;
    expect(admission.stats()).toMatchObject({ open: 2, pending: 2 });
    a.admit();
    expect([a.admitted, b.admitted]).toEqual([true, false]);
    expect(admission.stats()).toMatchObject({ open: 2, pending: 1 });
    a.closed();
    a.closed();
    expect(admission.stats()).toMatchObject({ open: 1, pending: 1 });
    b.closed();
    expect(admission.stats()).toMatchObject({ open: 0, pending: 0 });
    expect(b.admitted).toBe(false);
  });

  it('hold their login deadline only until the login: no timer stays with a connection that logged in', () => {
    vi.useFakeTimers();
    try {
      const admission = createAdmission({ maxConnections: 10 });
      const expired: string[] = [];
      const a = admission.open('10.0.0.1', () => {})!;
      const b = admission.open('10.0.0.2', () => {})!;
      const c = admission.open('10.0.0.3', () => {})!;
      a.expireAfter(1_000, () => expired.push('a'));
      b.expireAfter(1_000, () => expired.push('b'));
      c.expireAfter(1_000, () => expired.push('c'));
      expect(vi.getTimerCount()).toBe(3);
      a.admit();
      c.closed();
      expect(vi.getTimerCount()).toBe(1);
      vi.advanceTimersByTime(1_000);
      // Only the one still pending at its deadline expires.
      expect(expired).toEqual(['b']);
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});
