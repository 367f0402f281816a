/**
 * The fencing-token ceiling of each queue. Redis issues tokens from one counter per queue, but only
 * up to a ceiling that was recorded here first (blocks reserved ahead, hi/lo), so after Redis loses
 * or rolls back its data the counter is re-based above every token it could have issued before.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const fences: Migration = {
  version: 7,
  name: 'fences',
  async up(db, schema) {
    await sql`create table ${sql.id(schema, 'fences')} (
      queue text primary key,
      ceiling bigint not null,
      updated_at timestamptz not null default now()
    )`.execute(db)
  },
}
