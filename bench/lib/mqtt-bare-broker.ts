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
import { Aedes } from 'aedes';
// A leaf (it imports nothing): the baseline process loads none of the server's code.
import { MQTT_DEFAULTS } from '../../mqtt-broker/core/defaults.ts';
import { serveAedes } from './aedes-serve.ts';

const port = Number(process.env.BARE_MQTT_PORT ?? 0);
// The server's packet size; the connect timeout stays the bench's 30 s (the server's is
// MQTT_DEFAULTS.connectTimeoutMs, 10 s), as the baseline has always run.
const aedes = await Aedes.createBroker({
  maximumPacketSize: MQTT_DEFAULTS.maxPacketSize,
  drainTimeout: 30_000,
  connectTimeout: 30_000,
});
serveAedes(aedes, port, 'bare broker');
