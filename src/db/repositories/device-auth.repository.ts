import { sql } from 'drizzle-orm';
import { fixedStatement, rowsOf, type Db } from '../client.ts';
import { devices, deviceTypes, projects } from '../schema/index.ts';

/**
 * The columns of a device identity (src/domain/devices/device-identity.ts): what every transport knows of
 * a device once it has authenticated. Selected with `deviceTypes` left-joined on the device's type.
 */
export const identityColumns = () => ({
  deviceId: devices.id,
  projectId: devices.projectId,
  name: devices.name,
  typeId: devices.typeId,
  connType: deviceTypes.connType,
  disabled: devices.disabled,
});

/** A device found by its access token, with the key of its project (the other half of its credentials). */
export interface CredentialRow {
  deviceId: string;
  projectId: string;
  name: string;
  typeId: string | null;
  connType: string | null;
  disabled: boolean;
  accessToken: string;
  projectKey: string;
}

/**
 * Tokens are joined with this separator into the statement's one parameter: it is not a character of any
 * credential the service looks up (printable ASCII without the space, device-auth.service.ts).
 */
export const TOKEN_SEPARATOR = ' ';

/**
 * The devices holding a list of access tokens (unique across projects), each with its project's key. Built
 * once (fixedStatement): in a reconnect storm against a fast database the batches are small, a few logins
 * each, and drizzle's building of this text cost more of the server's CPU than the statement's round trip.
 */
const byTokensStatement = fixedStatement(
  ['tokens', 'separator'],
  (p) => sql`select ${devices.id} as "deviceId", ${devices.projectId} as "projectId", ${devices.name} as "name",
        ${devices.typeId} as "typeId", ${deviceTypes.connType} as "connType", ${devices.disabled} as "disabled",
        ${devices.accessToken} as "accessToken", ${projects.projectKey} as "projectKey"
      from ${devices}
      join ${projects} on ${projects.id} = ${devices.projectId}
      left join ${deviceTypes} on ${deviceTypes.id} = ${devices.typeId}
      where ${devices.accessToken} = any(string_to_array(${p.tokens}::text, ${p.separator}::text))`,
);

export function createDeviceAuthRepository(db: Db) {
  return {
    /**
     * The devices holding these access tokens, each with its project's key: one statement for a whole batch
     * of logins (a reconnect storm), the same text for any number of tokens, so it stays prepared on every
     * connection. Tokens must not contain TOKEN_SEPARATOR.
     */
    async byTokens(tokens: readonly string[]): Promise<CredentialRow[]> {
      if (!tokens.length) return [];
      return rowsOf<CredentialRow>(
        await byTokensStatement.run(db, { tokens: tokens.join(TOKEN_SEPARATOR), separator: TOKEN_SEPARATOR }),
      );
    },
  };
}
export type DeviceAuthRepository = ReturnType<typeof createDeviceAuthRepository>;
