import { z } from 'zod';
import { Id } from '../common.schema.ts';

const secret = z.string().min(1).max(256);

export const AccessTokenBody = z.object({ app_id: Id, access_key: secret, secret_key: secret });
export const AccountLoginBody = z.object({ app_id: Id, account: secret, password: secret });
export const TokenInfo = z.object({ access_token: z.string(), expires_in: z.number().int() });
