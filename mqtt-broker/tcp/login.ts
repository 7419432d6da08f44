import type { Logger } from 'pino';
import type { Admission, Ticket } from '../core/admission.ts';
import { deviceLogin } from '../core/device-login.ts';
import type { DeviceIdentity, DevicePort, TcpProfile, TransportMetrics } from '../core/port.ts';

const NEWLINE = 0x0a;

/** What the login handshake reads and sets of a link (listener.ts). */
export interface LoginLink {
  socket: { pause(): void };
  phase: 'login' | 'auth' | 'open' | 'closed';
  /** The login line's bytes so far, and their length. */
  login: Buffer[];
  loginLength: number;
  gapTimer?: NodeJS.Timeout;
  ticket?: Ticket;
}

export interface LoginDeps<L extends LoginLink> {
  services: Pick<DevicePort, 'deviceAuth' | 'dataStreams' | 'projectSettings'>;
  options: {
    maxLoginLength: number;
    frameGapMs: number;
    authFailureDelayMs: number;
    /** Messages per second for every device (tests); by default the project's device rate limit. */
    rateLimit?: number;
  };
  /** Login attempts per client address (admission.ts). */
  admission: Pick<Admission, 'tryLogin'>;
  log: Pick<Logger, 'debug' | 'error'>;
  /** Whether the listener is shutting down. */
  closing(): boolean;
  /** The link's one timer (login timeout, then idle timeout). */
  setTimer(link: L, ms: number, fn: () => void): void;
  end(link: L, reason: string): void;
  /** The device logged in: the link opens with what followed the login line. */
  open(link: L, identity: DeviceIdentity, profile: TcpProfile, rateLimit: number, rest: Buffer): void;
  /** Counts a refused login. */
  refused(): void;
  /** Counts every login by its result (docs/metrics.md, `iot_logins_total`). */
  metrics: Pick<TransportMetrics, 'login'>;
}

/**
 * The login handshake of a raw TCP link (device-protocol.md §6): the first line,
 * `<project key>&<access token>` in printable ASCII, ended by `\n` or by a pause of the frame gap.
 * Nothing is sent back: a refused login is closed after `authFailureDelayMs`, so guessing is slow.
 */
export function createLogin<L extends LoginLink>({
  services,
  options: o,
  admission,
  log,
  closing,
  setTimer,
  end,
  open,
  refused,
  metrics,
}: LoginDeps<L>) {
  function refuse(link: L, reason: string, result: 'bad_credentials' | 'rate_limited' | 'refused' = 'bad_credentials') {
    refused();
    metrics.login(result);
    log.debug({ reason }, 'TCP login refused');
    link.phase = 'auth';
    link.socket.pause();
    if (link.gapTimer) clearTimeout(link.gapTimer);
    link.gapTimer = undefined;
    setTimer(link, o.authFailureDelayMs, () => end(link, reason));
  }

  /** The login line: `<project key>&<access token>`, ASCII, a trailing \r\n tolerated. */
  function login(link: L, line: Buffer, rest: Buffer) {
    link.phase = 'auth';
    link.socket.pause();
    const text = line.toString('latin1').trim();
    const amp = text.indexOf('&');
    if (amp < 1 || !/^[\x21-\x7e]+$/.test(text)) return refuse(link, 'malformed login');
    // Counted per client address before any query (admission.ts).
    if (link.ticket && !admission.tryLogin(link.ticket.address))
      return refuse(link, 'too many login attempts', 'rate_limited');
    // The same login as over MQTT (core/device-login.ts); a refusal is closed after the delay, nothing is sent.
    deviceLogin(services, text.slice(0, amp), text.slice(amp + 1), o.rateLimit)
      .then(
        async (result) => {
          if (link.phase !== 'auth') return;
          if (!result.ok)
            return refuse(link, result.reason, result.reason === 'bad login' ? 'bad_credentials' : 'refused');
          const profile = await services.dataStreams.tcpProfile(result.identity);
          if (link.phase !== 'auth' || closing()) return end(link, 'closed during login');
          // Revoked (device disabled, deleted, its project deleted) while the login was checked.
          if (result.revoked()) {
            metrics.login('refused');
            return end(link, 'credentials revoked during login');
          }
          metrics.login('ok');
          open(link, result.identity, profile, result.rate, rest);
        },
        (err: unknown) => {
          log.error({ err }, 'TCP device authentication failed');
          metrics.login('refused');
          end(link, 'authentication unavailable');
        },
      )
      .catch((err: unknown) => {
        log.error({ err }, 'TCP login failed');
        end(link, 'login failed');
      });
  }

  function onLoginData(link: L, chunk: Buffer) {
    const nl = chunk.indexOf(NEWLINE);
    const part = nl < 0 ? chunk : chunk.subarray(0, nl);
    link.login.push(part);
    link.loginLength += part.length;
    if (link.loginLength > o.maxLoginLength) return refuse(link, 'login too long');
    if (nl >= 0) {
      if (link.gapTimer) clearTimeout(link.gapTimer);
      link.gapTimer = undefined;
      return login(link, Buffer.concat(link.login), Buffer.from(chunk.subarray(nl + 1)));
    }
    // Without a newline the login is what arrived before a pause of the frame gap.
    if (link.gapTimer) link.gapTimer.refresh();
    else {
      link.gapTimer = setTimeout(() => {
        link.gapTimer = undefined;
        if (link.phase === 'login') login(link, Buffer.concat(link.login), Buffer.alloc(0));
      }, o.frameGapMs);
      link.gapTimer.unref();
    }
  }

  return { onLoginData };
}
