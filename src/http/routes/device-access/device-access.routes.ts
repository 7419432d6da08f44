import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DeviceIdentity } from '../../../domain/devices/device-identity.ts';
import { TooManyRequests } from '../../../errors.ts';
import { createTokenBuckets } from '../../../lib/token-buckets.ts';
import { addressKey } from '../../../lib/address.ts';
import type { Services } from '../../../composition/services.ts';
import {
  AttributesBody,
  AttributesResult,
  CertificateBody,
  CertificateResult,
  EventBody,
  KeysQuery,
  NoFields,
  ReportResult,
  TokenParams,
} from './device-access.schema.ts';
import { deviceEndpoint } from './device-envelope.ts';
import { deviceOfRequest } from './token-auth.ts';

/**
 * The device side of HTTP access (device-protocol.md §4–5). HTTP requests mark activity but do not
 * make a device online: only a live MQTT or TCP session does (§11).
 */
export function deviceAccessRoutes(app: FastifyInstance, { services }: { services: Services }) {
  const { currentValues, deviceEvents, certificates, deviceAuth, rateLimiter, projectSettings } = services;
  const tags = ['Device access'];
  // Device messages over HTTP (docs/metrics.md): counted once authenticated, like MQTT and TCP ones.
  const counts = services.metrics.transport('http');

  /** The device's message rate, shared with its MQTT and TCP traffic: over it, 429 and nothing is stored. */
  async function admit(device: DeviceIdentity) {
    const admission = rateLimiter.admit(
      device.projectId,
      device.deviceId,
      await projectSettings.deviceRateLimit(device.projectId),
    );
    if (!admission.ok) {
      counts.dropped('rate_limited');
      throw new TooManyRequests(
        admission.by === 'device' ? 'Device message rate exceeded' : 'Project message rate exceeded',
        Math.max(1, Math.ceil(admission.retryMs / 1000)),
      );
    }
  }

  /**
   * Certificate requests per client address (IPv6: per /64): a burst for a fleet powering on behind one NAT, then a
   * steady rate. Counted before the body is read or the database asked (README "Security and limits").
   */
  const { rate, burst, createRate, createBurst } = app.provisionRateLimit;
  const provisioning = createTokenBuckets({ rate, burst });
  /**
   * Devices auto-created per project, whatever the addresses (device-protocol.md §4): the project key and a type key
   * ship in every firmware, and the device quota is unlimited by default, so without this a stranger with many
   * addresses could create devices without end. A device that exists already is not counted here.
   */
  const creations = createTokenBuckets({ rate: createRate, burst: createBurst });
  function admitCreation(projectId: string) {
    const taken = creations.take(projectId);
    if (taken.ok) return;
    const seconds = Math.max(1, Math.ceil(taken.retryMs / 1000));
    throw new TooManyRequests(
      `Too many new devices in this project (${createRate}/s, bursts of ${createBurst}), retry in ${seconds} s`,
      seconds,
    );
  }
  async function admitCertificateRequest(req: FastifyRequest) {
    const taken = provisioning.take(addressKey(req.ip));
    if (taken.ok) return;
    const seconds = Math.max(1, Math.ceil(taken.retryMs / 1000));
    throw new TooManyRequests(
      `Too many certificate requests from this address (${rate}/s, bursts of ${burst}), retry in ${seconds} s`,
      seconds,
    );
  }

  deviceEndpoint(app, {
    method: 'POST',
    url: '/device/v1/certificate',
    tags,
    summary: "Get a device's access token by its device key, creating the device when its type allows it",
    description:
      'Header `Project-Key`. An existing device with `device_key` answers its certificate; otherwise, with the `type_key` of a ' +
      'type that allows auto-create and the project under its device quota, the device is created (name = device key), bound ' +
      'to `customer_id` when given. A `device_key` that exists already with a `type_key` of another connection type ' +
      '(direct, sub-device, gateway) answers errcode 409 naming both. Rate limited per client address (`PROVISION_RATE` a second, ' +
      'bursts of `PROVISION_BURST`), and devices created per project (`PROVISION_CREATE_RATE` a second, bursts of ' +
      '`PROVISION_CREATE_BURST`): over either, HTTP 429 with errcode 429 and a `Retry-After` header.',
    onRequest: admitCertificateRequest,
    body: CertificateBody,
    response: CertificateResult,
    handler: async ({ body, req }) => {
      const header = req.headers['project-key'];
      const device = await certificates.request(Array.isArray(header) ? header[0] : header, body, {
        beforeCreate: admitCreation,
      });
      return { device, message: 'ok' };
    },
  });

  deviceEndpoint(app, {
    method: 'POST',
    url: '/device/v1/:access_token/attributes',
    tags,
    summary: 'Report attribute values',
    description:
      "Body: `{identifier: value, …}`, 1–200 attributes; answers the time the values were recorded. Over the device's message " +
      "rate (or its project's budget) nothing is stored and the answer is errcode 429 with a Retry-After header.",
    params: TokenParams,
    body: AttributesBody,
    response: ReportResult,
    handler: async ({ params, body, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      counts.received();
      await admit(device);
      return currentValues.report(device, body);
    },
  });

  deviceEndpoint(app, {
    method: 'GET',
    url: '/device/v1/:access_token/attributes',
    tags,
    summary: "Read the device's current attributes (reported, pushed and cloud)",
    description: '`?keys=a,b` reads only these attributes.',
    params: TokenParams,
    query: KeysQuery,
    response: AttributesResult,
    handler: async ({ params, query, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      return { attributes: await currentValues.get(device.projectId, device.deviceId, query.keys) };
    },
  });

  deviceEndpoint(app, {
    method: 'POST',
    url: '/device/v1/:access_token/event/report',
    tags,
    summary: 'Report an event (logged, not written into attributes)',
    params: TokenParams,
    body: EventBody,
    response: NoFields,
    handler: async ({ params, body, req }) => {
      const device = await deviceOfRequest(deviceAuth, req, params.access_token);
      counts.received();
      await admit(device);
      await deviceEvents.report(device, body);
      return {};
    },
  });
}
