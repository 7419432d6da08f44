import postgres from 'postgres';
import { cpuByPid, localPortsTo } from './mqtt-proc.ts';

/**
 * The CPU of the PostgreSQL backends serving our server (found by the client ports of the server's
 * connections, since other clients may use the same database), so "other processes" does not hide
 * the database's share of the work. Local servers only: the backends' CPU time is read from /proc.
 */
export interface DbProbe {
  /** CPU ms by backend pid; undefined when the backends are not processes of this machine. */
  snapshot(): Promise<Map<number, number> | undefined>;
  close(): Promise<void>;
}

export function dbProbe(url: string, serverPid: number): DbProbe {
  const client = postgres(url, { max: 1, onnotice: () => {} });
  const port = Number(new URL(url).port || 5432);
  return {
    async snapshot() {
      const ports = localPortsTo(serverPid, port);
      const rows = await client<
        { pid: number; client_port: number | null }[]
      >`select pid, client_port from pg_stat_activity where datname = current_database()`;
      const ours = rows.filter((r) => r.client_port !== null && ports.has(r.client_port));
      const cpu = cpuByPid(ours.map((r) => r.pid));
      return ours.length && !cpu.size ? undefined : cpu;
    },
    close: () => client.end({ timeout: 5 }),
  };
}
