import { once } from 'node:events';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';

/**
 * A device speaking MQTT 3.1.1 packet by packet, for what mqtt.js does not let a test choose: the packet id and
 * the DUP flag of a publish, and a connection dropped with acknowledgements unread.
 */
export interface RawMqttDevice {
  /** Sends a QoS 1 publish; resolves with its PUBACK (rejects when the connection closes first). */
  publish(topic: string, payload: string, opts: { messageId: number; dup?: boolean }): Promise<void>;
  /** Sends a QoS 1 publish and does not wait for anything. */
  send(topic: string, payload: string, opts: { messageId: number; dup?: boolean }): void;
  /** Drops the connection at once (no DISCONNECT): what the device had not read is lost. */
  destroy(): void;
}

/** An MQTT 3.1.1 CONNECT of a device (clean session), as bytes. */
export function connectPacket(clientId: string, username: string, password: string, keepalive = 60): Buffer {
  return mqttPacket.generate({
    cmd: 'connect',
    protocolId: 'MQTT',
    protocolVersion: 4,
    clean: true,
    clientId,
    keepalive,
    username,
    password: Buffer.from(password),
  });
}

export async function rawMqttDevice(
  port: number,
  username: string,
  password: string,
  clientId = `raw-${Math.random().toString(36).slice(2)}`,
): Promise<RawMqttDevice> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await once(socket, 'connect');
  const parser = mqttPacket.parser({ protocolVersion: 4 });
  const acks = new Map<number, { resolve(): void; reject(err: Error): void }>();
  let connack: ((rc: number) => void) | undefined;
  parser.on('packet', (p: { cmd: string; messageId?: number; returnCode?: number }) => {
    if (p.cmd === 'connack') connack?.(p.returnCode ?? -1);
    if (p.cmd === 'puback' && p.messageId !== undefined) {
      acks.get(p.messageId)?.resolve();
      acks.delete(p.messageId);
    }
  });
  socket.on('data', (b) => parser.parse(b));
  socket.on('close', () => {
    for (const a of acks.values()) a.reject(new Error('connection closed before PUBACK'));
    acks.clear();
  });
  const accepted = new Promise<number>((r) => (connack = r));
  socket.write(connectPacket(clientId, username, password));
  const rc = await accepted;
  if (rc !== 0) {
    socket.destroy();
    throw new Error(`CONNACK return code ${rc}`);
  }
  const send = (topic: string, payload: string, { messageId, dup = false }: { messageId: number; dup?: boolean }) =>
    void socket.write(
      mqttPacket.generate({
        cmd: 'publish',
        topic,
        payload: Buffer.from(payload),
        qos: 1,
        messageId,
        dup,
        retain: false,
      }),
    );
  return {
    send,
    publish(topic, payload, opts) {
      if (socket.destroyed) return Promise.reject(new Error('connection closed'));
      const acked = new Promise<void>((resolve, reject) => acks.set(opts.messageId, { resolve, reject }));
      send(topic, payload, opts);
      return acked;
    },
    destroy: () => socket.destroy(),
  };
}
