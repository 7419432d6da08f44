import { describe, expect, it } from 'vitest';
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
});
