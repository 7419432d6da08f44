import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { createBroker, type Broker, type BrokerOptions } from '../../mqtt-broker/mqtt/broker.ts';
import type { TestContext } from './app.ts';

export interface TestBroker {
  broker: Broker;
  /** `mqtt://127.0.0.1:<port>` */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The embedded broker over a test app's services, on a TCP port of its own (port 0). */
export async function startTestBroker(
  ctx: TestContext,
  opts: Partial<Omit<BrokerOptions, 'services'>> = {},
): Promise<TestBroker> {
  const broker = await createBroker({
    services: ctx.services,
    logger: pino({ level: 'silent' }),
    authFailureDelayMs: 0,
    ...opts,
  });
  const server = net.createServer((socket) => broker.handleConnection(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    close: async () => {
      await broker.close();
      await new Promise((r) => server.close(r));
    },
  };
}

/** Serves a test app's HTTP on a port of its own (port 0); its base URL, `http://127.0.0.1:<port>`. */
export async function listenTestApp(ctx: TestContext): Promise<string> {
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  return `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`;
}
