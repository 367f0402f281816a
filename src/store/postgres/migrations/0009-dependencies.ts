/**
 * Task dependencies and flows (issue 17): the edges a waiting task depends on, kept with the task
 * so a Redis that restarts empty rebuilds the waiting state from here, and each flow's tasks by
 * key, with the flow-wide idempotency key.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const dependencies: Migration = {
  version: 9,
  name: 'dependencies',
  async up(db, schema) {
    const t = (table: string) => sql.id(schema, table)
    const statements = [
      sql`create table ${t('task_dependencies')} (
        queue text not null,
        task_id text not null,
        depends_on_queue text not null,
        depends_on text not null,
        on_failure text not null check (on_failure in ('fail', 'ignore', 'remove')),
        primary key (queue, task_id, depends_on_queue, depends_on)
      )`,
      sql`create index ${sql.id('task_dependencies_depends_on_idx')}
        on ${t('task_dependencies')} (depends_on_queue, depends_on)`,
      sql`create table ${t('flows')} (
        queue text not null,
        id text not null,
        tenant_id text not null,
        root_id text,
        nodes jsonb not null,
        idempotency_key text,
        idempotency_expires_at timestamptz,
        created_at timestamptz not null,
        primary key (queue, id)
      )`,
      sql`create unique index ${sql.id('flows_idempotency_key_idx')}
        on ${t('flows')} (queue, tenant_id, idempotency_key) where idempotency_key is not null`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
