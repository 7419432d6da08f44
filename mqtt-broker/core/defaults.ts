/**
 * The device transports' defaults: what the MQTT broker and the raw TCP listener do when no option is
 * given (tests, benches), and the defaults of the server's settings (src/config.ts reads them), so each
 * number is written once. A leaf: it imports nothing.
 */

export const MQTT_DEFAULTS = {
  /** Largest MQTT packet a device may send, in bytes (device-protocol.md §3 "a payload over the size limit"). */
  maxPacketSize: 256 * 1024,
  /** Filters one device connection may hold (its topic set is small); more are refused (SUBACK failure). */
  maxSubscriptions: 100,
  /** Filters one application subscriber may hold (a device each, at most; `+` covers them all). */
  maxViewerSubscriptions: 1_000,
  /** Application subscribers of one project connected at once (each receives all it subscribes to). */
  maxViewersPerProject: 100,
  /**
   * How long a message whose store failed because the database is unavailable is tried again before
   * the device is told it failed (MQTT 5: PUBACK 0x80; 3.1.1: the connection closes without PUBACK).
   */
  retryUnavailableMs: 60_000,
  /** Delay of a refused CONNECT, so guessing credentials is slow (device-protocol.md §2). */
  authFailureDelayMs: 500,
  /** CONNECT and login within this time of the connection, or it is closed (admission.ts). */
  connectTimeoutMs: 10_000,
  /** A connection whose unsent output has not drained for this long is closed (device-protocol.md §2). */
  drainTimeoutMs: 30_000,
} as const;

/**
 * Commands held for a connection (a device's, or a gateway's for its sub-devices) that has not subscribed
 * to its command topic yet (core/device-session.ts HeldCommands); more are refused.
 */
export const MAX_HELD_COMMANDS = 100;

export const TCP_DEFAULTS = {
  /**
   * The login must arrive within this time of the connection (device-protocol.md §6). DTUs send their
   * registration line as soon as the link is up; a connection waiting longer holds a pending slot of
   * its address (admission.ts) for nothing.
   */
  loginTimeoutMs: 10_000,
  /** A logged-in link with no byte from the device for this long is closed (heartbeats count). */
  idleTimeoutMs: 300_000,
  /** Bytes within this many ms of each other form one message, unless the device type sets its own gap. */
  frameGapMs: 100,
  /** Largest message, in bytes. */
  maxMessageSize: 64 * 1024,
  /** Longest login line; more bytes without a login close the connection. */
  maxLoginLength: 512,
  /** Delay before a refused login is closed, so guessing credentials is slow. */
  authFailureDelayMs: 500,
  /** An incomplete JSON value with no byte for this long is dropped. */
  jsonStallMs: 10_000,
  /** TCP keep-alive probes start after this much silence (half-open links). */
  keepAliveMs: 60_000,
  /** Messages of one link being stored at once; beyond it the link is not read until they are. */
  maxInFlight: 64,
  /** Bytes waiting to be written to a device that does not read; beyond it a push fails. */
  maxWriteBuffer: 256 * 1024,
} as const;
