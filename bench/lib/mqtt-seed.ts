import type { Db } from '../../src/db/client.ts';
import { devices } from '../../src/db/schema/index.ts';
import { newId, randomToken, shortCode } from '../../src/lib/ids.ts';

export interface SeededDevices {
  /** Access token of every device, in creation order. */
  tokens: string[];
  ms: number;
}

/**
 * Creates `n` plain devices (no type, no group, offline, never active) in one project with
 * multi-row INSERTs of `batch` rows, and answers their access tokens. It bypasses the services on
 * purpose: the bench measures the broker, not provisioning (see bench/README.md for the figures of
 * the provisioning API).
 */
export async function seedMqttDevices(db: Db, projectId: string, n: number, batch = 2000): Promise<SeededDevices> {
  const started = performance.now();
  const now = Date.now();
  const tokens: string[] = [];
  for (let start = 0; start < n; start += batch) {
    const rows: (typeof devices.$inferInsert)[] = [];
    for (let i = start; i < Math.min(n, start + batch); i++) {
      const accessToken = randomToken(20);
      tokens.push(accessToken);
      rows.push({
        id: newId(now - n + i),
        projectId,
        name: `mqtt bench ${i + 1}`,
        accessToken,
        viewToken: randomToken(20),
        deviceCode: shortCode(10),
        createTime: now,
        updateTime: now,
      });
    }
    await db.insert(devices).values(rows);
  }
  return { tokens, ms: performance.now() - started };
}
