/** The project HTTP API from the browser: bearer token, envelope unwrapped (docs/http-api.md §1, §2). */
export type Role = 'admin' | 'customer';

export interface Session {
  token: string;
  role: Role;
  appId: string;
  account: string;
}

const SESSION_KEY = 'iot-console.session';

export function loadSession(): Session | undefined {
  try {
    const raw = localStorage.getItem(SESSION_KEY);
    if (!raw) return undefined;
    const s = JSON.parse(raw) as Partial<Session>;
    if (typeof s.token === 'string' && (s.role === 'admin' || s.role === 'customer')) {
      return { token: s.token, role: s.role, appId: s.appId ?? '', account: s.account ?? '' };
    }
  } catch {
    // unreadable: no session
  }
  return undefined;
}

export function saveSession(s: Session | undefined): void {
  if (s) localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  else localStorage.removeItem(SESSION_KEY);
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly errcode: number,
  ) {
    super(message);
  }
}

let onUnauthorized: () => void = () => {};
/** What to do when a call answers 401 (the token expired or was revoked): back to the login form. */
export function setUnauthorizedHandler(fn: () => void): void {
  onUnauthorized = fn;
}

export async function api<T>(token: string | undefined, method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(path, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  } catch (e) {
    throw new ApiError(`Network error: ${(e as Error).message}`, 0);
  }
  if (res.status === 401 && token) onUnauthorized();
  let json: { result?: boolean; info?: unknown; errcode?: number; message?: string };
  try {
    json = (await res.json()) as typeof json;
  } catch {
    throw new ApiError(`HTTP ${res.status}`, res.status);
  }
  if (json.result !== true) throw new ApiError(json.message ?? `HTTP ${res.status}`, json.errcode ?? res.status);
  return json.info as T;
}

export interface Page<T> {
  items: T[];
  total: number;
  page_total: number;
}

export interface Device {
  id: string;
  name: string;
  descr: string;
  device_key: string;
  device_code: string;
  tags: Record<string, string>;
  create_time: number;
  alarm: { level?: number; since?: number; rule?: string };
  active: Record<string, number>;
  online: boolean;
  type: string;
  type_info: { id: string; name: string; conn_type: string; conn_protocol: string };
  groups?: string[];
  gateway?: { id: string; address: string } | null;
  disabled?: boolean;
}

export interface AttributeModel {
  id?: string;
  identifier?: string;
  name: string;
  attr_type?: string;
  data_type: string;
  unit?: string;
  data_options: Record<string, unknown>;
}

export interface Attribute {
  identifier: string;
  value: unknown;
  attr_type: string;
  data_type: string;
  ts: number;
  model: AttributeModel;
}

export interface Command {
  id: string;
  command_id: number;
  method: string;
  params: unknown;
  state: string;
  reply: unknown;
  error: string | null;
  create_time: number;
  sent_time: number | null;
  reply_time: number | null;
}

export interface AlarmLog {
  id: string;
  device_id: string;
  alarm_status: number;
  alarm_level: number;
  alarm_info: Record<string, unknown>;
  create_time: number;
  device: { id: string; name: string };
  rule_id: string;
  active: boolean;
  end_time: number | null;
  ack: { by: string; note: string; time: number } | null;
  clear: { by: string; note: string; time: number } | null;
}

export interface DeviceType {
  id: string;
  name: string;
  descr: string;
  conn_type: string;
  conn_protocol: string;
  device_count: number;
}

export interface Group {
  id: string;
  name: string;
  descr: string;
  children: Group[];
}

export interface DataStream {
  id: string;
  identifier: string;
  name: string;
  format: string;
}

export interface DataMessage {
  id: string;
  direction: string;
  transport: string;
  ts: number;
  size: number;
  format: string;
  data: string;
  hex: string;
}
