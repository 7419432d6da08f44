/**
 * Wire rules of custom data streams shared by the device edge, the domain and the simulator
 * (device-protocol.md §3 `data/<identifier>`, §6): a leaf, it imports nothing of the server.
 */

/** A stream identifier: 1–64 letters, digits, `_` and `-` (safe in a topic level and a URL segment). */
export const STREAM_IDENTIFIER = /^[A-Za-z0-9_-]{1,64}$/;
