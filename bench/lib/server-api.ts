/** Our server's HTTP API as the benches use it: a base URL and an app's access token. */
export interface HttpAccess {
  base: string;
  token: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The `info` of a successful answer (HTTP 200 and `result: true`); anything else throws. */
export async function apiJson(url: string, init?: RequestInit): Promise<Record<string, unknown>> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
  const body = (await res.json()) as { result?: boolean; info?: Record<string, unknown> };
  if (res.status !== 200 || body.result !== true)
    throw new Error(`${url}: HTTP ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
  return body.info ?? {};
}

/** An app token from `POST /api/v1/access_token` with the app's key and secret. */
export async function accessToken(base: string, app: unknown): Promise<string> {
  return String(
    (
      await apiJson(`${base}/api/v1/access_token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(app),
      })
    ).access_token,
  );
}

/** Polls devices_stat until the online count is `expected`, for at most `waitMs` (answers the last count seen). */
export async function waitOnline(http: HttpAccess, expected: number, waitMs: number): Promise<number> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const stat = await apiJson(`${http.base}/api/v1/devices_stat`, {
      headers: { authorization: `Bearer ${http.token}` },
    });
    const online = Number(stat.online_device_total);
    if (online === expected || performance.now() > deadline) return online;
    await sleep(250);
  }
}
