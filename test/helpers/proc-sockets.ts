import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** One TCP socket a process holds: its local and remote port, and whether it is listening. */
export interface TcpSocket {
  local: number;
  remote: number;
  listening: boolean;
}

/**
 * The TCP sockets process `pid` holds (Linux: its socket inodes in /proc/<pid>/fd, found in
 * /proc/<pid>/net/tcp{,6}). Used by the TLS tests and the MQTT benchmarks alike.
 */
export function tcpSocketsOf(pid: number): TcpSocket[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  const out: TcpSocket[] = [];
  for (const table of ['tcp', 'tcp6']) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st … inode; st 0A = LISTEN
      if (f.length < 10 || !inodes.has(f[9]!)) continue;
      out.push({
        local: Number.parseInt(f[1]!.split(':')[1]!, 16),
        remote: Number.parseInt(f[2]!.split(':')[1]!, 16),
        listening: f[3] === '0A',
      });
    }
  }
  return out;
}
