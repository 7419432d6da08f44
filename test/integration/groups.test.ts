import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  client,
  createProject,
  createTestApp,
  expectFailure,
  expectOk,
  type Client,
  type ProjectFixture,
  type TestContext,
} from '../helpers/app.ts';
import { addDevice } from '../helpers/factories.ts';

let ctx: TestContext;
let p: ProjectFixture;

beforeAll(async () => {
  ctx = await createTestApp();
  p = await createProject(ctx);
});
afterAll(() => ctx?.close());

async function group(api: Client, body: Record<string, unknown>): Promise<string> {
  return expectOk(await api.post('/api/v1/device_group', body)).id as string;
}
async function device(api: Client, name: string, groups: string[] = []): Promise<string> {
  const { id } = await addDevice(api, { name });
  if (groups.length) expectOk(await api.put(`/api/v1/device/${id}/groups`, { groups }));
  return id;
}
const ids = (list: { items: { id: string }[] }) => list.items.map((d) => d.id).sort();

async function customerClient(fx: ProjectFixture) {
  const account = `viewer-${Math.random().toString(36).slice(2, 10)}`;
  expectOk(await fx.api.post('/api/v1/customer', { name: 'viewer', account, password: 'viewer-pass-1' }));
  const login = expectOk(
    await fx.api.post('/api/v1/customer_login', { app_id: fx.project.app.app_id, account, password: 'viewer-pass-1' }),
  );
  return client(ctx.app, login.access_token as string);
}

describe('device groups', () => {
  it('creates a group and reads it back with the documented fields', async () => {
    const created = expectOk(
      await p.api.post('/api/v1/device_group', { name: ' Floor 1 ', descr: 'first floor', tags: { site: 'hq' } }),
    );
    expect(created).toEqual({ id: expect.any(String), name: 'Floor 1' });
    const g = expectOk(await p.api.get(`/api/v1/device_group/${created.id}`));
    expect(g).toEqual({
      id: created.id,
      name: 'Floor 1',
      descr: 'first floor',
      tags: { site: 'hq' },
      parent_id: null,
      create_time: expect.any(Number),
      device_count: 0,
    });
  });

  it('creates a child group under a parent and reports the parent and its direct devices', async () => {
    const parent = await group(p.api, { name: 'building' });
    const child = await group(p.api, { name: 'room', parent_id: parent });
    await device(p.api, 'sensor a', [child]);
    await device(p.api, 'sensor b', [child, parent]);
    const c = expectOk(await p.api.get(`/api/v1/device_group/${child}`));
    expect(c).toMatchObject({ id: child, parent_id: parent, device_count: 2, descr: '', tags: {} });
    expect(expectOk(await p.api.get(`/api/v1/device_group/${parent}`)).device_count).toBe(1);
  });

  it('answers the tree nested to any depth with siblings in creation order', async () => {
    const fx = await createProject(ctx, 'tree project');
    const a = await group(fx.api, { name: 'A', tags: { k: 'v' } });
    const b = await group(fx.api, { name: 'B' });
    const a1 = await group(fx.api, { name: 'A1', parent_id: a });
    const a2 = await group(fx.api, { name: 'A2', parent_id: a });
    const a1x = await group(fx.api, { name: 'A1x', parent_id: a1 });
    const a1xy = await group(fx.api, { name: 'A1xy', parent_id: a1x });
    const tree = expectOk(await fx.api.get('/api/v1/device_groups_tree'));
    const node = (id: string, name: string, children: unknown[], tags = {}) => ({
      id,
      name,
      descr: '',
      tags,
      create_time: expect.any(Number),
      children,
    });
    expect(tree).toEqual({
      items: [
        node(a, 'A', [node(a1, 'A1', [node(a1x, 'A1x', [node(a1xy, 'A1xy', [])])]), node(a2, 'A2', [])], { k: 'v' }),
        node(b, 'B', []),
      ],
    });
  });

  it('answers an empty tree for a project without groups', async () => {
    const fx = await createProject(ctx, 'empty');
    expect(expectOk(await fx.api.get('/api/v1/device_groups_tree'))).toEqual({ items: [] });
  });

  it('lets a customer token read the tree but not change it', async () => {
    const fx = await createProject(ctx, 'customer groups');
    const g = await group(fx.api, { name: 'visible' });
    const customer = await customerClient(fx);
    expect(expectOk(await customer.get('/api/v1/device_groups_tree')).items.map((n: { id: string }) => n.id)).toEqual([
      g,
    ]);
    expectFailure(await customer.post('/api/v1/device_group', { name: 'nope' }), 403);
    expectFailure(await customer.put(`/api/v1/device_group/${g}`, { name: 'nope' }), 403);
    expectFailure(await customer.delete(`/api/v1/device_group/${g}`), 403);
  });

  it("counts only a customer's own devices in a group's device_count", async () => {
    const fx = await createProject(ctx, 'customer counts');
    const g = await group(fx.api, { name: 'hall' });
    for (const name of ['a', 'b']) {
      const d = expectOk(await fx.api.post('/api/v1/device', { name }));
      expectOk(await fx.api.put(`/api/v1/device/${d.id}/groups`, { groups: [g] }));
    }
    const customer = await customerClient(fx);
    expect(expectOk(await fx.api.get(`/api/v1/device_group/${g}`)).device_count).toBe(2);
    expect(expectOk(await customer.get(`/api/v1/device_group/${g}`)).device_count).toBe(0);
  });

  it('answers 404 for a parent that does not exist', async () => {
    const body = expectFailure(
      await p.api.post('/api/v1/device_group', { name: 'orphan', parent_id: 'no-such-group' }),
      404,
    );
    expect(body.message).toBe('Device group not found');
  });

  it('refuses a tree deeper than 16 levels', async () => {
    let parent = await group(p.api, { name: 'level 1' });
    for (let level = 2; level <= 16; level++)
      parent = await group(p.api, { name: `level ${level}`, parent_id: parent });
    const body = expectFailure(await p.api.post('/api/v1/device_group', { name: 'level 17', parent_id: parent }), 400);
    expect(body.message).toMatch(/16 levels/);
  });

  it('refuses a move that would make the tree deeper than 16 levels', async () => {
    let deep = await group(p.api, { name: 'd1' });
    for (let level = 2; level <= 15; level++) deep = await group(p.api, { name: `d${level}`, parent_id: deep });
    const top = await group(p.api, { name: 'two levels' });
    await group(p.api, { name: 'its child', parent_id: top });
    expectFailure(await p.api.put(`/api/v1/device_group/${top}`, { parent_id: deep }), 400);
    const leaf = await group(p.api, { name: 'a leaf' });
    expectOk(await p.api.put(`/api/v1/device_group/${leaf}`, { parent_id: deep }));
    expect(expectOk(await p.api.get(`/api/v1/device_group/${leaf}`)).parent_id).toBe(deep);
  });

  it('rejects invalid bodies with 400', async () => {
    expectFailure(await p.api.post('/api/v1/device_group', {}), 400);
    expectFailure(await p.api.post('/api/v1/device_group', { name: '   ' }), 400);
    expectFailure(await p.api.post('/api/v1/device_group', { name: 'x'.repeat(129) }), 400);
    expectFailure(await p.api.post('/api/v1/device_group', { name: 'x', tags: { k: 1 } }), 400);
    expectFailure(await p.api.post('/api/v1/device_group', { name: 'x', parent_id: 5 }), 400);
    const g = await group(p.api, { name: 'valid' });
    const body = expectFailure(await p.api.put(`/api/v1/device_group/${g}`, {}), 400);
    expect(body.message).toMatch(/at least one/);
  });

  it('updates name, descr and tags (tags replace the map)', async () => {
    const g = await group(p.api, { name: 'old', descr: 'd', tags: { a: '1', b: '2' } });
    expectOk(await p.api.put(`/api/v1/device_group/${g}`, { name: 'new', descr: '', tags: { c: '3' } }));
    expect(expectOk(await p.api.get(`/api/v1/device_group/${g}`))).toMatchObject({
      name: 'new',
      descr: '',
      tags: { c: '3' },
      parent_id: null,
    });
  });

  it('moves a group under another and back to the root with parent_id null', async () => {
    const a = await group(p.api, { name: 'mover' });
    const b = await group(p.api, { name: 'target' });
    const child = await group(p.api, { name: 'rides along', parent_id: a });
    expectOk(await p.api.put(`/api/v1/device_group/${a}`, { parent_id: b }));
    expect(expectOk(await p.api.get(`/api/v1/device_group/${a}`)).parent_id).toBe(b);
    expect(expectOk(await p.api.get(`/api/v1/device_group/${child}`)).parent_id).toBe(a);
    expectOk(await p.api.put(`/api/v1/device_group/${a}`, { parent_id: null }));
    expect(expectOk(await p.api.get(`/api/v1/device_group/${a}`)).parent_id).toBeNull();
  });

  it('refuses to move a group under itself or one of its descendants', async () => {
    const a = await group(p.api, { name: 'a' });
    const b = await group(p.api, { name: 'b', parent_id: a });
    const c = await group(p.api, { name: 'c', parent_id: b });
    for (const target of [a, b, c]) {
      const body = expectFailure(await p.api.put(`/api/v1/device_group/${a}`, { parent_id: target }), 400);
      expect(body.message).toBe('A device group cannot be moved under itself or one of its descendants');
    }
    expect(expectOk(await p.api.get(`/api/v1/device_group/${a}`)).parent_id).toBeNull();
  });

  it('answers 404 when moving under a parent that does not exist', async () => {
    const g = await group(p.api, { name: 'stays' });
    expectFailure(await p.api.put(`/api/v1/device_group/${g}`, { parent_id: 'missing' }), 404);
  });

  it('deletes an empty group', async () => {
    const g = await group(p.api, { name: 'temporary' });
    expect(expectOk(await p.api.delete(`/api/v1/device_group/${g}`))).toEqual({});
    expectFailure(await p.api.get(`/api/v1/device_group/${g}`), 404);
    expectFailure(await p.api.delete(`/api/v1/device_group/${g}`), 404);
  });

  it('answers 422 when deleting a group that still has devices or child groups', async () => {
    const parent = await group(p.api, { name: 'busy' });
    const child = await group(p.api, { name: 'child', parent_id: parent });
    const d1 = await device(p.api, 'one', [parent]);
    const d2 = await device(p.api, 'two', [parent]);
    expect(expectFailure(await p.api.delete(`/api/v1/device_group/${parent}`), 422).message).toBe(
      'Device group has 2 devices and 1 child group',
    );
    expectOk(await p.api.put(`/api/v1/device/${d1}/groups`, { groups: [] }));
    expectOk(await p.api.put(`/api/v1/device/${d2}/groups`, { groups: [] }));
    expect(expectFailure(await p.api.delete(`/api/v1/device_group/${parent}`), 422).message).toBe(
      'Device group has 1 child group',
    );
    await device(p.api, 'three', [child]);
    expect(expectFailure(await p.api.delete(`/api/v1/device_group/${child}`), 422).message).toBe(
      'Device group has 1 device',
    );
  });

  it("answers 404 for every call on another project's group", async () => {
    const other = await createProject(ctx, 'other');
    const theirs = await group(other.api, { name: 'theirs' });
    expectFailure(await p.api.get(`/api/v1/device_group/${theirs}`), 404);
    expectFailure(await p.api.put(`/api/v1/device_group/${theirs}`, { name: 'mine now' }), 404);
    expectFailure(await p.api.put(`/api/v1/device_group/${theirs}`, { parent_id: null }), 404);
    expectFailure(await p.api.delete(`/api/v1/device_group/${theirs}`), 404);
    expectFailure(await p.api.post('/api/v1/device_group', { name: 'under theirs', parent_id: theirs }), 404);
    const mine = await group(p.api, { name: 'mine' });
    expectFailure(await p.api.put(`/api/v1/device_group/${mine}`, { parent_id: theirs }), 404);
    expect(
      expectOk(await p.api.get('/api/v1/device_groups_tree')).items.map((n: { id: string }) => n.id),
    ).not.toContain(theirs);
    expect(expectOk(await other.api.get(`/api/v1/device_group/${theirs}`)).name).toBe('theirs');
  });

  it('describes the nested tree in the OpenAPI document without dangling references', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const json = res.json();
    const tree = JSON.stringify(json.paths['/api/v1/device_groups_tree']);
    expect(tree).toContain('#/components/schemas/DeviceGroupNode');
    const node = json.components.schemas.DeviceGroupNode;
    expect(node.properties.children.items.$ref).toBe('#/components/schemas/DeviceGroupNode');
  });
});

describe('device list filtered by groups', () => {
  it('filters by one group, by several groups and by a group with its sub-groups over three levels', async () => {
    const fx = await createProject(ctx, 'filters');
    const top = await group(fx.api, { name: 'top' });
    const mid = await group(fx.api, { name: 'mid', parent_id: top });
    const low = await group(fx.api, { name: 'low', parent_id: mid });
    const side = await group(fx.api, { name: 'side' });
    const inTop = await device(fx.api, 'in top', [top]);
    const inMid = await device(fx.api, 'in mid', [mid]);
    const inLow = await device(fx.api, 'in low', [low]);
    const inSide = await device(fx.api, 'in side', [side]);
    const inMidAndSide = await device(fx.api, 'in mid and side', [mid, side]);
    await device(fx.api, 'ungrouped');

    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?group=${mid}`)))).toEqual([inMid, inMidAndSide].sort());
    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?groups=${low},${side}`)))).toEqual(
      [inLow, inSide, inMidAndSide].sort(),
    );
    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?group=${top}&include_sub_groups=1`)))).toEqual(
      [inTop, inMid, inLow, inMidAndSide].sort(),
    );
    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?group=${mid}&include_sub_groups=1`)))).toEqual(
      [inMid, inLow, inMidAndSide].sort(),
    );
    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?group=${top}`)))).toEqual([inTop]);
    const all = expectOk(await fx.api.get(`/api/v1/devices?group=${top}&include_sub_groups=1&page_records=2`));
    expect(all.total).toBe(4);
    expect(all.page_total).toBe(2);
  });

  it('sees a moved sub-tree under its new parent', async () => {
    const fx = await createProject(ctx, 'moves');
    const first = await group(fx.api, { name: 'first' });
    const second = await group(fx.api, { name: 'second' });
    const branch = await group(fx.api, { name: 'branch', parent_id: first });
    const leaf = await group(fx.api, { name: 'leaf', parent_id: branch });
    const d = await device(fx.api, 'deep', [leaf]);
    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?group=${first}&include_sub_groups=1`)))).toEqual([d]);
    expectOk(await fx.api.put(`/api/v1/device_group/${branch}`, { parent_id: second }));
    expect(expectOk(await fx.api.get(`/api/v1/devices?group=${first}&include_sub_groups=1`)).items).toEqual([]);
    expect(ids(expectOk(await fx.api.get(`/api/v1/devices?group=${second}&include_sub_groups=1`)))).toEqual([d]);
  });

  it("answers 404 when filtering by another project's group", async () => {
    const other = await createProject(ctx, 'other filters');
    const theirs = await group(other.api, { name: 'theirs' });
    await device(other.api, 'their device', [theirs]);
    expectFailure(await p.api.get(`/api/v1/devices?group=${theirs}`), 404);
    expectFailure(await p.api.get(`/api/v1/devices?group=${theirs}&include_sub_groups=1`), 404);
  });
});
