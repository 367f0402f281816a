/**
 * Applying broker state changes as multi-row `UPDATE ... FROM unnest(...)` statements, guarded in
 * SQL so that a replayed or late change never moves a task backwards (the rules are on `TaskUpdate`).
 *
 * A claim followed by the completion of that same attempt is merged into one change first (the
 * completion, carrying the claim's start time and worker): under load most tasks start and finish
 * between two reads of the change feed, and this halves the rows written for them.
 *
 * One UPDATE may match each row once, so a batch still holding several changes for one task is cut
 * into layers: the first change of every task, then the second, and so on, applied in that order.
 * Usually that is one statement per batch, sometimes two.
 */
import { type Kysely, sql } from 'kysely'
import type { TaskUpdate } from '../store.js'
import type { Database } from './tables.js'
import { TERMINAL_SQL, UNFINISHED_SQL } from './task-rows.js'

/** Answers, per update, whether it was applied. */
export async function applyUpdates(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  updates: readonly TaskUpdate[],
  audit = false,
): Promise<boolean[]> {
  const { changes, origin } = mergeClaims(updates)
  const applied: boolean[] = new Array(updates.length).fill(false)
  for (const layer of layers(changes)) {
    const ids = await applyLayer(
      db,
      schema,
      queue,
      layer.map((i) => changes[i]!),
      audit,
    )
    for (const i of layer) if (ids.has(changes[i]!.id)) for (const j of origin[i]!) applied[j] = true
  }
  return applied
}

/**
 * Folds a `processing` change into the `completed` change that follows it for the same task and
 * attempt. Answers the changes to apply and, for each, the indexes of the updates it stands for.
 * A claim that records a failed attempt, or a completion that revives, is never merged.
 */
export function mergeClaims(updates: readonly TaskUpdate[]): { changes: TaskUpdate[]; origin: number[][] } {
  const changes: TaskUpdate[] = []
  const origin: number[][] = []
  /** Per task, the position in `changes` of its latest change. */
  const latest = new Map<string, number>()
  updates.forEach((update, i) => {
    const at = latest.get(update.id)
    const claim = at === undefined ? undefined : changes[at]
    if (
      claim !== undefined &&
      claim.status === 'processing' &&
      claim.failedAttempt === undefined &&
      update.status === 'completed' &&
      update.attempt === claim.attempt &&
      update.revive !== true
    ) {
      changes[at!] = {
        ...update,
        startedAt: update.startedAt ?? claim.startedAt ?? claim.at,
        workerId: update.workerId ?? claim.workerId,
      }
      origin[at!]!.push(i)
      return
    }
    latest.set(update.id, changes.length)
    changes.push(update)
    origin.push([i])
  })
  return { changes, origin }
}

/** Indexes of the updates, cut so that no layer holds two updates of one task. */
function layers(updates: readonly TaskUpdate[]): number[][] {
  const seen = new Map<string, number>()
  const out: number[][] = []
  updates.forEach((update, i) => {
    const depth = seen.get(update.id) ?? 0
    seen.set(update.id, depth + 1)
    let layer = out[depth]
    if (!layer) {
      layer = []
      out.push(layer)
    }
    layer.push(i)
  })
  return out
}

const json = (value: unknown) => (value === undefined ? null : JSON.stringify(value))

/**
 * One UPDATE for a layer. With `audit`, the same statement also writes one `task.status` audit entry
 * per row it moved (a data-modifying CTE), so the audit log never disagrees with the record. The
 * actor is the worker whose attempt made the change (its claim, its completion, or the failure it
 * reported, all made under its lease); any other change (a lease expiry, a cancel, a DLQ retry) is
 * taskloom's, not credited to the task's last worker.
 */
async function applyLayer(
  db: Kysely<Database>,
  schema: string,
  queue: string,
  updates: TaskUpdate[],
  audit: boolean,
) {
  const at = sql`to_timestamp(u.at / 1000)`
  const appends = sql`u.failed_attempt is not null and not t.history @> jsonb_build_array(u.failed_attempt)`
  const result = await sql<{ id: string }>`
    with moved as (
    update ${sql.id(schema, 'tasks')} as t set
      status = u.status,
      attempt = u.attempt,
      updated_at = ${at},
      scheduled_at = coalesce(to_timestamp(u.run_at / 1000), t.scheduled_at),
      started_at = case
        when u.started_at is not null then to_timestamp(u.started_at / 1000)
        when u.status = 'processing' then ${at}
        else t.started_at end,
      completed_at = case when u.status in ${TERMINAL_SQL} then ${at} end,
      dead_lettered_at = case when u.status = 'failed' then ${at} end,
      revived_at = case when u.revive then ${at} else t.revived_at end,
      enqueued_at = coalesce(t.enqueued_at, ${at}),
      worker_id = coalesce(u.worker_id, t.worker_id),
      result = coalesce(u.result, t.result),
      error = coalesce(u.error, t.error),
      history = case when ${appends} then t.history || jsonb_build_array(u.failed_attempt) else t.history end,
      retry_count = t.retry_count + case when ${appends} then 1 else 0 end
    from unnest(
      ${updates.map((u) => u.id)}::text[], ${updates.map((u) => u.status)}::text[],
      ${updates.map((u) => u.attempt)}::int4[], ${updates.map((u) => u.at)}::float8[],
      ${updates.map((u) => u.runAt ?? null)}::float8[], ${updates.map((u) => u.startedAt ?? null)}::float8[],
      ${updates.map((u) => u.workerId ?? null)}::text[], ${updates.map((u) => u.result ?? null)}::jsonb[],
      ${updates.map((u) => json(u.error))}::jsonb[], ${updates.map((u) => json(u.failedAttempt))}::jsonb[],
      ${updates.map((u) => u.revive === true)}::bool[]
    ) as u(id, status, attempt, at, run_at, started_at, worker_id, result, error, failed_attempt, revive)
    where t.queue = ${queue} and t.id = u.id
      -- spelled out for the planner: primary-key lookups, even before the table has statistics
      and t.id = any(${updates.map((u) => u.id)}::text[])
      and case
      when u.revive then t.status = 'failed' and ${at} >= t.dead_lettered_at
      else t.status in ${UNFINISHED_SQL}
        and (t.revived_at is null or ${at} >= t.revived_at)
        and case
          when u.status in ${TERMINAL_SQL} then true
          when u.status = 'processing' then u.attempt > t.attempt or (u.attempt = t.attempt and ${at} >= t.updated_at)
          else ${at} >= t.updated_at
        end
      end
    returning t.id, t.tenant_id, t.status, t.attempt, t.updated_at, t.error,
      case when u.worker_id is not null or u.status = 'completed'
          or (u.failed_attempt is not null and u.failed_attempt->>'outcome' <> 'lease-expired')
        then t.worker_id end as actor
    ), audited as (
      insert into ${sql.id(schema, 'audit_log')} (at, tenant_id, actor, action, target_id, details)
      select m.updated_at, m.tenant_id, coalesce('worker:' || m.actor, 'taskloom'), 'task.status', m.id,
        jsonb_strip_nulls(jsonb_build_object('queue', ${queue}::text, 'status', m.status, 'attempt', m.attempt,
          'error', case when m.status = 'failed' then m.error->>'message' end))
      from moved m where ${audit}::bool
    )
    select id from moved`.execute(db)
  return new Set(result.rows.map((row) => row.id))
}
