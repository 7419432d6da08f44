import http from 'node:http';
import { z, type ZodType } from 'zod';
import type { CreatedProject, CreateProjectInput } from '../domain/projects/projects.service.ts';
import { AppError } from '../errors.ts';
import { socketPathFits } from './socket-path.ts';
import { CreatedProject as CreatedProjectSchema, ProjectSummary } from '../http/routes/platform/platform.schema.ts';

export type ProjectSummary = z.infer<typeof ProjectSummary>;

/** The operator's project commands, whether served in this process or by the running server. */
export interface ProjectsPort {
  create(input: CreateProjectInput): Promise<CreatedProject>;
  list(): Promise<ProjectSummary[]>;
  delete(id: string): Promise<void>;
}

/** The control socket answered something that is not the envelope of http-api.md §1. */
export class ControlProtocolError extends Error {
  override name = 'ControlProtocolError';
}

const Failure = z.object({
  result: z.literal(false),
  errcode: z.number(),
  message: z.string(),
  errors: z.array(z.object({ path: z.string(), message: z.string() })).default([]),
});

interface Answer {
  status: number;
  text: string;
}

const PROBE_TIMEOUT_MS = 2_000;
const REQUEST_TIMEOUT_MS = 60_000;

function request(socketPath: string, method: string, url: string, body: unknown, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        socketPath,
        method,
        path: url,
        agent: false,
        timeout: timeoutMs,
        headers:
          payload === undefined
            ? {}
            : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new ControlProtocolError(`the control socket ${socketPath} did not answer within ${timeoutMs} ms`)),
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** Success gives `info` checked against the route's schema; a business failure becomes the same AppError. */
function unwrap<T extends ZodType>(info: T, answer: Answer): z.output<T> {
  let json: unknown;
  try {
    json = JSON.parse(answer.text);
  } catch {
    json = undefined;
  }
  const ok = z.object({ result: z.literal(true), info }).safeParse(json);
  if (ok.success) return (ok.data as { info: z.output<T> }).info;
  const failed = Failure.safeParse(json);
  if (failed.success) throw new AppError(failed.data.errcode, failed.data.message, failed.data.errors);
  throw new ControlProtocolError(
    `unexpected answer from the control socket (HTTP ${answer.status}): ${answer.text.slice(0, 200)}`,
  );
}

/**
 * Connects to the control socket of a running server. Returns null when nobody answers there
 * (no file, a stale file, or another program), so the caller may open DATA_DIR itself.
 */
export async function connectControl(socketPath: string): Promise<ProjectsPort | null> {
  // No server can listen on a path too long for a unix socket (startControlServer refuses it).
  if (!socketPathFits(socketPath)) return null;
  try {
    const health = await request(socketPath, 'GET', '/health', undefined, PROBE_TIMEOUT_MS);
    unwrap(z.object({ status: z.literal('ok') }), health);
  } catch {
    return null;
  }
  const call = async (method: string, url: string, body?: unknown) =>
    request(socketPath, method, url, body, REQUEST_TIMEOUT_MS);
  return {
    async create(input) {
      return unwrap(CreatedProjectSchema, await call('POST', '/platform/v1/projects', input));
    },
    async list() {
      return unwrap(z.object({ items: z.array(ProjectSummary) }), await call('GET', '/platform/v1/projects')).items;
    },
    async delete(id) {
      unwrap(z.object({}), await call('DELETE', `/platform/v1/projects/${encodeURIComponent(id)}`));
    },
  };
}
