import { z } from 'zod';
import type { DeviceEventsRepository } from '../../db/repositories/device-events.repository.ts';
import { BadRequest } from '../../errors.ts';
import { newId } from '../../lib/ids.ts';
import { unstorableJson } from '../../lib/unstorable-text.ts';
import type { EventBus } from '../events/event-bus.ts';
import type { DeviceIdentity } from './device-identity.ts';
import type { PresenceService } from './presence.service.ts';

export const MAX_EVENT_PARAMS_BYTES = 16 * 1024;

/** `{"method":"<event>","params":{…}}` of `event/report/<id>` (device-protocol.md §3). */
export const EventReport = z.object({
  method: z.string().min(1).max(64),
  params: z.record(z.string(), z.unknown()).default({}),
});
export type EventReportInput = z.input<typeof EventReport>;

export interface DeviceEventsDeps {
  repo: DeviceEventsRepository;
  presence: Pick<PresenceService, 'touch'>;
  bus: Pick<EventBus, 'emit'>;
  clock?: () => number;
}

/** Events reported by devices: logged and published, never written into attributes. */
export function createDeviceEventsService({ repo, presence, bus, clock = Date.now }: DeviceEventsDeps) {
  return {
    async report(identity: DeviceIdentity, input: unknown, ts = clock()): Promise<{ id: string; ts: number }> {
      const parsed = EventReport.safeParse(input);
      if (!parsed.success) {
        const errors = parsed.error.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
        throw new BadRequest(`Invalid event: ${errors[0]?.path || 'body'}: ${errors[0]?.message ?? 'invalid'}`, errors);
      }
      const { method, params } = parsed.data;
      const problem = unstorableJson({ method, params });
      if (problem) throw new BadRequest(problem, [{ path: 'params', message: problem }]);
      if (Buffer.byteLength(JSON.stringify(params)) > MAX_EVENT_PARAMS_BYTES) {
        throw new BadRequest(`Event params are larger than ${MAX_EVENT_PARAMS_BYTES} bytes`, [
          { path: 'params', message: 'too large' },
        ]);
      }
      const id = newId(clock());
      await repo.insert({ id, projectId: identity.projectId, deviceId: identity.deviceId, method, params, ts });
      presence.touch(identity.deviceId, 'event', ts);
      bus.emit('device.event', { projectId: identity.projectId, deviceId: identity.deviceId, method, params, ts });
      return { id, ts };
    },
  };
}
export type DeviceEventsService = ReturnType<typeof createDeviceEventsService>;
