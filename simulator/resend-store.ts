import { Store, type IStore } from 'mqtt';

type StoredPacket = Parameters<IStore['put']>[0];
type PacketCallback = Parameters<IStore['del']>[1];

/**
 * mqtt.js's outgoing store, but a QoS 1 publish it sends again on a new connection carries the DUP flag, as section
 * 3.3.1.1 of MQTT 3.1.1 requires of a re-delivery (mqtt.js sends it again as it was first sent, DUP unset). The server
 * recognises a resend of a report it stored before its acknowledgement was lost only by that flag
 * (device-protocol.md §3.3), so with this store a device that fails over stores each report exactly once.
 *
 * mqtt.js reads the store (`createStream`) each time a connection is accepted, and only then: every publish it
 * holds at that moment is being sent again, or (published while no connection was up) for the first time, which
 * the server treats as a first attempt since no report with its receipt was stored.
 */
export class ResendStore extends Store {
  /** The packets held, by packet id (the base class keeps them private). */
  readonly #held = new Map<number, StoredPacket>();

  override put(packet: StoredPacket, cb: () => void): this {
    if (packet.messageId !== undefined) this.#held.set(packet.messageId, packet);
    return super.put(packet, cb);
  }

  override del(packet: Pick<StoredPacket, 'messageId'>, cb: PacketCallback): this {
    if (packet.messageId !== undefined) this.#held.delete(packet.messageId);
    return super.del(packet, cb);
  }

  override createStream(): ReturnType<Store['createStream']> {
    for (const packet of this.#held.values()) if (packet.cmd === 'publish') packet.dup = true;
    return super.createStream();
  }
}
