import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { pino } from 'pino';
import { createBroker, type Broker, type BrokerOptions } from '../../mqtt-broker/mqtt/broker.ts';
import { createTcpListener, type TcpListener, type TcpListenerOptions } from '../../mqtt-broker/tcp/listener.ts';
import { createTestApp, type TestContext } from './app.ts';

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

type TcpOptions = Partial<Omit<TcpListenerOptions, 'services'>>;

/**
 * The raw TCP listener over a test app's services on a port of its own (port 0): silent, no delay after a
 * failed login, then `opts`. For a file that needs several listeners, or one beside an app it already has.
 */
export async function startTestTcpListener(
  ctx: TestContext,
  opts: TcpOptions = {},
): Promise<{ tcp: TcpListener; port: number }> {
  const tcp = createTcpListener({
    services: ctx.services,
    logger: pino({ level: 'silent' }),
    authFailureDelayMs: 0,
    ...opts,
  });
  try {
    return { tcp, port: (await tcp.listen(0, '127.0.0.1')).port };
  } catch (err) {
    await tcp.close();
    throw err;
  }
}

export interface AppWithBroker<Tcp extends TcpListener | undefined = TcpListener | undefined> {
  ctx: TestContext;
  tb: TestBroker;
  /** The raw TCP listener, when asked for (`tcp`); otherwise undefined. */
  tcp: Tcp;
  /** Its port (0 without one). */
  tcpPort: number;
  /** Ends the TCP listener, the broker, then the app. */
  close(): Promise<void>;
}

/**
 * A protocol test file's set-up: a test app (`app` configuration), its embedded broker (port 0, `broker` options)
 * and, when `tcp` is given, the raw TCP listener over the same services (port 0, silent, no delay after a failed
 * login, `tcp` options). What started is ended again when a later step fails.
 */
export async function startAppWithBroker<Tcp extends TcpOptions | undefined = undefined>(
  opts: {
    app?: Parameters<typeof createTestApp>[0];
    broker?: Partial<Omit<BrokerOptions, 'services'>>;
    tcp?: Tcp;
  } = {},
): Promise<AppWithBroker<Tcp extends undefined ? undefined : TcpListener>> {
  const ctx = await createTestApp(opts.app);
  let tb: TestBroker | undefined;
  let tcp: TcpListener | undefined;
  const close = async () => {
    await tcp?.close();
    await tb?.close();
    await ctx.close();
  };
  try {
    tb = await startTestBroker(ctx, opts.broker);
    let tcpPort = 0;
    if (opts.tcp) ({ tcp, port: tcpPort } = await startTestTcpListener(ctx, opts.tcp));
    return { ctx, tb, tcp: tcp as Tcp extends undefined ? undefined : TcpListener, tcpPort, close };
  } catch (err) {
    await close();
    throw err;
  }
}
