import { describe, expect, it } from 'vitest';
import { checkModels, parseAttributes, type ModelLookup } from '../../src/domain/telemetry/current-values.service.ts';
import { BadRequest } from '../../src/errors.ts';

const models = new Map([['temperature', { dataType: 'number' }]]);
const identity = { projectId: 'p', typeId: 't' };

describe('checkModels', () => {
  it('checks synchronously against cached models: nothing to wait for, a wrong type throws at once', () => {
    let loads = 0;
    const lookup: ModelLookup = Object.assign(
      async () => {
        loads++;
        return models;
      },
      { cached: () => models },
    );
    expect(checkModels(lookup, identity, parseAttributes({ temperature: 21.5, other: 'x' }))).toBeUndefined();
    expect(() => checkModels(lookup, identity, parseAttributes({ temperature: 'hot' }), 'sub1.')).toThrow(BadRequest);
    try {
      checkModels(lookup, identity, parseAttributes({ temperature: 'hot' }), 'sub1.');
    } catch (err) {
      expect((err as BadRequest).errors).toEqual([
        { path: 'sub1.temperature', message: 'expected number (attribute model), got string' },
      ]);
    }
    expect(loads).toBe(0);
  });

  it('waits for models not cached yet, and refuses a wrong type once they are loaded', async () => {
    const lookup: ModelLookup = Object.assign(async () => models, { cached: () => undefined });
    const ok = checkModels(lookup, identity, parseAttributes({ temperature: 1 }));
    expect(ok).toBeInstanceOf(Promise);
    await expect(ok).resolves.toBeUndefined();
    await expect(checkModels(lookup, identity, parseAttributes({ temperature: true }))).rejects.toThrow(BadRequest);
  });

  it('has nothing to check for an untyped device or without models', () => {
    const lookup: ModelLookup = async () => models;
    expect(
      checkModels(lookup, { projectId: 'p', typeId: null }, parseAttributes({ temperature: 'x' })),
    ).toBeUndefined();
    expect(checkModels(undefined, identity, parseAttributes({ temperature: 'x' }))).toBeUndefined();
  });
});
