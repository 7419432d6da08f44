import http from 'node:http';
import https from 'node:https';
import type { LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { AddressNotAllowed, type NetGuard } from '../../lib/net-guard.ts';

/**
 * Why a delivery failed, as the tenant sees it in `notify_logs`: an HTTP status of the target's own
 * answer, or one of a few generic words — never the low-level error, which would tell refused ports
 * from filtered ones.
 */
export type DeliveryFailure = 'timeout' | 'connection failed' | 'address not allowed';

export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(readonly reason: DeliveryFailure) {
    super(reason);
  }
}

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}

/** Hands `net.connect` the addresses the guard checked instead of resolving the name again. */
function pinnedLookup(addresses: LookupAddress[]): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all) (callback as (err: null, addresses: LookupAddress[]) => void)(null, addresses);
    else callback(null, addresses[0]!.address, addresses[0]!.family);
  };
}

/**
 * POSTs a webhook: resolves the host, refuses it unless every address passes the guard, and connects
 * to those checked addresses (a second resolution could answer differently). The Host header and TLS
 * server name stay the URL's host, so certificates are verified against the name. Redirects are not
 * followed (a 3xx is the answer). Resolves with the status; the response body is not read.
 */
export function postWebhook(guard: NetGuard, req: WebhookRequest): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let done = false;
    let request: http.ClientRequest | undefined;
    const fail = (reason: DeliveryFailure) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      request?.destroy();
      reject(new DeliveryError(reason));
    };
    const timer = setTimeout(() => fail('timeout'), req.timeoutMs);
    const url = new URL(req.url);
    guard.check(url.hostname).then(
      (addresses) => {
        if (done) return;
        const client = url.protocol === 'https:' ? https : http;
        request = client.request(url, {
          method: 'POST',
          headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
          lookup: pinnedLookup(addresses),
          // A fresh connection each time: a pooled one could have been opened to another address.
          agent: false,
        });
        request.on('response', (res) => {
          if (done) return res.destroy();
          done = true;
          clearTimeout(timer);
          res.destroy();
          resolve(res.statusCode ?? 0);
        });
        request.on('error', () => fail('connection failed'));
        request.end(req.body);
      },
      (err: unknown) => fail(err instanceof AddressNotAllowed ? 'address not allowed' : 'connection failed'),
    );
  });
}
