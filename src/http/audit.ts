/**
 * The audit log: who did what, when, from which request. Entries are written in batches off the
 * request path (one INSERT per batch); a failed write is logged, never fails the request. Entries
 * older than the retention (default 90 days) are purged in batches.
 */
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Logger } from '../logger.js'
import type { Database } from '../store/postgres/tables.js'
import { Batcher } from '../util/batcher.js'

export type AuditAction =
  | 'task.submit'
  | 'task.cancel'
  /** Written by the store, when the queue has `auditStatusChanges` (no request, key or request id). */
  | 'task.status'
  | 'task.retry'
  | 'tasks.retry_all'
  | 'schedule.create'
  | 'schedule.delete'
  | 'schedule.pause'
  | 'schedule.resume'
  /** A schedule's task run outside its ticks (the dashboard's "trigger now"). */
  | 'schedule.trigger'
  /** A dashboard sign-in with an API key (details: the key's prefix). */
  | 'dashboard.login'
  | 'auth.failed'
  | 'auth.forbidden'
  | 'rate.limited'
  | 'quota.exceeded'
  | 'key.create'
  | 'key.revoke'
  /** The operator changed a tenant's rate limit, quota or scopes. */
  | 'tenant.update'
  /** Flow control: a queue, task name or group paused or resumed (src/http/routes-flow.ts). */
  | 'flow.pause'
  | 'flow.resume'

export interface AuditEntry {
  action: AuditAction
  tenantId: string | null
  /** The API key id, when one was presented and known. */
  keyId: string | null
  requestId: string
  targetId?: string | null | undefined
  details?: Record<string, unknown> | undefined
  at?: Date
}

export interface AuditRecord extends Required<Omit<AuditEntry, 'details'>> {
  /** The entry's id: entries are numbered in the order they were written. */
  id: string
  details: Record<string, unknown> | null
  at: Date
}

export const AUDIT_ACTIONS = [
  'task.submit',
  'task.cancel',
  'task.status',
  'task.retry',
  'tasks.retry_all',
  'schedule.create',
  'schedule.delete',
  'schedule.pause',
  'schedule.resume',
  'schedule.trigger',
  'dashboard.login',
  'auth.failed',
  'auth.forbidden',
  'rate.limited',
  'quota.exceeded',
  'key.create',
  'key.revoke',
  'flow.pause',
  'flow.resume',
] as const satisfies readonly AuditAction[]

export interface AuditFilter {
  tenantId?: string
  action?: AuditAction
  requestId?: string
  /** The acting key's id (`actor`). */
  keyId?: string
  targetId?: string
  /** Entries at or after this time. */
  since?: Date
  /** Entries before this time. */
  until?: Date
  /** Entries written before the one with this id (the paging cursor). */
  before?: string
  /** Default 100. */
  limit?: number
}

export class AuditLog {
  readonly #db: Kysely<Database>
  readonly #schema: string
  readonly #logger: Logger
  readonly #writes: Batcher<AuditEntry, null>

  constructor(db: Kysely<Database>, schema: string, logger: Logger) {
    this.#db = db
    this.#schema = schema
    this.#logger = logger
    this.#writes = new Batcher((entries) => this.#insert(entries), { maxBatch: 500 })
  }

  /** Queues an entry; resolves once written (callers on the request path do not wait). */
  record(entry: AuditEntry): Promise<void> {
    const at = entry.at ?? new Date()
    return this.#writes.add({ ...entry, at }).then(
      () => {},
      (err: unknown) => this.#logger.warn({ err, action: entry.action }, 'could not write an audit entry'),
    )
  }

  /** Waits for queued entries to be written. */
  flush(): Promise<void> {
    return this.#writes.drain()
  }

  /** Newest first (in the order entries were written); page on with `before`: the last entry's id. */
  async list(filter: AuditFilter = {}): Promise<AuditRecord[]> {
    await this.flush()
    let q = this.#db
      .withSchema(this.#schema)
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('id', 'desc')
      .limit(filter.limit ?? 100)
    if (filter.tenantId !== undefined) q = q.where('tenant_id', '=', filter.tenantId)
    if (filter.action !== undefined) q = q.where('action', '=', filter.action)
    if (filter.requestId !== undefined) q = q.where('request_id', '=', filter.requestId)
    if (filter.keyId !== undefined) q = q.where('actor', '=', filter.keyId)
    if (filter.targetId !== undefined) q = q.where('target_id', '=', filter.targetId)
    if (filter.since !== undefined) q = q.where('at', '>=', filter.since)
    if (filter.until !== undefined) q = q.where('at', '<', filter.until)
    if (filter.before !== undefined) q = q.where('id', '<', filter.before)
    const rows = await q.execute()
    return rows.map((r) => ({
      id: String(r.id),
      action: r.action as AuditAction,
      tenantId: r.tenant_id,
      keyId: r.actor,
      requestId: r.request_id ?? '',
      targetId: r.target_id,
      details: (r.details as Record<string, unknown> | null) ?? null,
      at: new Date(r.at),
    }))
  }

  /**
   * Tasks the tenant submitted (with one key, when `keyId` is given) from `since` to before
   * `until`: the durable record of a quota counter, which is rebuilt from it when the counter is
   * gone (a Redis restart, or a restarted embedded process).
   */
  async submissions(tenantId: string, since: Date, until = new Date(), keyId?: string): Promise<number> {
    await this.flush()
    let q = this.#db
      .withSchema(this.#schema)
      .selectFrom('audit_log')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('tenant_id', '=', tenantId)
      .where('at', '>=', since)
      .where('at', '<', until)
      .where('action', '=', 'task.submit')
    if (keyId !== undefined) q = q.where('actor', '=', keyId)
    const row = await q.executeTakeFirst()
    return Number(row?.n ?? 0)
  }

  /** Deletes entries older than `olderThan`, 5,000 per statement; answers how many went. */
  async purge(olderThan: Date): Promise<number> {
    const t = sql.id(this.#schema, 'audit_log')
    let total = 0
    for (;;) {
      const result = await sql`delete from ${t} where id in
        (select id from ${t} where at < ${olderThan} limit 5000)`.execute(this.#db)
      const n = Number(result.numAffectedRows ?? 0)
      total += n
      if (n < 5000) return total
    }
  }

  async #insert(entries: AuditEntry[]): Promise<null[]> {
    await this.#db
      .withSchema(this.#schema)
      .insertInto('audit_log')
      .values(
        entries.map((e) => ({
          at: e.at ?? new Date(),
          tenant_id: e.tenantId,
          actor: e.keyId,
          action: e.action,
          target_id: e.targetId ?? null,
          details: e.details ? JSON.stringify(e.details) : null,
          request_id: e.requestId,
        })),
      )
      .execute()
    return entries.map(() => null)
  }
}
