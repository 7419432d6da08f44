import type { MqttClient } from 'mqtt';

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

/** The next message on `topic` (its payload as text). */
export function nextOn(c: MqttClient, topic: string): Promise<string> {
  return new Promise((resolve) => {
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      c.off('message', onMessage);
      resolve(payload.toString());
    };
    c.on('message', onMessage);
  });
}
