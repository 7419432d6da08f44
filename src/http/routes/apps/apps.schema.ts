import { z } from 'zod';
import { Name } from '../common.schema.ts';

/** An app as listed: never its secret (http-api.md §2: a secret is shown once). */
export const App = z.object({ app_id: z.string(), name: z.string(), access_key: z.string(), create_time: z.number() });
export const AppList = z.object({ items: z.array(App) });

export const CreateAppBody = z.object({ name: Name });
export const CreatedApp = z.object({
  app_id: z.string(),
  name: z.string(),
  access_key: z.string(),
  secret_key: z.string(),
});
export const ResetSecret = z.object({ app_id: z.string(), access_key: z.string(), secret_key: z.string() });
