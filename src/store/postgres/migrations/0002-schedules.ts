/**
 * Cron schedules and the task definition registry. 0001's `schedules` table was never written
 * (nothing used it), so it is replaced by one keyed per queue (`(queue, id)`, like tasks), with the
 * columns the scheduler needs: misfire policy, paused flag, submit options. `task_definitions` holds
 * what workers register: the JSON Schema of a task's input and its defaults.
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const schedules: Migration = {
  version: 2,
  name: 'schedules',
  async up(db, schema) {
    const t = (table: string) => sql.id(schema, table)
    const statements = [
      sql`drop table if exists ${t('schedules')}`,
      sql`create table ${t('schedules')} (
        queue text not null,
        id text not null,
        tenant_id text not null,
        task_name text not null,
        cron text not null,
        timezone text not null default 'UTC',
        input jsonb not null default 'null',
        misfire text not null default 'run-once' check (misfire in ('skip', 'run-once', 'catch-up')),
        paused boolean not null default false,
        options jsonb not null default '{}',
        next_run_at timestamptz,
        last_run_at timestamptz,
        created_at timestamptz not null,
        updated_at timestamptz not null,
        primary key (queue, id)
      )`,
      // The scheduler's refill: due schedules by fire time (paused ones have no next_run_at).
      sql`create index schedules_due on ${t('schedules')} (queue, next_run_at) where next_run_at is not null`,
      sql`create index schedules_tenant on ${t('schedules')} (queue, tenant_id, created_at, id)`,
      sql`create table ${t('task_definitions')} (
        queue text not null,
        name text not null,
        input_schema jsonb not null,
        defaults jsonb not null,
        version text not null,
        updated_at timestamptz not null,
        primary key (queue, name)
      )`,
    ]
    for (const statement of statements) await statement.execute(db)
  },
}
