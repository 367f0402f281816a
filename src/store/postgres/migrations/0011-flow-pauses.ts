/**
 * Flow control's pauses (a queue, a task name or a group stopped by `queue.pause`), kept here in
 * durable mode so a Redis that restarts empty gets them back when it is re-based, and a pause
 * never silently lifts.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const flowPauses: Migration = {
  version: 11,
  name: 'flow-pauses',
  async up(db, schema) {
    await sql`create table ${sql.id(schema, 'flow_pauses')} (
      queue text not null,
      scope text not null,
      paused_at timestamptz not null default now(),
      primary key (queue, scope)
    )`.execute(db)
  },
}
