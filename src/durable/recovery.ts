/**
 * Keeps Redis and PostgreSQL in agreement, from every durable queue process:
 * - Redis loss: when the epoch marker is missing (Redis restarted empty), the one process that
 *   recreates it puts every unfinished task from the store back into the broker: pending ones
 *   delayed, queued ones queued, in-flight ones queued with the attempt counted.
 * - Reconciliation: rows whose `enqueued_at` is still unset after a grace period are handed to the
 *   broker again and marked. Most were delivered (a submit does not mark its rows; a task's first
 *   change does) and the broker answers those as already held; the rest were stored by a process
 *   that died before the hand-off, and are enqueued now. Enqueue is idempotent by id, so never twice.
 * - Retention: finished rows older than the record retention are purged in small batches.
 */
import type { Broker, NewTask } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import type { Store, StoredTask } from '../store/store.js'
import { toErrorInfo } from '../task/model.js'

export interface RecoveryOptions {
  /** How often the epoch marker is checked. Default 5,000 ms. */
  intervalMs?: number
  /** How old an unconfirmed row must be before it is enqueued by reconciliation. Default 60,000 ms. */
  reconcileGraceMs?: number
  /** How often reconciliation runs. Default 30,000 ms. */
  reconcileIntervalMs?: number
}

const PAGE = 1000
/** How long a restorer may go without renewing before another process takes the restore over. */
const RESTORE_LEASE_MS = 30_000
const PURGE_EVERY_MS = 3_600_000

export class Recovery {
  private readonly timers: NodeJS.Timeout[] = []
  private running: Promise<unknown> = Promise.resolve()
  private readonly options: Required<RecoveryOptions>

  constructor(
    private readonly broker: Broker,
    private readonly store: Store,
    private readonly logger: Logger,
    options: RecoveryOptions,
    private readonly recordRetentionMs: number,
    private readonly idempotencyTtlMs: number,
  ) {
    this.options = { intervalMs: 5000, reconcileGraceMs: 60_000, reconcileIntervalMs: 30_000, ...options }
  }

  /** Runs the epoch check once now (so a fresh Redis is restored before first use), then on timers. */
  async start(): Promise<void> {
    await this.checkEpoch()
    this.every(this.options.intervalMs, () => this.checkEpoch())
    this.every(this.options.reconcileIntervalMs, () => this.reconcile())
    this.every(PURGE_EVERY_MS, () => this.purge())
  }

  async stop(): Promise<void> {
    for (const t of this.timers.splice(0)) clearInterval(t)
    await this.running
  }

  /** Restores every unfinished task if this process is the one that found Redis empty. */
  async checkEpoch(): Promise<number> {
    const { created } = await this.broker.ensureEpoch(Date.now(), RESTORE_LEASE_MS)
    if (!created) return 0
    let restored = 0
    let cursor: string | null = null
    do {
      const page = await this.store.listUnfinished(cursor, PAGE)
      restored += await this.enqueue(page.items)
      cursor = page.nextCursor
      // Still alive and restoring: if this process dies now, another takes over when the lease lapses.
      await this.broker.markEpoch(Date.now(), 'restoring', RESTORE_LEASE_MS)
    } while (cursor !== null)
    await this.broker.markEpoch(Date.now(), 'done', RESTORE_LEASE_MS)
    if (restored > 0)
      this.logger.warn({ restored }, 'Redis had lost its data: unfinished tasks restored from the store')
    return restored
  }

  /** Enqueues rows stored but never confirmed by the broker. */
  async reconcile(): Promise<number> {
    let total = 0
    for (;;) {
      const rows = await this.store.listUnenqueued(Date.now() - this.options.reconcileGraceMs, PAGE)
      total += await this.enqueue(rows)
      if (rows.length < PAGE) break
    }
    if (total > 0) this.logger.warn({ tasks: total }, 'enqueued stored tasks the broker had never received')
    return total
  }

  async purge(): Promise<number> {
    return this.store.purgeFinished(Date.now() - this.recordRetentionMs)
  }

  private async enqueue(rows: readonly StoredTask[]): Promise<number> {
    if (rows.length === 0) return 0
    const now = Date.now()
    const tasks: NewTask[] = rows.map((r) => ({
      id: r.id,
      name: r.name,
      tenantId: r.tenantId,
      payload: r.payload,
      priority: r.priority,
      runAt: r.status === 'pending' ? r.runAt : Math.min(r.runAt, now),
      timeoutMs: r.timeoutMs,
      maxRetries: r.maxRetries,
      createdAt: r.createdAt,
      idempotencyTtlMs: this.idempotencyTtlMs,
      attempt: r.attempt,
      lockKey: r.lockKey,
    }))
    const results = await this.broker.enqueue(tasks, now)
    await this.store.markEnqueued(
      tasks.map((t) => t.id),
      now,
    )
    // Enqueue is idempotent by id: a task the broker already held answers `deduplicated`.
    return results.filter((r) => !r.deduplicated).length
  }

  private every(ms: number, job: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      this.running = this.running.then(job).catch((err: unknown) => {
        this.logger.warn({ err: toErrorInfo(err) }, 'recovery step failed; will try again')
      })
    }, ms)
    timer.unref()
    this.timers.push(timer)
  }
}
