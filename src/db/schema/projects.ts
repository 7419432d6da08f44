import { index, integer, pgTable, text, uniqueIndex } from 'drizzle-orm/pg-core';
import { created, credentialsTime, tags, updated } from './columns.ts';

/** Projects and who may act in one: API apps, administrators, customers (http-api.md §2–4). */

/** The owning project: every row of every table belongs to one (deleted with it). */
export const projectRef = () =>
  text('project_id')
    .notNull()
    .references(() => projects.id, { onDelete: 'cascade' });

export const projects = pgTable('projects', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  descr: text('descr').notNull().default(''),
  tags: tags(),
  /** Given to every device of the project; the device protocol sends it in clear, so it is stored in clear. */
  projectKey: text('project_key').notNull().unique(),
  /** Application-subscription identity (device-protocol.md §9); the secret is hashed. */
  viewKey: text('view_key').unique(),
  viewSecretHash: text('view_secret_hash'),
  /** Maximum number of devices; null = unlimited (device-protocol.md §4). */
  deviceQuota: integer('device_quota'),
  /** Messages per second one device may send (device-protocol.md §3); null = the server's MQTT_RATE_LIMIT. */
  deviceRateLimit: integer('device_rate_limit'),
  /** Days of attribute history and data-stream messages kept; null = the server's HISTORY_RETENTION_DAYS, 0 = forever. */
  historyRetentionDays: integer('history_retention_days'),
  /** Shortest customer password the project accepts (6–128); null = the server's 8. */
  customerPasswordMinLength: integer('customer_password_min_length'),
  createTime: created(),
  updateTime: updated(),
});

export const apiApps = pgTable(
  'api_apps',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    name: text('name').notNull(),
    accessKey: text('access_key').notNull(),
    secretHash: text('secret_hash').notNull(),
    credentialsTime: credentialsTime(),
    createTime: created(),
  },
  (t) => [index('api_apps_project_idx').on(t.projectId)],
);

export const admins = pgTable(
  'admins',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    account: text('account').notNull(),
    name: text('name').notNull().default(''),
    email: text('email').notNull().default(''),
    tags: tags(),
    passwordHash: text('password_hash').notNull(),
    credentialsTime: credentialsTime(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [uniqueIndex('admins_project_account_uq').on(t.projectId, t.account)],
);

export const customers = pgTable(
  'customers',
  {
    id: text('id').primaryKey(),
    projectId: projectRef(),
    account: text('account').notNull(),
    passwordHash: text('password_hash').notNull(),
    name: text('name').notNull(),
    descr: text('descr').notNull().default(''),
    email: text('email').notNull().default(''),
    mobile: text('mobile').notNull().default(''),
    tags: tags(),
    locale: text('locale').notNull().default('en'),
    credentialsTime: credentialsTime(),
    createTime: created(),
    updateTime: updated(),
  },
  (t) => [
    uniqueIndex('customers_project_account_uq').on(t.projectId, t.account),
    index('customers_project_id_idx').on(t.projectId, t.id),
  ],
);
