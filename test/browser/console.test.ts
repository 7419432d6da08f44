import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page, Route } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProject, expectOk, type ProjectFixture } from '../helpers/app.ts';
import {
  browserSkipReason,
  launchChromium,
  README_DEVICE_SCREENSHOT,
  screenshotOnFailure,
  simulateDevice,
  startConsoleServer,
  type ConsoleServer,
  type SimulatedDevice,
} from '../helpers/browser.ts';

/**
 * The web console in a real headless Chromium: what a project's administrator and a customer do in it,
 * against the real server (HTTP API, live events, MQTT) and devices that report and answer commands.
 * Locators are roles and labels only: they are the console's accessibility check too.
 */
const skip = browserSkipReason();
if (skip) console.warn(`browser tests of the web console skipped: ${skip}`);
const WAIT = 15_000;

let server: ConsoleServer;
let browser: Browser;
let p: ProjectFixture;
let typeId: string;
let boiler: { id: string; name: string };
let attic: { id: string; name: string };
const customer = { name: 'Carol', account: 'carol', password: 'carol-secret-1' };
const sims: SimulatedDevice[] = [];
const contexts: BrowserContext[] = [];

/** Waits until the locator's text matches (the page updates by itself: no reload). */
async function textMatches(locator: Locator, re: RegExp, timeout = WAIT): Promise<void> {
  await expect
    .poll(
      async () =>
        (await locator.count()) === 1 ? ((await locator.textContent()) ?? '') : `<${await locator.count()} matches>`,
      { timeout, interval: 100 },
    )
    .toMatch(re);
}

/** A fresh page (its own storage) whose screenshot is saved if the test fails. */
async function newPage(name: string): Promise<Page> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, locale: 'en-US' });
  contexts.push(context);
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT);
  screenshotOnFailure(page, name);
  // Chromium reports what the Content-Security-Policy of /console/ blocked as console errors.
  page.on('console', (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(`${name}: ${m.text()}`);
  });
  return page;
}

/** What the console's Content-Security-Policy blocked in any page of this file (checked by the last test). */
const cspViolations: string[] = [];

async function logIn(
  page: Page,
  role: 'Administrator' | 'Customer',
  account: string,
  password: string,
  appId = p.project.app.app_id,
): Promise<void> {
  await page.goto(server.consoleUrl);
  await page.getByRole('radio', { name: role }).check();
  await page.getByLabel('App ID').fill(appId);
  await page.getByLabel('Account').fill(account);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByRole('button', { name: 'Log out' }).waitFor();
}
const logInAdmin = (page: Page) => logIn(page, 'Administrator', p.project.admin.account, p.project.admin.password);

/**
 * Holds the answers to the page's GETs matching `url` after the first `pass` of them: each reaches the server at
 * once, but its answer reaches the page only after `release()` (an answer overtaken by a live event). A held
 * answer's `info` goes through `mark` first, so the test can see on the page when it has been applied.
 */
async function holdAnswers(page: Page, url: RegExp, pass: number, mark: (info: unknown) => unknown) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let seen = 0;
  let held = 0;
  const answered: Promise<void>[] = [];
  const handler = async (route: Route) => {
    if (route.request().method() !== 'GET' || ++seen <= pass) return route.continue();
    const response = await route.fetch();
    const json = (await response.json()) as { info: unknown };
    held++;
    const answer = released.then(() => route.fulfill({ response, json: { ...json, info: mark(json.info) } }));
    answered.push(answer);
    await answer;
  };
  await page.route(url, handler);
  return {
    /** Answers fetched from the server and held. */
    held: () => held,
    /** Lets the held answers through (wait for their mark on the page), and holds no more. */
    async release() {
      release();
      await Promise.all(answered);
      await page.unroute(url, handler);
    },
  };
}

/** Marks the document: `sameDocument` is true later only if the page was never reloaded or left. */
const markDocument = (page: Page) =>
  page.evaluate(() => {
    Object.assign(globalThis, { __consoleTestMark: true });
  });
const sameDocument = (page: Page) =>
  page.evaluate(() => (globalThis as unknown as { __consoleTestMark?: boolean }).__consoleTestMark === true);

/** The boiler room's simulated device: connected by the first test, or here when a test runs alone (-t). */
async function boilerSim(): Promise<SimulatedDevice> {
  const known = sims.find((s) => s.id === boiler.id);
  if (known) return known;
  const sim = await simulateDevice(server, p, boiler);
  sims.push(sim);
  return sim;
}

const deviceRow = (page: Page, name: string) =>
  page.getByRole('row').filter({ has: page.getByRole('link', { name, exact: true }) });
const valueCell = (page: Page, attribute: string) =>
  page
    .getByRole('table', { name: 'Current values' })
    .getByRole('row')
    .filter({ has: page.getByRole('rowheader', { name: attribute, exact: true }) })
    .getByRole('cell')
    .first();

async function openDevice(page: Page, name: string): Promise<void> {
  await page.getByRole('link', { name: 'Devices', exact: true }).click();
  await deviceRow(page, name).getByRole('link', { name, exact: true }).click();
  await page.getByRole('heading', { level: 1, name }).waitFor();
}

describe.skipIf(skip !== undefined)(
  skip ? `web console in Chromium (skipped: ${skip})` : 'web console in Chromium',
  () => {
    beforeAll(async () => {
      [server, browser] = await Promise.all([startConsoleServer(), launchChromium()]);
      p = await createProject(server.ctx, 'Console project');
      typeId = expectOk(await p.api.post('/api/v1/device_type', { name: 'Thermometer' })).id;
      expectOk(
        await p.api.post(`/api/v1/device_type/${typeId}/attribute`, {
          identifier: 'temperature',
          name: 'Temperature',
          data_type: 'number',
          unit: '°C',
        }),
      );
      expectOk(
        await p.api.post(`/api/v1/device_type/${typeId}/attribute`, {
          identifier: 'humidity',
          name: 'Humidity',
          data_type: 'number',
          unit: '%',
        }),
      );
      expectOk(
        await p.api.post(`/api/v1/device_type/${typeId}/data_stream`, {
          identifier: 'frames',
          name: 'Frames',
          format: 'hex',
        }),
      );
      boiler = expectOk(await p.api.post('/api/v1/device', { name: 'Boiler room', type: typeId }));
      attic = expectOk(await p.api.post('/api/v1/device', { name: 'Attic', type: typeId }));
      const c = expectOk(await p.api.post('/api/v1/customer', customer));
      expectOk(await p.api.post(`/api/v1/customer/${c.id}/devices`, { devices: [attic.id] }));
      // The attic reports from the start; the boiler room connects while the console watches.
      const atticSim = await simulateDevice(server, p, attic);
      sims.push(atticSim);
      await atticSim.report({ temperature: 12.5, humidity: 60 });
    }, 60_000);

    afterAll(async () => {
      for (const c of contexts) await c.close().catch(() => {});
      await browser?.close();
      for (const s of sims) await s.close().catch(() => {});
      await server?.close();
    });

    it('an administrator logs in, sees a device come online and its values change live, without a reload', async () => {
      const page = await newPage('device-live');
      await logInAdmin(page);
      await page.getByRole('link', { name: 'Overview', exact: true }).click();
      await textMatches(page.getByRole('group', { name: 'Devices', exact: true }), /(?:^|\D)2\s*$/);
      await textMatches(page.getByRole('group', { name: 'Online', exact: true }), /(?:^|\D)1\s*$/);
      await markDocument(page);

      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await deviceRow(page, 'Boiler room').getByRole('img', { name: 'offline', exact: true }).waitFor();
      // The device connects once the page says it is live, so that the dot turns by the event (a change before the
      // stream opens comes as no event: the list's read as it opens shows that).
      await page.getByRole('status').filter({ hasText: /^● / }).waitFor();
      const sim = await simulateDevice(server, p, boiler);
      sims.push(sim);
      // The dot turns online by itself: the console follows the live events.
      await deviceRow(page, 'Boiler room').getByRole('img', { name: 'online', exact: true }).waitFor();

      await deviceRow(page, 'Boiler room').getByRole('link', { name: 'Boiler room', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Boiler room' }).waitFor();
      await sim.report({ temperature: 21.5, humidity: 40 });
      await textMatches(valueCell(page, 'Temperature'), /^\s*21\.5\s*°C\s*$/);
      await textMatches(valueCell(page, 'Humidity'), /^\s*40\s*%\s*$/);
      await sim.report({ temperature: 23.25 });
      await textMatches(valueCell(page, 'Temperature'), /^\s*23\.25\s*°C\s*$/);
      expect(await sameDocument(page)).toBe(true);

      await page.getByRole('link', { name: 'Overview', exact: true }).click();
      await textMatches(page.getByRole('group', { name: 'Online', exact: true }), /(?:^|\D)2\s*$/);
      expect(await sameDocument(page)).toBe(true);
    }, 60_000);

    it('keeps what a live event told when a read sent before it answers after it', async () => {
      const q = await createProject(server.ctx, 'Late answers');
      const cellar = expectOk(await q.api.post('/api/v1/device', { name: 'Cellar' }));
      expectOk(await q.api.post('/api/v1/device', { name: 'Garage' }));
      const page = await newPage('late-answers');
      await logIn(page, 'Administrator', q.project.admin.account, q.project.admin.password, q.project.app.app_id);

      // The list's read as its stream opens is answered only after the device has connected: its answer says
      // offline, the event said online, and the event is newer.
      const listReads = await holdAnswers(page, /\/api\/v1\/devices\?/, 1, (info) => {
        const list = info as { items: { name: string }[] };
        return { ...list, items: list.items.map((d) => (d.name === 'Garage' ? { ...d, name: 'Garage (held)' } : d)) };
      });
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await deviceRow(page, 'Cellar').getByRole('img', { name: 'offline', exact: true }).waitFor();
      await page.getByRole('status').filter({ hasText: /^● / }).waitFor();
      await expect.poll(listReads.held, { timeout: WAIT, interval: 50 }).toBeGreaterThanOrEqual(1);
      // Text typed into the search box meanwhile stays there while live events redraw the list.
      await page.getByLabel('Search', { exact: true }).fill('cell');
      const sim = await simulateDevice(server, q, cellar);
      sims.push(sim);
      await deviceRow(page, 'Cellar').getByRole('img', { name: 'online', exact: true }).waitFor();
      await listReads.release();
      await deviceRow(page, 'Garage (held)').waitFor();
      expect(await deviceRow(page, 'Cellar').getByRole('img', { name: 'online', exact: true }).count()).toBe(1);
      await page.getByLabel('Search', { exact: true }).press('Enter');
      const links = page.getByRole('table', { name: /^Devices/ }).getByRole('link');
      await expect.poll(async () => (await links.allTextContents()).join(','), { timeout: WAIT }).toBe('Cellar');

      // The same for a current value on the device's page: the held answer holds level 1.
      await sim.report({ level: 1 });
      const valueReads = await holdAnswers(page, /\/api\/v1\/device\/[^/?]+\/attributes$/, 1, (info) => {
        // A copy of the held level (1) under another name (the API names an attribute without a model by itself).
        const values = info as { identifier: string; model: { name: string } }[];
        return [...values, { ...values[0], identifier: 'held', model: { ...values[0]!.model, name: 'held' } }];
      });
      await deviceRow(page, 'Cellar').getByRole('link', { name: 'Cellar', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Cellar' }).waitFor();
      // (The first read may be dropped for the one sent as the stream opens: the page waits for the newer.)
      await page.getByRole('status').filter({ hasText: /^● / }).waitFor();
      await expect.poll(valueReads.held, { timeout: WAIT, interval: 50 }).toBeGreaterThanOrEqual(1);
      await sim.report({ level: 2 });
      await textMatches(valueCell(page, 'level'), /^\s*2\s*$/);
      await valueReads.release();
      await textMatches(valueCell(page, 'held'), /^\s*1\s*$/);
      expect(await valueCell(page, 'level').textContent()).toMatch(/^\s*2\s*$/);
    }, 60_000);

    it('charts an attribute’s history: the chart draws the reported points', async () => {
      const sim = await boilerSim();
      // The last hour, one reading a minute (back-dated), then a few live reports.
      const now = Date.now();
      await sim.reportSeries(
        Array.from({ length: 59 }, (_, i) => ({
          ts: now - (59 - i) * 60_000,
          attributes: { temperature: Math.round((21.5 + 1.2 * Math.sin(i / 8)) * 100) / 100 },
        })),
      );
      for (const t of [22.1, 22.4, 22.5]) await sim.report({ temperature: t });
      const series = expectOk(
        await p.api.get(
          `/api/v1/device/${sim.id}/attribute/temperature/series?page_records=1000&start_time=${Date.now() - 3_600_000}`,
        ),
      );
      expect(series.length).toBeGreaterThanOrEqual(59 + 3);

      const page = await newPage('device-chart');
      await logInAdmin(page);
      await openDevice(page, sim.name);
      await page.getByLabel('Range', { exact: true }).selectOption({ label: 'Last hour' });
      await page.getByLabel('Attribute', { exact: true }).selectOption({ label: 'Temperature' });
      const chart = page.getByRole('img', { name: /^Chart of Temperature$|^Chart of temperature$/ });
      await chart.waitFor();
      await expect
        .poll(async () => Number(await chart.getAttribute('data-points')), { timeout: WAIT, interval: 100 })
        .toBeGreaterThanOrEqual(series.length);
      await page.getByLabel('Range', { exact: true }).selectOption({ label: 'Last day' });
      await expect
        .poll(async () => Number(await chart.getAttribute('data-points')), { timeout: WAIT, interval: 100 })
        .toBeGreaterThan(0);

      if (process.env.UPDATE_SCREENSHOTS === '1') {
        await page.getByLabel('Range', { exact: true }).selectOption({ label: 'Last hour' });
        await expect
          .poll(async () => Number(await chart.getAttribute('data-points')), { timeout: WAIT, interval: 100 })
          .toBeGreaterThanOrEqual(series.length);
        await mkdir(path.dirname(README_DEVICE_SCREENSHOT), { recursive: true });
        // The page down to the chart: header, current values, history.
        await page.screenshot({
          path: README_DEVICE_SCREENSHOT,
          fullPage: true,
          clip: { x: 0, y: 0, width: 1280, height: 1000 },
        });
      }
    }, 60_000);

    it('sends a command the device answers and shows it replied, with the reply', async () => {
      const sim = await boilerSim();
      const page = await newPage('device-command');
      await logInAdmin(page);
      await openDevice(page, sim.name);
      await page.getByLabel('Method', { exact: true }).fill('reboot');
      await page.getByLabel('Params (JSON)', { exact: true }).fill('{"delay": 3}');
      await page.getByLabel('TTL (s)', { exact: true }).fill('60');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      const row = page.getByRole('row').filter({ hasText: 'reboot' });
      await textMatches(row, /replied/);
      await textMatches(row, /done/);
      expect(sim.commands).toEqual([expect.objectContaining({ method: 'reboot', params: { delay: 3 } })]);
      // A params field that is not JSON is refused in the page, and nothing is sent.
      await page.getByLabel('Method', { exact: true }).fill('broken');
      await page.getByLabel('Params (JSON)', { exact: true }).fill('{delay: 3');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await page.getByRole('alert').filter({ hasText: /JSON/i }).waitFor();
      expect(sim.commands).toHaveLength(1);
    }, 60_000);

    it('pushes attributes to the device, shows its hex data messages as hex, and its token only when asked', async () => {
      const sim = await boilerSim();
      const cert = expectOk(await p.api.get(`/api/v1/device/${sim.id}/certificate`));
      const page = await newPage('device-push-data-token');
      await logInAdmin(page);
      await openDevice(page, sim.name);
      await markDocument(page);

      await page.getByLabel('Attributes (JSON)', { exact: true }).fill('{"target": 30}');
      await page.getByRole('button', { name: 'Push', exact: true }).click();
      await expect.poll(() => sim.pushes, { timeout: WAIT, interval: 100 }).toEqual([{ target: 30 }]);

      // A frame from the device shows in the data-message table by itself, its bytes as hex.
      await sim.sendData('frames', Uint8Array.from([0x01, 0x03, 0x02, 0x00, 0xff]));
      const frames = page.getByRole('table', { name: 'Data messages' }).getByRole('row').filter({ hasText: 'up' });
      await textMatches(frames, /01 03 02 00 ff/);
      expect(await sameDocument(page)).toBe(true);

      const certificate = page.getByRole('region', { name: 'Certificate' });
      expect(await certificate.textContent()).not.toContain(cert.access_token);
      await certificate.getByRole('button', { name: 'Show token', exact: true }).click();
      await textMatches(certificate, new RegExp(cert.access_token));
      await certificate.getByRole('button', { name: 'Hide token', exact: true }).click();
      await expect
        .poll(async () => (await certificate.textContent()) ?? '', { timeout: WAIT })
        .not.toContain(cert.access_token);
    }, 60_000);

    it('shows an alarm as a rule triggers it, live, and acknowledges it with a note', async () => {
      const sim = await boilerSim();
      const page = await newPage('alarms');
      await logInAdmin(page);
      await page.getByRole('link', { name: 'Alarms', exact: true }).click();
      await page.getByRole('heading', { name: 'Active alarms' }).waitFor();
      await markDocument(page);

      const rule = expectOk(
        await p.api.post('/api/v1/alarm_rule', {
          name: 'Too hot',
          device_type_id: typeId,
          level: 3,
          condition: { kind: 'attribute', identifier: 'temperature', op: '>', value: 40 },
          message: '{{device.name}} is too hot: {{value}} °C',
        }),
      );
      await sim.report({ temperature: 45.5 });
      // The rule is evaluated after the report is stored: its alarm-log entry follows shortly.
      const triggered = async () =>
        (
          expectOk(await p.api.get(`/api/v1/device/${sim.id}/alarm_logs`)).items as Array<{
            id: string;
            rule_id: string;
            alarm_status: number;
          }>
        ).find((l) => l.rule_id === rule.id && l.alarm_status === 1);
      await expect.poll(triggered, { timeout: WAIT, interval: 100 }).toBeDefined();
      const alarm = (await triggered())!;

      // The alarm appears on the open page by itself.
      const active = page.getByRole('table', { name: 'Active alarms' });
      const row = active.getByRole('row').filter({ hasText: 'Boiler room is too hot: 45.5 °C' });
      await row.waitFor();
      expect(await sameDocument(page)).toBe(true);
      await row.getByRole('button', { name: 'Acknowledge', exact: true }).click();
      const dialog = page.getByRole('dialog');
      await dialog.getByLabel('Note', { exact: true }).fill('Technician on the way');
      await dialog.getByRole('button', { name: 'Confirm', exact: true }).click();
      await dialog.waitFor({ state: 'hidden' });
      await expect
        .poll(async () => expectOk(await p.api.get(`/api/v1/alarm_log/${alarm.id}`)).ack?.note, { timeout: WAIT })
        .toBe('Technician on the way');
      // Acknowledged, the alarm is still active (it ends when the temperature drops).
      await textMatches(row, /Technician on the way/);
      expect(await row.getByRole('button', { name: 'Acknowledge', exact: true }).count()).toBe(0);
    }, 60_000);

    it('a customer sees only its bound device, and no controls that change it', async () => {
      const page = await newPage('customer');
      await logIn(page, 'Customer', customer.account, customer.password);
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await deviceRow(page, 'Attic').waitFor();
      expect(await page.getByRole('link', { name: 'Boiler room', exact: true }).count()).toBe(0);
      expect(await page.getByRole('table').first().getByRole('link').count()).toBe(1);
      await deviceRow(page, 'Attic').getByRole('link', { name: 'Attic', exact: true }).click();
      await page.getByRole('heading', { level: 1, name: 'Attic' }).waitFor();
      await textMatches(valueCell(page, 'Temperature'), /^\s*12\.5\s*°C\s*$/);
      expect(await page.getByRole('button', { name: 'Send', exact: true }).count()).toBe(0);
      expect(await page.getByRole('button', { name: 'Push', exact: true }).count()).toBe(0);
      // The other device's page is not shown to it either, even by its address.
      await page.goto(`${server.consoleUrl}#/device/${boiler.id}`);
      await page.getByRole('heading', { level: 1, name: 'Not found' }).waitFor();
      await page.getByRole('alert').waitFor();
      expect(await page.getByRole('heading', { level: 1, name: 'Boiler room' }).count()).toBe(0);
    }, 60_000);

    it('keeps the session over a reload, ends it with Log out, and says why a login fails', async () => {
      const page = await newPage('session');
      await page.goto(server.consoleUrl);
      await page.getByRole('radio', { name: 'Administrator' }).check();
      await page.getByLabel('App ID').fill(p.project.app.app_id);
      await page.getByLabel('Account').fill(p.project.admin.account);
      await page.getByLabel('Password').fill('not-the-password');
      await page.getByRole('button', { name: 'Log in' }).click();
      await page.getByRole('alert').waitFor();
      expect(await page.getByRole('button', { name: 'Log out' }).count()).toBe(0);

      await logInAdmin(page);
      await page.reload();
      await page.getByRole('button', { name: 'Log out' }).waitFor();
      expect(await page.getByRole('button', { name: 'Log in' }).count()).toBe(0);
      await page.getByRole('button', { name: 'Log out' }).click();
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      await page.reload();
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      expect(await page.getByRole('button', { name: 'Log out' }).count()).toBe(0);
    }, 60_000);

    it('pages, searches and filters a longer device list on the server', async () => {
      const fleet = await createProject(server.ctx, 'Fleet');
      const ids: Record<string, string> = {};
      for (let i = 1; i <= 25; i++) {
        ids[`Meter ${i}`] = expectOk(
          await fleet.api.post('/api/v1/device', {
            name: `Meter ${i}`,
            device_key: `meter-${String(i).padStart(4, '0')}`,
          }),
        ).id;
      }
      const page = await newPage('device-list');
      await logIn(
        page,
        'Administrator',
        fleet.project.admin.account,
        fleet.project.admin.password,
        fleet.project.app.app_id,
      );
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      const links = page.getByRole('table', { name: /^Devices/ }).getByRole('link');
      const names = async () => (await links.allTextContents()).join(',');
      // Newest first, 20 a page.
      await expect
        .poll(names, { timeout: WAIT })
        .toBe(Array.from({ length: 20 }, (_, i) => `Meter ${25 - i}`).join(','));
      await page.getByRole('button', { name: 'Next', exact: true }).click();
      await expect.poll(names, { timeout: WAIT }).toBe('Meter 5,Meter 4,Meter 3,Meter 2,Meter 1');
      expect(await page.getByRole('button', { name: 'Next', exact: true }).isDisabled()).toBe(true);
      await page.getByRole('button', { name: 'Previous', exact: true }).click();
      await expect.poll(async () => links.count(), { timeout: WAIT }).toBe(20);

      await page.getByLabel('Search', { exact: true }).fill('meter-0007');
      await page.getByLabel('Search', { exact: true }).press('Enter');
      await expect.poll(names, { timeout: WAIT }).toBe('Meter 7');
      // The box sends search= (docs/http-api.md §3.4): a part of the name, in any case, finds it too.
      await page.getByLabel('Search', { exact: true }).fill('METER 2');
      await page.getByLabel('Search', { exact: true }).press('Enter');
      await expect.poll(names, { timeout: WAIT }).toBe('Meter 25,Meter 24,Meter 23,Meter 22,Meter 21,Meter 20,Meter 2');
      await page.getByLabel('Search', { exact: true }).fill('');
      await page.getByLabel('Search', { exact: true }).press('Enter');

      sims.push(await simulateDevice(server, fleet, { id: ids['Meter 3']!, name: 'Meter 3' }));
      await page.getByLabel('Online', { exact: true }).selectOption({ label: 'Online' });
      await expect.poll(names, { timeout: WAIT }).toBe('Meter 3');
      await page.getByLabel('Online', { exact: true }).selectOption({ label: 'Offline' });
      await expect.poll(async () => links.count(), { timeout: WAIT }).toBe(20);
      await page.getByRole('button', { name: 'Next', exact: true }).click();
      await expect.poll(names, { timeout: WAIT }).toBe('Meter 5,Meter 4,Meter 2,Meter 1');
    }, 60_000);

    it('returns to the login form when the token stops working (the customer’s password was changed)', async () => {
      const dave = expectOk(
        await p.api.post('/api/v1/customer', { name: 'Dave', account: 'dave', password: 'dave-secret-1' }),
      );
      expectOk(await p.api.post(`/api/v1/customer/${dave.id}/devices`, { devices: [attic.id] }));
      const page = await newPage('token-revoked');
      await logIn(page, 'Customer', 'dave', 'dave-secret-1');
      await page.getByRole('link', { name: 'Devices', exact: true }).click();
      await deviceRow(page, 'Attic').waitFor();
      expectOk(await p.api.put(`/api/v1/customer/${dave.id}/pwd`, { password: 'dave-secret-2' }));
      // Any call with the dead token ends the session. The device list's own refresh may get there before this
      // click (the link is then gone): either way the console must end at the login form.
      await page
        .getByRole('link', { name: 'Overview', exact: true })
        .click({ timeout: 5_000 })
        .catch(() => {});
      await page.getByRole('button', { name: 'Log in' }).waitFor();
      expect(await page.getByRole('button', { name: 'Log out' }).count()).toBe(0);
      // And it stays logged out over a reload: the dead token is forgotten.
      await page.reload();
      await page.getByRole('button', { name: 'Log in' }).waitFor();
    }, 60_000);

    it('switches to Simplified Chinese and keeps the choice over a reload', async () => {
      const page = await newPage('language');
      await logInAdmin(page);
      await page.getByLabel('Language').selectOption({ label: '简体中文' });
      await page.getByRole('link', { name: '设备', exact: true }).waitFor();
      expect(await page.getByRole('link', { name: 'Devices', exact: true }).count()).toBe(0);
      await page.reload();
      await page.getByRole('button', { name: '退出登录', exact: true }).waitFor();
      await page.getByLabel('语言').selectOption({ label: 'English' });
      await page.getByRole('link', { name: 'Devices', exact: true }).waitFor();
    }, 60_000);
    it('lists device types with their attribute models and streams, and the group tree whose groups open their devices', async () => {
      const building = expectOk(await p.api.post('/api/v1/device_group', { name: 'Building A' })).id;
      const floor = expectOk(await p.api.post('/api/v1/device_group', { name: 'Floor 1', parent_id: building })).id;
      expectOk(await p.api.put(`/api/v1/device/${boiler.id}/groups`, { groups: [floor] }));
      const page = await newPage('types-groups');
      await logInAdmin(page);

      await page.getByRole('link', { name: 'Types', exact: true }).click();
      const toggle = page.getByRole('button', { name: 'Thermometer', exact: true });
      expect(await toggle.getAttribute('aria-expanded')).toBe('false');
      await toggle.click();
      expect(await toggle.getAttribute('aria-expanded')).toBe('true');
      const models = page.getByRole('table', { name: 'Attribute models' });
      await textMatches(models.getByRole('row').filter({ hasText: 'temperature' }), /Temperature.*number.*°C/);
      await textMatches(models.getByRole('row').filter({ hasText: 'humidity' }), /Humidity.*number.*%/);
      await textMatches(
        page.getByRole('table', { name: 'Data streams' }).getByRole('row').filter({ hasText: 'frames' }),
        /hex/,
      );

      await page.getByRole('link', { name: 'Groups', exact: true }).click();
      const tree = page.getByRole('tree');
      const top = tree.getByRole('treeitem', { name: 'Building A', exact: true });
      await top.getByRole('treeitem', { name: 'Floor 1', exact: true }).waitFor();
      expect(await top.getAttribute('aria-level')).toBe('1');
      await top
        .getByRole('treeitem', { name: 'Floor 1', exact: true })
        .getByRole('link', { name: 'Floor 1', exact: true })
        .click();
      // The group's link opens the device list filtered by it, on the server.
      const links = page.getByRole('table', { name: /^Devices/ }).getByRole('link');
      await expect.poll(async () => (await links.allTextContents()).join(','), { timeout: WAIT }).toBe('Boiler room');
      await textMatches(page.getByLabel('Group', { exact: true }).locator('option:checked'), /Floor 1/);
    }, 60_000);

    it('shows the first screen, ready to use, within a second of a cold load', async () => {
      // Each load in a fresh context (empty cache); the page notes, by its own clock, when an enabled
      // "Log in" button first exists. The best of three: the machine is shared with the rest of the suite.
      const times: number[] = [];
      for (let i = 0; i < 3; i++) {
        const page = await newPage(`first-screen-${i}`);
        await page.addInitScript({
          content: `new MutationObserver(() => {
          if (globalThis.__ready === undefined && [...document.querySelectorAll('button')].some((b) => b.textContent.trim() === 'Log in' && !b.disabled)) globalThis.__ready = performance.now();
        }).observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['disabled'] });`,
        });
        await page.goto(server.consoleUrl);
        // Rendered disabled and enabled later counts at the moment it is enabled (the attribute change).
        await page.waitForFunction(() => (globalThis as unknown as { __ready?: number }).__ready !== undefined, null, {
          timeout: WAIT,
        });
        times.push(await page.evaluate(() => (globalThis as unknown as { __ready?: number }).__ready ?? Infinity));
        await page.context().close();
      }
      console.info(`console first screen ready after ${times.map((t) => Math.round(t)).join(', ')} ms`);
      expect(Math.min(...times)).toBeLessThan(1000);
    }, 60_000);

    it('works from the keyboard: logging in, and a modal note dialog that keeps the focus and closes with Escape', async () => {
      const cellar = expectOk(await p.api.post('/api/v1/device', { name: 'Cellar', type: typeId }));
      const rule = expectOk(
        await p.api.post('/api/v1/alarm_rule', {
          name: 'Damp',
          device_type_id: typeId,
          device_ids: [cellar.id],
          level: 2,
          condition: { kind: 'attribute', identifier: 'humidity', op: '>', value: 90 },
          message: '{{device.name}} is damp',
        }),
      );
      const sim = await simulateDevice(server, p, cellar);
      sims.push(sim);
      await sim.report({ humidity: 95 });

      const page = await newPage('keyboard');
      const focused = (locator: Locator) =>
        locator.evaluate((el) => el === (el.ownerDocument as { activeElement: unknown }).activeElement);
      await page.goto(server.consoleUrl);
      await page.getByRole('radio', { name: 'Administrator' }).check();
      await page.getByLabel('App ID').focus();
      await page.keyboard.type(p.project.app.app_id);
      await page.keyboard.press('Tab');
      expect(await focused(page.getByLabel('Account'))).toBe(true);
      await page.keyboard.type(p.project.admin.account);
      await page.keyboard.press('Tab');
      expect(await focused(page.getByLabel('Password'))).toBe(true);
      await page.keyboard.type(p.project.admin.password);
      await page.keyboard.press('Enter');
      await page.getByRole('button', { name: 'Log out' }).waitFor();

      await page.getByRole('link', { name: 'Alarms', exact: true }).focus();
      await page.keyboard.press('Enter');
      const row = page
        .getByRole('table', { name: 'Active alarms' })
        .getByRole('row')
        .filter({ hasText: 'Cellar is damp' });
      await row.getByRole('button', { name: 'Clear', exact: true }).focus();
      await page.keyboard.press('Enter');
      const dialog = page.getByRole('dialog', { name: 'Clear alarm' });
      await dialog.waitFor();
      // The note takes the focus; Tab stays inside the dialog (Note → Confirm → Cancel → Note).
      await expect.poll(() => focused(dialog.getByLabel('Note', { exact: true })), { timeout: WAIT }).toBe(true);
      await page.keyboard.press('Tab');
      expect(await focused(dialog.getByRole('button', { name: 'Confirm', exact: true }))).toBe(true);
      await page.keyboard.press('Tab');
      expect(await focused(dialog.getByRole('button', { name: 'Cancel', exact: true }))).toBe(true);
      await page.keyboard.press('Tab');
      expect(await focused(dialog.getByLabel('Note', { exact: true }))).toBe(true);
      await page.keyboard.press('Escape');
      await dialog.waitFor({ state: 'hidden' });
      // Escape cancelled: the alarm is still active and not cleared.
      const logs = expectOk(await p.api.get(`/api/v1/device/${cellar.id}/alarm_logs`)).items as Array<{
        rule_id: string;
        alarm_status: number;
        active: boolean;
        clear: unknown;
      }>;
      expect(logs.filter((l) => l.rule_id === rule.id && l.alarm_status === 1)).toEqual([
        expect.objectContaining({ active: true, clear: null }),
      ]);
    }, 60_000);

    it('ran every page above under the Content-Security-Policy of /console/ without anything blocked', async () => {
      const res = await fetch(server.consoleUrl);
      expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
      expect(cspViolations).toEqual([]);
    });
  },
);
