/**
 * Writing and reading task output (issue 17): progress values and log lines the change feed
 * carries (`TaskOutput`), a batch in two statements at most, never one per line. A replay is
 * harmless: progress applies only when not older than the stored one, a line already stored (same
 * task, token and seq) is skipped, and lines of tasks the store does not hold are dropped. Each
 * task keeps its last `maxLines` lines here too.
 */
import { type Kysely, sql } from 'kysely'
import type { TaskLogLine, TaskOutput } from '../../task/model.js'
import type { Database } from './tables.js'

export async function applyOutputs(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  outputs: readonly TaskOutput[],
  maxLines: number,
): Promise<void> {
  // The latest progress per task (outputs come in the order they were written).
  const progress = new Map<string, TaskOutput>()
  const lines: (TaskLogLine & { id: string })[] = []
  for (const o of outputs) {
    if (o.progress !== undefined) progress.set(o.id, o)
    for (const line of o.logs ?? []) lines.push({ ...line, id: o.id })
  }
  const tasks = sql.id(schema, 'tasks')
  if (progress.size > 0) {
    const p = [...progress.values()]
    await sql`update ${tasks} as t set progress = u.progress, progress_at = to_timestamp(u.at / 1000)
      from unnest(${p.map((o) => o.id)}::text[], ${p.map((o) => o.progress!)}::jsonb[], ${p.map((o) => o.at)}::float8[])
        as u(id, progress, at)
      where t.queue = ${queue} and t.id = u.id and t.id = any(${p.map((o) => o.id)}::text[])
        and (t.progress_at is null or to_timestamp(u.at / 1000) >= t.progress_at)`.execute(db)
  }
  if (lines.length === 0) return
  const logs = sql.id(schema, 'task_logs')
  await sql`insert into ${logs} (queue, task_id, token, seq, at, line)
    select ${queue}, u.id, u.token, u.seq, to_timestamp(u.at / 1000), u.line
    from unnest(${lines.map((l) => l.id)}::text[], ${lines.map((l) => String(l.token))}::int8[],
      ${lines.map((l) => l.seq)}::int4[], ${lines.map((l) => l.at)}::float8[], ${lines.map((l) => l.line)}::text[])
      as u(id, token, seq, at, line)
    where exists (select 1 from ${tasks} t where t.queue = ${queue} and t.id = u.id)
    on conflict do nothing`.execute(db)
  // Keep the last maxLines of each task: only a task past that many lines can hold too many (seq
  // counts its lines; after Redis lost its data it restarts, and the next pass past it trims).
  const ids = [...new Set(lines.filter((l) => l.seq > maxLines).map((l) => l.id))]
  if (ids.length === 0) return
  await sql`delete from ${logs} l using (
      select task_id, token, seq from (
        select task_id, token, seq,
          row_number() over (partition by task_id order by token desc, seq desc) as n
        from ${logs} where queue = ${queue} and task_id = any(${ids}::text[])
      ) ranked where n > ${maxLines}
    ) old
    where l.queue = ${queue} and l.task_id = old.task_id and l.token = old.token and l.seq = old.seq`.execute(
    db,
  )
}

export async function readLogs(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  id: string,
): Promise<TaskLogLine[]> {
  const { rows } = await sql<{ token: string | number; seq: number; at: Date; line: string }>`
    select token, seq, at, line from ${sql.id(schema, 'task_logs')}
    where queue = ${queue} and task_id = ${id} order by token, seq`.execute(db)
  return rows.map((r) => ({ token: Number(r.token), seq: r.seq, at: r.at.getTime(), line: r.line }))
}
