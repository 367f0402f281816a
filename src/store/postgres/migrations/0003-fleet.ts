/**
 * Fleet (distributed locks, worker health): tasks.lock_key, so a task restored from the store keeps
 * its lock key, and the workers table's heartbeat fields (tasks in hand, start time). The workers
 * row is keyed by worker id; `status` keeps 0001's lower-case values.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const fleet: Migration = {
  version: 3,
  name: 'fleet',
  async up(db, schema) {
    const t = (table: string) => sql.id(schema, table)
    const statements = [
      sql`alter table ${t('tasks')} add column lock_key text`,
      sql`alter table ${t('workers')} add column tasks_in_hand integer not null default 0`,
      sql`alter table ${t('workers')} add column started_at timestamptz`,
      sql`alter table ${t('workers')} add column heartbeat_ms integer`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
