import type { Scope } from '../../db/scope.ts';

/**
 * Who is calling the project API. Every service call takes the caller's scope: the project is
 * always fixed by it, and a customer additionally sees only the devices bound to them.
 */
export type PrincipalKind = 'app' | 'admin' | 'customer';

export interface Principal {
  projectId: string;
  kind: PrincipalKind;
  /** The app id, admin id or customer id. */
  subjectId: string;
}

export type { Scope };

export function scopeOf(p: Principal): Scope {
  return p.kind === 'customer' ? { projectId: p.projectId, customerId: p.subjectId } : { projectId: p.projectId };
}
