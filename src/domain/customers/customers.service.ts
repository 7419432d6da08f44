import { Duplicate, MissingReference } from '../../db/errors.ts';
import type { CustomerRow, CustomersRepository } from '../../db/repositories/customers.repository.ts';
import { BadRequest, Conflict, NotFound } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import { hashSecret } from '../../lib/passwords.ts';
import type { AuthService } from '../auth/auth.service.ts';
import type { Scope } from '../auth/principal.ts';
import type { EventBus } from '../events/event-bus.ts';
import { DEFAULT_CUSTOMER_PASSWORD_MIN } from '../projects/project-settings.service.ts';

export const MAX_CUSTOMER_TAGS = 64;

export interface CustomersServiceDeps {
  customers: CustomersRepository;
  clock?: () => number;
  /** Drops a deleted customer from the token cache so their tokens die at once. */
  auth: Pick<AuthService, 'forget'>;
  /** The project's shortest customer password (project settings); 8 without it. */
  passwordMin?: (projectId: string) => Promise<number>;
  /** Binding changes are told (`customer.devices_changed`): a customer's live event stream follows them. */
  bus?: Pick<EventBus, 'emit'>;
}

export interface CreateCustomerInput {
  name: string;
  account: string;
  password: string;
  descr?: string;
  email?: string;
  mobile?: string;
  tags?: Record<string, string>;
  locale?: string;
}

export interface UpdateCustomerInput {
  name?: string;
  descr?: string;
  email?: string;
  mobile?: string;
  locale?: string;
}

/** The customer object of http-api.md §3. */
export function customerView(c: CustomerRow) {
  return {
    id: c.id,
    account: c.account,
    name: c.name,
    descr: c.descr,
    email: c.email,
    mobile: c.mobile,
    tags: c.tags,
    locale: c.locale,
    create_time: c.createTime,
    count: { device_count: c.deviceCount },
  };
}

/** The project's end users and the devices bound to them (http-api.md §3 "Customers", §4). */
export function createCustomersService({
  customers,
  clock = Date.now,
  auth,
  passwordMin = async () => DEFAULT_CUSTOMER_PASSWORD_MIN,
  bus,
}: CustomersServiceDeps) {
  /** The project's minimum length, in the same words as a schema failure (http-api.md §1 envelope). */
  async function checkPassword(projectId: string, password: string) {
    const min = await passwordMin(projectId);
    if (password.length < min) {
      const message = `must be at least ${min} characters`;
      throw new BadRequest(`Invalid input: password: ${message}`, [{ path: 'password', message }]);
    }
  }

  async function mustExist(scope: Scope, id: string) {
    if (!(await customers.exists(scope.projectId, id))) throw new NotFound('Customer');
  }

  /** Every id must name a device of the project; the failure names the ones that do not. */
  async function checkDevices(projectId: string, ids: string[]) {
    const unique = [...new Set(ids)];
    const found = new Set(await customers.existingDeviceIds(projectId, unique));
    const missing = unique.filter((d) => !found.has(d));
    if (missing.length) throw new NotFound(`Device ${missing.join(', ')}`);
    return unique;
  }

  return {
    mustExist,

    async list(scope: Scope, page: number, pageRecords: number) {
      const { rows, total } = await customers.list(scope.projectId, pageRecords, (page - 1) * pageRecords);
      return { items: rows.map(customerView), total, page_total: Math.ceil(total / pageRecords) };
    },

    async get(scope: Scope, id: string) {
      const row = await customers.get(scope.projectId, id);
      if (!row) throw new NotFound('Customer');
      return customerView(row);
    },

    async create(scope: Scope, input: CreateCustomerInput) {
      await checkPassword(scope.projectId, input.password);
      const now = clock();
      const id = newId(now);
      try {
        await customers.insert({
          id,
          projectId: scope.projectId,
          account: input.account,
          passwordHash: await hashSecret(input.password),
          name: input.name,
          descr: input.descr ?? '',
          email: input.email ?? '',
          mobile: input.mobile ?? '',
          tags: input.tags ?? {},
          ...(input.locale !== undefined ? { locale: input.locale } : {}),
          createTime: now,
          updateTime: now,
        });
      } catch (err) {
        if (err instanceof Duplicate && err.what === 'account') {
          throw new Conflict('account is already used by another customer of the project', [
            { path: 'account', message: 'already exists' },
          ]);
        }
        throw err;
      }
      return { id, name: input.name };
    },

    async updateInfo(scope: Scope, id: string, patch: UpdateCustomerInput) {
      const ok = await customers.update(scope.projectId, id, {
        ...(patch.name !== undefined ? { name: patch.name } : {}),
        ...(patch.descr !== undefined ? { descr: patch.descr } : {}),
        ...(patch.email !== undefined ? { email: patch.email } : {}),
        ...(patch.mobile !== undefined ? { mobile: patch.mobile } : {}),
        ...(patch.locale !== undefined ? { locale: patch.locale } : {}),
        updateTime: clock(),
      });
      if (!ok) throw new NotFound('Customer');
    },

    async setPassword(scope: Scope, id: string, password: string) {
      // Checked first so an unknown id does not cost a hash.
      await mustExist(scope, id);
      await checkPassword(scope.projectId, password);
      const now = clock();
      const ok = await customers.update(scope.projectId, id, {
        passwordHash: await hashSecret(password),
        credentialsTime: now,
        updateTime: now,
      });
      if (!ok) throw new NotFound('Customer');
      auth.forget('customer', id);
    },

    async mergeTags(scope: Scope, id: string, tags: Record<string, string>) {
      const outcome = await customers.mergeTags(scope.projectId, id, tags, MAX_CUSTOMER_TAGS, clock());
      if (outcome === 'missing') throw new NotFound('Customer');
      if (outcome === 'too-many') {
        throw new BadRequest(`A customer has at most ${MAX_CUSTOMER_TAGS} tags`, [
          { path: 'tags', message: 'too many tags' },
        ]);
      }
    },

    async removeTags(scope: Scope, id: string, keys: string[]) {
      if (!keys.length) return mustExist(scope, id);
      if (!(await customers.removeTags(scope.projectId, id, keys, clock()))) throw new NotFound('Customer');
    },

    /** Deleting a customer unbinds their devices (cascade) and ends their tokens. */
    async delete(scope: Scope, id: string) {
      if (!(await customers.delete(scope.projectId, id))) throw new NotFound('Customer');
      auth.forget('customer', id);
    },

    async bindDevices(scope: Scope, id: string, deviceIds: string[]) {
      await mustExist(scope, id);
      const ids = await checkDevices(scope.projectId, deviceIds);
      try {
        await customers.bindDevices(scope.projectId, id, ids, clock());
      } catch (err) {
        // A device or the customer deleted between the checks and the insert.
        if (!(err instanceof MissingReference)) throw err;
        throw err.what === 'customer' ? new NotFound('Customer') : new NotFound('Device');
      }
      bus?.emit('customer.devices_changed', {
        projectId: scope.projectId,
        customerId: id,
        deviceIds: ids,
        bound: true,
      });
    },

    /** Ids that are not bound (or not devices at all) are ignored: the call states the wanted end state. */
    async unbindDevices(scope: Scope, id: string, deviceIds: string[]) {
      await mustExist(scope, id);
      const ids = [...new Set(deviceIds)];
      await customers.unbindDevices(scope.projectId, id, ids);
      bus?.emit('customer.devices_changed', {
        projectId: scope.projectId,
        customerId: id,
        deviceIds: ids,
        bound: false,
      });
    },
  };
}
export type CustomersService = ReturnType<typeof createCustomersService>;
