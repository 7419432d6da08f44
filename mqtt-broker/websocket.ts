import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createWebSocketStream, WebSocketServer } from 'ws';
import type { Broker } from './broker.ts';

export const MQTT_WS_PATH = '/mqtt';

/**
 * MQTT over WebSocket on the HTTP port (device-protocol.md §2): upgrades of `/mqtt` become MQTT
 * connections; other upgrade requests are left to other listeners or refused. Returns close().
 */
export function attachWebSocket(httpServer: Server, broker: Broker, options: { maxPayload?: number } = {}): () => Promise<void> {
  const wss = new WebSocketServer({
    noServer: true,
    // Browsers and SDKs ask for "mqtt"; accept it, and plain WebSocket clients too.
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
    ...(options.maxPayload ? { maxPayload: options.maxPayload } : {}),
  });

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== MQTT_WS_PATH) {
      if (httpServer.listenerCount('upgrade') === 1) socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const stream = createWebSocketStream(ws);
      broker.handleConnection(stream);
    });
  };
  httpServer.on('upgrade', onUpgrade);

  return () =>
    new Promise<void>((resolve) => {
      httpServer.off('upgrade', onUpgrade);
      for (const client of wss.clients) client.terminate();
      wss.close(() => resolve());
    });
}
