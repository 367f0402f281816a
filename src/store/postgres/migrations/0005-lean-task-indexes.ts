/**
 * Two fewer indexes on tasks. Every submit inserts into each index, and every status change (never a
 * HOT update, since status is indexed) inserts into each one again; two of them served only lists
 * without a status filter. Those lists now read one ordered slice per status from a status index
 * and merge them (see `PostgresStore.list`), so one new index (queue, status, created_at, id) takes
 * the place of two: tasks_tenant_created and tasks_created.
 *
 * On a large table, build the new index first without blocking writes, then migrate (the step below
 * then finds it and only drops the old ones):
 *   create index concurrently tasks_status_created on taskloom.tasks (queue, status, created_at, id);
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const leanTaskIndexes: Migration = {
  version: 5,
  name: 'lean-task-indexes',
  async up(db, schema) {
    const t = (table: string) => sql.id(schema, table)
    const statements = [
      sql`create index if not exists tasks_status_created on ${t('tasks')} (queue, status, created_at, id)`,
      sql`drop index if exists ${sql.id(schema, 'tasks_tenant_created')}`,
      sql`drop index if exists ${sql.id(schema, 'tasks_created')}`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
