import { z } from 'zod';

/** What can be shown any time: the key (it is in subscribers' topics), never the secret. */
export const ViewKeyInfo = z.object({ view_key: z.string().nullable(), has_secret: z.boolean() });

/** The body is optional (Fastify gives `null` for none): an empty POST rotates the secret only. */
export const IssueViewKeyBody = z.object({ rotate_key: z.boolean().optional() }).nullish();
export const IssuedViewKey = z.object({ view_key: z.string(), view_secret: z.string() });
