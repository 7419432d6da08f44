/**
 * The baseline of bench/mqtt-connect: a bare Aedes broker (the version the server pins), run as a
 * child process of its own. No authentication, no hooks, Aedes' default in-memory persistence, and
 * the same broker options the server passes (mqtt-broker/mqtt/broker.ts), so the difference to our
 * server is the work our broker and services do per connection and per message.
 *
 *   node --import tsx bench/lib/mqtt-bare-broker.ts      # prints {"port":<n>} once it listens
 *
 * Listens on 127.0.0.1 (port from BARE_MQTT_PORT, default 0 = any free port) and stops on SIGTERM.
 */
import net from 'node:net';
import { Aedes } from 'aedes';
// A leaf (it imports nothing): the baseline process loads none of the server's code.
import { MQTT_DEFAULTS } from '../../mqtt-broker/core/defaults.ts';

const port = Number(process.env.BARE_MQTT_PORT ?? 0);
// The server's packet size; the connect timeout stays the bench's 30 s (the server's is
// MQTT_DEFAULTS.connectTimeoutMs, 10 s), as the baseline has always run.
const aedes = await Aedes.createBroker({
  maximumPacketSize: MQTT_DEFAULTS.maxPacketSize,
  drainTimeout: 30_000,
  connectTimeout: 30_000,
});
const server = net.createServer((socket) => {
  socket.on('error', () => {});
  aedes.handle(socket);
});
server.on('error', (err) => {
  console.error(`bare broker: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => {
  console.log(JSON.stringify({ port: (server.address() as net.AddressInfo).port }));
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    server.close();
    aedes.close(() => process.exit(0));
  });
}
