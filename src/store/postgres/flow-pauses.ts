/** The rows of `flow_pauses` (migration 11): which scopes of a queue are paused, durably. */
import { type Kysely, sql } from 'kysely'
import type { Database } from './tables.js'

export async function listFlowPauses(db: Kysely<Database>, schema: string, queue: string): Promise<string[]> {
  const { rows } = await sql<{ scope: string }>`
    select scope from ${sql.id(schema, 'flow_pauses')} where queue = ${queue} order by scope`.execute(db)
  return rows.map((r) => r.scope)
}

export async function setFlowPause(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  scope: string,
  paused: boolean,
): Promise<void> {
  const table = sql.id(schema, 'flow_pauses')
  await (paused
    ? sql`insert into ${table} (queue, scope) values (${queue}, ${scope}) on conflict do nothing`
    : sql`delete from ${table} where queue = ${queue} and scope = ${scope}`
  ).execute(db)
}
