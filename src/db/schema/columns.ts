import { bigint, jsonb, customType } from 'drizzle-orm/pg-core';

/** Column helpers every table of the schema uses (src/db/schema/index.ts lists the tables). */

/** Times are milliseconds since the epoch, as the API speaks them (http-api.md §1). */
export const ms = (name: string) => bigint(name, { mode: 'number' });
/** Raw bytes; PGlite hands back a Uint8Array, postgres.js a Buffer: both are read as Buffer. */
export const bytea = customType<{ data: Buffer; driverData: Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => Buffer.from(value.buffer, value.byteOffset, value.byteLength),
});
export const tags = () => jsonb('tags').$type<Record<string, string>>().notNull().default({});
export const created = () => ms('create_time').notNull();
export const updated = () => ms('update_time').notNull();
/** When the secret or password last changed: tokens issued before it are refused. */
export const credentialsTime = () => ms('credentials_time').notNull().default(0);
