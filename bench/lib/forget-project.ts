import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.ts';
import { createServices } from '../../src/composition/services.ts';

/**
 * Deletes a bench's project with all of its data (its history included) and vacuums the tables a run writes,
 * so a shared PostgreSQL database keeps no trace of the run. On a server without autovacuum, as this
 * machine's, the dead rows slow every later run: bench:mqtt-connect's database CPU per report rose from 0.20
 * to 0.33 ms over eleven runs into one database while it vacuumed two tables and left the history behind.
 */
export async function forgetBenchProject(db: Db, projectId: string): Promise<void> {
  await createServices({ db }).projects.delete(projectId);
  await db.execute(
    sql`vacuum (analyze) attribute_history, attribute_values, devices, report_receipts, report_receipt_takes, ingest_commits`,
  );
}
