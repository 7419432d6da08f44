import type { FastifyInstance } from 'fastify';
import { scopeOf } from '../../../domain/auth/principal.ts';
import type { Services } from '../../../composition/services.ts';
import { DeviceList, DeviceSearch } from '../devices/devices.schema.ts';
import { IdParams, pagingQuery } from '../common.schema.ts';
import { Empty, endpoint } from '../route.ts';
import {
  CreatedCustomer,
  CreateCustomerBody,
  Customer,
  CUSTOMER_LIST_CAP,
  CustomerList,
  CustomerListQuery,
  DevicesBody,
  KeysBody,
  PasswordBody,
  TagsBody,
  UpdateCustomerBody,
} from './customers.schema.ts';

export function customerRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { customers } = services;
  const tags = ['Customers'];
  const PageQuery = pagingQuery(500);

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/customers',
    access: 'manage',
    tags,
    summary: "List the project's customers, newest first",
    description:
      `Without \`page\` and \`page_records\`, the whole list up to ${CUSTOMER_LIST_CAP.toLocaleString('en')} customers (the vendor's clients ` +
      'send no paging parameters and expect every customer); `total` tells whether more exist. With either one, pages as the device ' +
      'list: `page` from 1, `page_records` 1–500 (default 20).',
    query: CustomerListQuery,
    response: CustomerList,
    handler: ({ principal, query }) => {
      const paged = query.page !== undefined || query.page_records !== undefined;
      return paged
        ? customers.list(scopeOf(principal), query.page ?? 1, query.page_records ?? 20)
        : customers.list(scopeOf(principal), 1, CUSTOMER_LIST_CAP);
    },
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/customer/:id',
    access: 'manage',
    tags,
    summary: 'Read a customer',
    params: IdParams,
    response: Customer,
    handler: ({ principal, params }) => customers.get(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/customer',
    access: 'manage',
    tags,
    summary: 'Create a customer (an end user who logs in with customer_login)',
    description: '`account` is unique within the project (409 otherwise).',
    body: CreateCustomerBody,
    response: CreatedCustomer,
    handler: ({ principal, body }) => customers.create(scopeOf(principal), body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/customer/:id/info',
    access: 'manage',
    tags,
    summary: "Update a customer's name, description, email, mobile or locale",
    params: IdParams,
    body: UpdateCustomerBody,
    response: Empty,
    handler: ({ principal, params, body }) => customers.updateInfo(scopeOf(principal), params.id, body),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/customer/:id/pwd',
    access: 'manage',
    tags,
    summary: "Set a customer's password",
    params: IdParams,
    body: PasswordBody,
    response: Empty,
    handler: ({ principal, params, body }) => customers.setPassword(scopeOf(principal), params.id, body.password),
  });

  endpoint(app, {
    method: 'PUT',
    url: '/api/v1/customer/:id/tags',
    access: 'manage',
    tags,
    summary: "Add or change a customer's tags (merged with the existing ones)",
    params: IdParams,
    body: TagsBody,
    response: Empty,
    handler: ({ principal, params, body }) => customers.mergeTags(scopeOf(principal), params.id, body.tags),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/customer/:id/tags_remove',
    access: 'manage',
    tags,
    summary: 'Remove tags of a customer by key',
    params: IdParams,
    body: KeysBody,
    response: Empty,
    handler: ({ principal, params, body }) => customers.removeTags(scopeOf(principal), params.id, body.keys),
  });

  endpoint(app, {
    method: 'DELETE',
    url: '/api/v1/customer/:id',
    access: 'manage',
    tags,
    summary: 'Delete a customer: their device bindings go and their tokens stop working',
    params: IdParams,
    response: Empty,
    handler: ({ principal, params }) => customers.delete(scopeOf(principal), params.id),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/customer/:id/devices',
    access: 'manage',
    tags,
    summary: 'Bind devices to a customer (binding a device twice changes nothing)',
    description:
      'Every id must be a device of the project; otherwise nothing is bound and the failure names the unknown ids.',
    params: IdParams,
    body: DevicesBody,
    response: Empty,
    handler: ({ principal, params, body }) => customers.bindDevices(scopeOf(principal), params.id, body.devices),
  });

  endpoint(app, {
    method: 'POST',
    url: '/api/v1/customer/:id/devices_remove',
    access: 'manage',
    tags,
    summary: 'Unbind devices from a customer (ids that are not bound are ignored)',
    params: IdParams,
    body: DevicesBody,
    response: Empty,
    handler: ({ principal, params, body }) => customers.unbindDevices(scopeOf(principal), params.id, body.devices),
  });

  endpoint(app, {
    method: 'GET',
    url: '/api/v1/customer/:id/devices',
    access: 'manage',
    tags,
    summary: 'List the devices bound to a customer, newest first (same shape as GET /api/v1/devices)',
    params: IdParams,
    query: PageQuery.extend({ search: DeviceSearch }),
    response: DeviceList,
    handler: async ({ principal, params, query }) => {
      const scope = scopeOf(principal);
      await customers.mustExist(scope, params.id);
      return services.devices.list(
        { projectId: scope.projectId, customerId: params.id },
        query.search !== undefined ? { search: query.search } : {},
        query.page,
        query.page_records,
      );
    },
  });
}
