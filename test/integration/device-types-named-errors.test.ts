import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Duplicate } from '../../src/db/errors.ts';
import { createDeviceTypesRepository } from '../../src/db/repositories/device-types.repository.ts';
import { createProject, createTestApp, type ProjectFixture, type TestContext } from '../helpers/app.ts';
import { addDeviceType } from '../helpers/factories.ts';

/**
 * The name the device-types service matches when it draws a new type key (device-types.service.ts):
 * a taken type key is Duplicate('type_key'). Only a one-in-2^144 draw reaches it through the API, so
 * it is driven here through the repository itself.
 */
let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx, 'named errors project');
});
afterAll(() => ctx?.close());

describe('device-types repository named errors', () => {
  it("raises Duplicate('type_key') for a type key another type holds", async () => {
    const repo = createDeviceTypesRepository(ctx.database.db);
    const a = await addDeviceType(p.api, { name: 'a' });
    const b = await addDeviceType(p.api, { name: 'b' });
    const err = await repo.update(p.project.id, b.id, { typeKey: a.type_key }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Duplicate);
    expect((err as Duplicate).what).toBe('type_key');
  });
});
