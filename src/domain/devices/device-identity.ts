/**
 * A device as its own credential (access token + project key) identifies it, for every transport:
 * MQTT CONNECT, TCP login, HTTP device access (device-protocol.md §1–6).
 */
export interface DeviceIdentity {
  deviceId: string;
  projectId: string;
  name: string;
  typeId: string | null;
  /** "1" direct, "2" gateway sub-device, "3" gateway. */
  connType: string;
  disabled: boolean;
}
