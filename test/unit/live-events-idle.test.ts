import { describe, expect, it, vi } from 'vitest';
import { createEventBus, type DomainEvents } from '../../src/domain/events/event-bus.ts';
import { createLiveEvents, type LiveMessage } from '../../src/domain/events/live-events.ts';

/**
 * Live events of a project nobody listens to (src/domain/events/live-events.ts, http-api.md §4.14): each
 * event costs one look-up of its project, and nothing of the message is built — no field of the event is
 * read but its project, and no device is looked up.
 */
const now = Date.now();
const events: { [K in keyof DomainEvents]?: Omit<DomainEvents[K], 'projectId'> } = {
  'device.attributes': { deviceId: 'd1', attributes: { t: 1 }, attrType: 'report', ts: now },
  'device.event': { deviceId: 'd1', method: 'm', params: {}, ts: now },
  'device.command_reply': { deviceId: 'd1', commandId: 'c1', seq: 1, method: 'm', params: {}, ts: now },
  'device.online': { deviceId: 'd1', transport: 'mqtt', ts: now },
  'device.offline': { deviceId: 'd1', transport: 'mqtt', ts: now, reason: 'gone' },
  'device.data': {
    deviceId: 'd1',
    identifier: 'raw',
    direction: 'up',
    transport: 'mqtt',
    payload: Buffer.from('01', 'hex'),
    ts: now,
  },
  'device.alarm': { deviceId: 'd1', alarm: { id: 'a1', status: 1, level: 1, info: {}, ts: now } },
};

function setup() {
  const bus = createEventBus();
  const deviceInfo = vi.fn(async () => ({ name: 'dev', viewToken: 'view' }));
  const live = createLiveEvents({ bus, deviceInfo, boundDeviceIds: async () => [], logger: { warn: () => {} } });
  /** Emits every device event of the project; returns the fields of the events that were read. */
  const emitAll = (projectId: string) => {
    const read: string[] = [];
    for (const [name, rest] of Object.entries(events)) {
      const payload = new Proxy(
        { projectId, ...rest },
        {
          get(target, key, receiver) {
            if (typeof key === 'string') read.push(`${name}.${key}`);
            return Reflect.get(target, key, receiver) as unknown;
          },
        },
      );
      bus.emit(name as keyof DomainEvents, payload as never);
    }
    return read;
  };
  return { live, deviceInfo, emitAll };
}

describe('live events of a project nobody listens to', () => {
  it('read only the project of each event and build nothing', async () => {
    const { live, deviceInfo, emitAll } = setup();
    // Another project has a listener: the live events are in use, just not for this project.
    const off = live.subscribe('other-project', () => {});
    const read = emitAll('idle-project');
    expect(read).toEqual(Object.keys(events).map((name) => `${name}.projectId`));
    await new Promise((r) => setTimeout(r, 0));
    expect(deviceInfo).not.toHaveBeenCalled();
    off();
  });

  it('build each message once per project when somebody listens', async () => {
    const { live, deviceInfo, emitAll } = setup();
    const got: LiveMessage[][] = [[], []];
    const offs = got.map((list) => live.subscribe('busy-project', (m) => list.push(m)));
    emitAll('busy-project');
    await vi.waitFor(() => expect(got[0]).toHaveLength(Object.keys(events).length));
    // One device look-up (then cached), and the very same message object for both listeners.
    expect(deviceInfo).toHaveBeenCalledTimes(1);
    expect(got[1]).toEqual(got[0]);
    got[0]!.forEach((m, i) => expect(m).toBe(got[1]![i]));
    for (const off of offs) off();
  });
});
