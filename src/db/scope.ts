import { and, eq, sql, type AnyColumn, type SQL } from 'drizzle-orm';
import { customerDevices } from './schema/index.ts';

/**
 * What a call of the project API may see (http-api.md §4): the project always, and for customer
 * tokens only the devices bound to the customer. src/domain/auth/principal.ts derives it from the caller.
 */
export interface Scope {
  projectId: string;
  /** Set for customer tokens: only devices bound to this customer exist for the caller. */
  customerId?: string;
}

/** The customer-isolation predicate, written once: the device `deviceId` is bound to the customer. */
export function boundToCustomer(deviceId: AnyColumn | SQL, customerId: string): SQL {
  return sql`exists (select 1 from ${customerDevices} cd where cd.device_id = ${deviceId} and cd.customer_id = ${customerId})`;
}

/** Restricts rows to the scope: their project always, and their device bound to the customer for customer tokens. */
export function inScope(scope: Scope, columns: { projectId: AnyColumn; deviceId: AnyColumn }): SQL {
  const project = eq(columns.projectId, scope.projectId);
  if (!scope.customerId) return project;
  return and(project, boundToCustomer(columns.deviceId, scope.customerId))!;
}
