/**
 * Tenants (the REST API's operator settings): one row per tenant the operator configured, with its
 * requests per minute, monthly task submissions and the scopes its keys may hold. A tenant without
 * a row gets the API's defaults; a null column means the default for that setting.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const tenants: Migration = {
  version: 6,
  name: 'tenants',
  async up(db, schema) {
    await sql`create table ${sql.id(schema, 'tenants')} (
      id text primary key,
      rate_limit integer,
      monthly_quota integer,
      scopes text[],
      created_at timestamptz not null default now(),
      updated_at timestamptz not null default now()
    )`.execute(db)
  },
}
