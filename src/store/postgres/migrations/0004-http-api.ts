/**
 * What the HTTP API needs beyond 0001: API keys are looked up by a public prefix (the secret is only
 * ever stored as a hash) and keep when they were revoked; audit entries carry the request id.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const httpApi: Migration = {
  version: 4,
  name: 'http-api',
  async up(db, schema) {
    const t = (table: string) => sql.id(schema, table)
    const statements = [
      sql`alter table ${t('api_keys')} add column prefix text`,
      sql`alter table ${t('api_keys')} add column revoked_at timestamptz`,
      sql`create unique index api_keys_prefix on ${t('api_keys')} (prefix)`,
      sql`alter table ${t('audit_log')} add column request_id text`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
