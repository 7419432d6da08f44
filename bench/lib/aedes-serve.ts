import net from 'node:net';
import type { Aedes } from 'aedes';

/**
 * Serves `aedes` on 127.0.0.1:`port` (0: any free port) for a bench's baseline process: prints `{"port":<n>}` once
 * it listens, exits 1 when it cannot, and on SIGINT/SIGTERM closes the server and the broker, runs `onStop`, then
 * exits 0. Shared by the bare broker and the do-it-yourself reference.
 */
export function serveAedes(aedes: Aedes, port: number, name: string, onStop: () => Promise<void> | void = () => {}) {
  const server = net.createServer((socket) => {
    socket.on('error', () => {});
    aedes.handle(socket);
  });
  server.on('error', (err) => {
    console.error(`${name}: ${err.message}`);
    process.exit(1);
  });
  server.listen(port, '127.0.0.1', () => {
    console.log(JSON.stringify({ port: (server.address() as net.AddressInfo).port }));
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      server.close();
      aedes.close(() => {
        void Promise.resolve()
          .then(onStop)
          .finally(() => process.exit(0));
      });
    });
  }
}
