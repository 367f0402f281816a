/**
 * Two fewer indexes on tasks. Every submit inserts into each index, and every status change (never a
 * HOT update, since status is indexed) inserts into each one again; two of them served only lists
 * without a status filter. Those lists now read one ordered slice per status from a status index
 * and merge them (see `PostgresStore.list`), so one new index (queue, status, created_at, id) takes
 * the place of two: tasks_tenant_created and tasks_created.
 *
 * On a large table, build the new index first without blocking writes, then migrate (this step then
 * keeps it and only drops the old ones):
 *   create index concurrently tasks_status_created on taskloom.tasks (queue, status, created_at, id);
 * An index of that name left INVALID by a failed concurrent build, or on other columns, is rebuilt.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

const COLUMNS = '(queue, status, created_at, id)'

export const leanTaskIndexes: Migration = {
  version: 5,
  name: 'lean-task-indexes',
  async up(db, schema) {
    const index = sql.id(schema, 'tasks_status_created')
    const found = await sql<{ valid: boolean; definition: string }>`
      select i.indisvalid as valid, pg_get_indexdef(i.indexrelid) as definition
      from pg_catalog.pg_index i where i.indexrelid = to_regclass(${`"${schema}"."tasks_status_created"`})`.execute(
      db,
    )
    const existing = found.rows[0]
    if (existing && !(existing.valid && existing.definition.endsWith(`btree ${COLUMNS}`))) {
      await sql`drop index ${index}`.execute(db)
    }
    const statements = [
      sql`create index if not exists tasks_status_created on ${sql.id(schema, 'tasks')} ${sql.raw(COLUMNS)}`,
      sql`drop index if exists ${sql.id(schema, 'tasks_tenant_created')}`,
      sql`drop index if exists ${sql.id(schema, 'tasks_created')}`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
