/**
 * Task output (issue 17): each task's latest `ctx.progress` value (and when it was reported, so a
 * replayed older value never overwrites a newer one), and its `ctx.log` lines, one row each, named
 * by the attempt's fencing token and the line's number. Lines go with their task (on delete cascade).
 */
import { sql } from 'kysely'
import type { Migration } from './migration.js'

export const taskOutput: Migration = {
  version: 10,
  name: 'task-output',
  async up(db, schema) {
    await sql`alter table ${sql.id(schema, 'tasks')}
      add column progress jsonb,
      add column progress_at timestamptz`.execute(db)
    await sql`create table ${sql.id(schema, 'task_logs')} (
      queue text not null,
      task_id text not null,
      token bigint not null,
      seq integer not null,
      at timestamptz not null,
      line text not null,
      primary key (queue, task_id, token, seq),
      foreign key (queue, task_id) references ${sql.id(schema, 'tasks')} (queue, id) on delete cascade
    )`.execute(db)
  },
}
