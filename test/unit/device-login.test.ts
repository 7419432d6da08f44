import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { deviceLogin } from '../../mqtt-broker/core/device-login.ts';
import { createTcpListener } from '../../mqtt-broker/tcp/listener.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';
import { NotFound } from '../../src/errors.ts';

const identity = { deviceId: 'd1', projectId: 'p1', disabled: false } as DeviceIdentity;

/** Services whose project is deleted between the credentials check and the rate look-up. */
function deletedDuringLogin() {
  return {
    deviceAuth: {
      mark: () => 0,
      authenticate: async () => identity,
      revokedSince: () => false,
    },
    projectSettings: {
      deviceRateLimit: async (): Promise<number> => {
        throw new NotFound('Project');
      },
    },
  };
}

/** A logger that keeps what was logged at warning level and above. */
function recordingLogger() {
  const serious: string[] = [];
  const log = {
    debug: () => {},
    info: () => {},
    warn: (_o: unknown, msg: string) => void serious.push(`warn ${msg}`),
    error: (_o: unknown, msg: string) => void serious.push(`error ${msg}`),
  };
  return { serious, logger: { child: () => log } as never };
}

describe('device login (core/device-login.ts)', () => {
  it('a project deleted during the login is a refused login, not a server error', async () => {
    await expect(deviceLogin(deletedDuringLogin() as never, 'key', 'token')).resolves.toEqual({
      ok: false,
      reason: 'bad login',
    });
  });

  it('over raw TCP, a project deleted during the login is refused like a wrong login: counted, closed, no error logged', async () => {
    const { serious, logger } = recordingLogger();
    const services = { ...deletedDuringLogin(), dataStreams: { tcpProfile: async () => ({}) } };
    const tcp = createTcpListener({ services: services as never, logger, authFailureDelayMs: 20 });
    const { port } = await tcp.listen(0, '127.0.0.1');
    try {
      const socket = net.connect(port, '127.0.0.1');
      socket.on('error', () => {});
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.write('key&token\n');
      await closed;
      expect(tcp.stats()).toMatchObject({ loginFailures: 1, logins: 0 });
      expect(serious).toEqual([]);
    } finally {
      await tcp.close();
    }
  });
});
