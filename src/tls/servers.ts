import https from 'node:https';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import type { TlsReloader } from './reloader.ts';

/**
 * The TLS listeners (docs/tls.md §2). None has protections of its own: each hands its connections to
 * the code that serves its plaintext twin.
 *
 * - HTTPS is an `https.Server` running the same Fastify application (`app.routing`); main.ts gives it
 *   the same per-address limit and header timeout (src/http/connections.ts, which counts sockets from
 *   `connection`, i.e. before the handshake) and the same MQTT-over-WebSocket upgrade
 *   (mqtt-broker/mqtt/websocket.ts). A new certificate reaches it through `setSecureContext`.
 * - MQTT over TLS and raw TCP over TLS accept plain TCP sockets and wrap each one in a server-side
 *   TLSSocket at once (`secureSocket`), before the handshake, and pass it to the broker's or the TCP
 *   listener's `handleConnection`: so the shared admission (mqtt-broker/core/admission.ts) counts the
 *   connection from its first moment, and the CONNECT/login timeout covers the handshake too; a
 *   client that connects and never completes a handshake is bounded exactly like one that never logs
 *   in. Each socket gets the context in use when it was accepted.
 */

/** Wraps an accepted TCP socket as the server side of a TLS connection with the current certificate. */
export function secureSocket(reloader: TlsReloader): (socket: Socket) => TLSSocket {
  return (socket) => new TLSSocket(socket, { isServer: true, secureContext: reloader.current().context });
}

export interface HttpsServer {
  server: https.Server;
  /** Stops accepting, closes idle keep-alive connections as they become idle, resolves once all are gone. */
  close(): Promise<void>;
}

/**
 * HTTPS for the whole application (the API, /docs, device HTTP, `/mqtt` once main.ts attaches the
 * WebSocket). `handshakeTimeoutMs`: the TLS handshake is part of the time a socket has to send its
 * request headers (HTTP_HEADERS_TIMEOUT_MS), as on plain HTTP.
 */
export function createHttpsServer(
  app: FastifyInstance,
  reloader: TlsReloader,
  options: { handshakeTimeoutMs: number },
): HttpsServer {
  const { cert, key } = reloader.current();
  let closing = false;
  const server = https.createServer({ cert, key, handshakeTimeout: options.handshakeTimeoutMs }, (req, res) => {
    // Like Fastify on its own server while closing: the connection ends after this answer.
    if (closing) res.setHeader('connection', 'close');
    app.routing(req, res);
  });
  reloader.onChange((next) => server.setSecureContext({ cert: next.cert, key: next.key }));
  // The same keep-alive and request timeouts as the HTTP server Fastify configured.
  server.keepAliveTimeout = app.server.keepAliveTimeout;
  server.requestTimeout = app.server.requestTimeout;
  server.maxRequestsPerSocket = app.server.maxRequestsPerSocket;
  server.timeout = app.server.timeout;
  return {
    server,
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        if (!server.listening) return resolve();
        // A keep-alive connection busy now is closed once its answer is sent, not after keepAliveTimeout.
        const sweep = setInterval(() => server.closeIdleConnections(), 200);
        server.close(() => {
          clearInterval(sweep);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

/** Listens like the plaintext listeners of main.ts: the first error (EADDRINUSE) rejects, later ones are logged. */
export function listen(
  server: NetServer,
  port: number,
  host: string,
  onError: (err: Error) => void,
): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}
