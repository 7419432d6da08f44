import { describe, expect, it } from 'vitest';
import { createGatewayHub } from '../../mqtt-broker/mqtt/gateway.ts';
import { handleUpstream } from '../../mqtt-broker/mqtt/handlers/index.ts';
import type { DeviceIdentity } from '../../src/domain/devices/device-identity.ts';

const gateway = { deviceId: 'gw', projectId: 'p1', connType: '3' } as DeviceIdentity;
const sub = { deviceId: 'sub', projectId: 'p1', connType: '2' } as DeviceIdentity;
const noop = () => {};

/** Services where no command is open and every device reports `{"t":1}`. */
function services() {
  const asked: string[] = [];
  return {
    asked,
    services: {
      commands: { reply: async (d: DeviceIdentity, id: number) => (asked.push(`reply ${d.deviceId} ${id}`), false) },
      currentValues: { get: async (_p: string, deviceId: string) => (asked.push(`get ${deviceId}`), { t: 1 }) },
      gateways: { subDevice: async (_g: DeviceIdentity, address: string) => (address === 'a1' ? sub : undefined) },
      bus: { on: () => noop },
    },
  };
}

describe('answers of upstream messages (mqtt/handlers, mqtt/gateway.ts)', () => {
  it('a reply to no open command is a 404 for a device and for a gateway sub-device (which names its device and id)', async () => {
    const { services: s, asked } = services();
    const body = (o: object) => Buffer.from(JSON.stringify(o));
    const direct = await handleUpstream(
      { services: s as never, clock: Date.now, identity: gateway },
      { kind: 'command_reply', id: '7' } as never,
      body({ method: 'm', params: {}, id: 7 }),
    );
    expect(direct).toEqual({ result: 0, errcode: 404, message: 'no open command with this id' });

    const hub = createGatewayHub({ services: s as never, log: { info: noop, warn: noop, debug: noop, error: noop } });
    const link = hub.open(gateway, { send: async () => {} } as never);
    const viaGateway = await link.handle(
      'command_reply',
      body({ device: 'a1', command: { id: '8', method: 'm', params: {} } }),
    );
    expect(JSON.stringify(viaGateway)).toBe(
      '{"result":0,"errcode":404,"message":"no open command with this id","device":"a1","id":"8"}',
    );
    const read = await link.handle('attributes_get', body({ device: 'a1' }));
    expect(JSON.stringify(read)).toBe('{"result":1,"device":"a1","attributes":{"t":1}}');
    expect(asked).toEqual(['reply gw 7', 'reply sub 8', 'get sub']);
    hub.close();
  });
});
