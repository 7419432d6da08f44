import { chmod, lstat, rm } from 'node:fs/promises';
import net from 'node:net';
import Fastify, { type FastifyServerOptions } from 'fastify';
import { serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { registerEnvelope } from '../http/plugins/envelope.ts';
import { platformRoutes } from '../http/routes/platform/platform.routes.ts';
import type { Services } from '../composition/services.ts';
import { checkSocketPath } from './socket-path.ts';

export { controlSocketPath } from './socket-path.ts';

export interface ControlServerOptions {
  socketPath: string;
  services: Services;
  logger: Logger | false;
}

export interface ControlServer {
  close(): Promise<void>;
}

const BODY_LIMIT = 64 * 1024;

/**
 * The local control socket: PGlite admits one process, so while the server holds DATA_DIR the
 * operator CLI sends its platform commands here instead of opening the database. The socket file
 * is the guard (mode 0600: only the owner of the server process may connect), so the platform
 * routes are registered without their bearer token.
 */
export async function startControlServer({
  socketPath,
  services,
  logger,
}: ControlServerOptions): Promise<ControlServer> {
  checkSocketPath(socketPath);
  await clearStaleSocket(socketPath);
  const opts: FastifyServerOptions = {
    bodyLimit: BODY_LIMIT,
    ...(logger ? { loggerInstance: logger } : { logger: false }),
  };
  const app = Fastify(opts);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  registerEnvelope(app, BODY_LIMIT);
  // The CLI probes this before choosing the socket over opening DATA_DIR itself.
  app.get('/health', async () => ({ result: true, info: { status: 'ok' } }));
  platformRoutes(app, { services, token: null });

  await app.listen({ path: socketPath });
  try {
    // Connecting needs write permission on the file; with the usual umask others already lack it,
    // and this also shuts out the group.
    await chmod(socketPath, 0o600);
  } catch (err) {
    await app.close();
    throw err;
  }
  return {
    close: async () => {
      await app.close();
      await rm(socketPath, { force: true });
    },
  };
}

/** A socket file left by a process that died is replaced; a live listener or a regular file is not. */
async function clearStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!isSocket) throw new Error(`${socketPath} exists and is not a socket; remove it or choose another DATA_DIR`);
  if (await someoneListens(socketPath)) throw new Error(`another process is already listening on ${socketPath}`);
  await rm(socketPath, { force: true });
}

function someoneListens(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(socketPath);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
