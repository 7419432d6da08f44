import type { DeviceTypeRow, DeviceTypesRepository } from '../../db/repositories/device-types.repository.ts';
import { Duplicate } from '../../db/errors.ts';
import { Conflict } from '../../errors.ts';

/** What the parts of the device-types service (attribute models, streams, extend infos) share. */
export interface TypePartsContext {
  types: DeviceTypesRepository;
  clock: () => number;
  /**
   * Called after a type, its data streams or its attribute models changed: stream checks, attribute models
   * and device logins cache them (the composition makes it `device_type.changed`, heard on every node).
   */
  onTypeChanged: (projectId: string, typeId: string) => void;
  /** The type, or NotFound('Device type'). */
  mustGetType(projectId: string, id: string): Promise<DeviceTypeRow>;
}

/** A taken identifier (`what` as the repository names it) is a 409 on `identifier`; anything else goes on. */
export function duplicate(err: unknown, what: string, message: string): never {
  if (err instanceof Duplicate && err.what === what)
    throw new Conflict(message, [{ path: 'identifier', message: 'already exists' }]);
  throw err;
}
