/**
 * The database schema (drizzle), one file per area; drizzle.config.ts reads this index, and the
 * migrations in drizzle/ are generated from it.
 */
export * from './projects.ts';
export * from './device-types.ts';
export * from './devices.ts';
export * from './commands.ts';
export * from './telemetry.ts';
export * from './alarms.ts';
