import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';

/**
 * An mqtt.js client logged in as a device (user name its access token, password the project key), once connected;
 * no reconnects unless `opts` says so. `track` keeps it, for the file's afterAll to end.
 */
export async function connectDevice(
  url: string,
  login: { token: string; projectKey: string },
  opts: IClientOptions = {},
  track?: MqttClient[],
): Promise<MqttClient> {
  const c = await mqtt.connectAsync(url, {
    username: login.token,
    password: login.projectKey,
    reconnectPeriod: 0,
    ...opts,
  });
  track?.push(c);
  return c;
}

/** SUBACK codes per filter (≥ 0x80 = refused); mqtt.js fails the call when one is refused, so they are read from the packet. */
export function grantedQos(c: MqttClient, filters: string[]): Promise<number[]> {
  return new Promise((resolve) => {
    c.subscribe(filters, (err, granted) => {
      const codes = (err as (Error & { packet?: { granted?: number[] } }) | null)?.packet?.granted;
      resolve(codes ?? (granted ?? []).map((g) => g.qos));
    });
  });
}

/** Every message a client receives from now on, as `<topic> <payload>`. */
export function received(c: MqttClient): string[] {
  const seen: string[] = [];
  c.on('message', (topic, payload) => seen.push(`${topic} ${payload.toString()}`));
  return seen;
}

/** The next message on `topic` (its payload as text), or the next one `match` accepts. */
export function nextOn(c: MqttClient, topic: string, match?: (payload: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic || (match && !match(payload.toString()))) return;
      c.off('message', onMessage);
      resolve(payload.toString());
    };
    c.on('message', onMessage);
  });
}
