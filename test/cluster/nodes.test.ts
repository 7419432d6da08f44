import { describe, expect, it } from 'vitest';
import { apiRaw, clusterProject, clusterSuite } from '../helpers/cluster.ts';

/**
 * Cluster mode's ground floor (docs/cluster.md §1, §6): nodes of one cluster start on one PostgreSQL and one
 * NATS, name themselves in /readyz, and any node answers any client: a token issued by one node works on
 * every other, and what one node creates the others read.
 */
const suite = await clusterSuite(2);
const { skip } = suite;

describe.skipIf(skip)('nodes of a cluster', () => {
  it('show their node id, cluster name and NATS state in /readyz', async () => {
    for (const node of suite.cluster.nodes) {
      const res = (await (await fetch(`${node.http}/readyz`)).json()) as { info: Record<string, string> };
      expect(res.info).toEqual({ status: 'ok', node: node.id, cluster: suite.cluster.name, nats: 'connected' });
    }
  });

  it('accept on every node a token issued by one, and share what each creates', async () => {
    const [a, b] = suite.cluster.nodes;
    const p = await clusterProject(a!.http);
    const made = await p.device('made-on-b', b!.http);
    const read = await apiRaw(a!.http, 'GET', `/api/v1/device/${made.id}`, p.token);
    expect(read).toMatchObject({ result: true, info: { id: made.id, name: 'made-on-b' } });
    // A token signed with another secret is refused by every node.
    const forged = p.token.slice(0, -4) + (p.token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    for (const node of suite.cluster.nodes)
      expect((await apiRaw(node.http, 'GET', `/api/v1/device/${made.id}`, forged)).status).toBe(401);
  });
});
