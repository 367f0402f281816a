/**
 * Keeps Redis and PostgreSQL in agreement, from every durable queue process:
 * - Re-base: the broker's marker names the Redis server (its run_id) the data was last re-based
 *   on. When it is missing (Redis new or emptied) or names another server (a restart, from an
 *   AOF/RDB file or not, or a failover), the one process that takes the restore lease re-bases:
 *   1. reserves a fresh block of fencing tokens in the store (recorded there before Redis may
 *      issue them) and raises Redis's counter above every token the store has ever allowed;
 *   2. makes every task Redis holds agree with its row, where the row is ahead (a rollback: Redis
 *      kept a task queued that the store has completed, or an attempt the store saw end);
 *      fenced claims are refused until here, then served (`markEpoch('serving')`);
 *   3. restores what Redis lacks: every unfinished row (pending ones delayed, queued and in-flight
 *      ones queued with their attempts counted) and every dead-lettered row (into the DLQ);
 *   renewing a short restore lease after every page, so an interrupted re-base is resumed by
 *   another process within `RESTORE_LEASE_MS`. Claims that are refused ask for the check at once.
 * - Fences: when the broker has few tokens left below its ceiling, the next block is reserved.
 * - Reconciliation: rows whose `enqueued_at` is still unset after a grace period are handed to the
 *   broker again and marked. Most were delivered (a submit does not mark its rows; a task's first
 *   change does) and the broker answers those as already held; the rest were stored by a process
 *   that died before the hand-off, and are enqueued now. Enqueue is idempotent by id, so never twice.
 * - Retention: finished rows older than the record retention are purged in small batches.
 */
import {
  type Broker,
  type EpochGrant,
  FENCE_BLOCK,
  type NewTask,
  type RestoredTask,
} from '../broker/broker.js'
import { reapplyPauses } from '../flow/admin.js'
import type { Logger } from '../logger.js'
import type { Store, StoredTask } from '../store/store.js'
import { toErrorInfo } from '../task/model.js'
import { splitWaiting, withDependencies } from './dependency-restore.js'
import { storedToNewTask } from './stored-task.js'

export interface RecoveryOptions {
  /** How often the re-base marker is checked (a refused claim also checks at once). Default 5,000 ms. */
  intervalMs?: number
  /** How old an unconfirmed row must be before it is enqueued by reconciliation. Default 60,000 ms. */
  reconcileGraceMs?: number
  /** How often reconciliation runs. Default 30,000 ms. */
  reconcileIntervalMs?: number
}

const PAGE = 1000
/** How long a re-baser may go without renewing (after every page) before another process resumes. */
export const RESTORE_LEASE_MS = 10_000
/** A refused claim asks for an epoch check at most this often. */
const CHECK_SOON_MS = 200
const PURGE_EVERY_MS = 3_600_000

export class Recovery {
  private readonly timers: NodeJS.Timeout[] = []
  private running: Promise<unknown> = Promise.resolve()
  private readonly options: Required<RecoveryOptions>
  private stopped = false
  private checkQueued = false
  private lastSoonCheck = 0
  private reserving: Promise<void> | undefined

  constructor(
    private readonly broker: Broker,
    private readonly store: Store,
    private readonly logger: Logger,
    options: RecoveryOptions,
    private readonly recordRetentionMs: number,
  ) {
    this.options = { intervalMs: 5000, reconcileGraceMs: 60_000, reconcileIntervalMs: 30_000, ...options }
  }

  /** Runs the epoch check once now (so a fresh Redis is restored before first use), then on timers. */
  async start(): Promise<void> {
    this.broker.onBlocked((reason) => {
      if (this.stopped) return
      if (reason === 'fence') void this.reserveFences().catch((err: unknown) => this.stepFailed(err))
      else this.checkSoon()
    })
    await this.checkEpoch()
    this.every(this.options.intervalMs, () => this.checkEpoch())
    this.every(this.options.reconcileIntervalMs, () => this.reconcile())
    this.every(PURGE_EVERY_MS, () => this.purge())
  }

  async stop(): Promise<void> {
    this.stopped = true
    for (const t of this.timers.splice(0)) clearInterval(t)
    await this.running
    await this.reserving
  }

  /** Re-bases the broker if this process is the one that found it not re-based (see above). */
  async checkEpoch(): Promise<number> {
    const grant = await this.broker.ensureEpoch(Date.now(), RESTORE_LEASE_MS)
    if (!grant.created) return 0
    try {
      return await this.rebase(grant)
    } catch (err) {
      // PostgreSQL unreachable, or Redis lost again: the next check (of any process) resumes at
      // once, rather than after the lease.
      await this.broker.markEpoch(Date.now(), 'abandoned', RESTORE_LEASE_MS).catch(() => {})
      throw err
    }
  }

  private async rebase(grant: EpochGrant): Promise<number> {
    const started = Date.now()
    await this.reserveFences(Date.now() * 1000)
    let rewritten = 0
    if (grant.phase === 'rebasing') {
      // Redis's own tasks first, while claims are refused: after a rollback, some are behind the store.
      let cursor: string | null = null
      do {
        const page = await this.broker.heldIds(cursor, PAGE)
        const rows = await this.store.getMany(page.ids)
        rewritten += await this.broker.restore(rows.map(this.restored), Date.now())
        cursor = page.nextCursor
        await this.broker.markEpoch(Date.now(), 'restoring', RESTORE_LEASE_MS)
      } while (cursor !== null)
      // Pauses live in the store too: a Redis that came back empty must not run paused work.
      await reapplyPauses(this.broker, await this.store.flowPauses())
      await this.broker.markEpoch(Date.now(), 'serving', RESTORE_LEASE_MS)
    }
    const servingAfterMs = Date.now() - started
    // Then what Redis lacks, while claims are served: unfinished rows by id, then dead ones.
    let restored = 0
    let cursor: string | null = null
    do {
      const page = await this.store.listUnfinished(cursor, PAGE)
      // Tasks that may wait for dependencies go through enqueue with their edges (see
      // dependency-restore.ts); enqueue keeps a task the broker holds as it is.
      const { waiting, others } = await splitWaiting(this.store, page.items)
      restored += await this.broker.restore(others.map(this.restored), Date.now())
      if (waiting.length > 0) restored += await this.enqueueWith(waiting)
      await this.store.markEnqueued(
        page.items.map((r) => r.id),
        Date.now(),
      )
      cursor = page.nextCursor
      await this.broker.markEpoch(Date.now(), 'restoring', RESTORE_LEASE_MS)
    } while (cursor !== null)
    let dead: string | undefined
    do {
      const page = await this.store.list({ status: 'failed', limit: PAGE, cursor: dead })
      restored += await this.broker.restore(page.items.map(this.restored), Date.now())
      dead = page.nextCursor ?? undefined
      await this.broker.markEpoch(Date.now(), 'restoring', RESTORE_LEASE_MS)
    } while (dead !== undefined)
    await this.broker.markEpoch(Date.now(), 'done', RESTORE_LEASE_MS)
    const fields = { cause: grant.cause, restored, rewritten, servingAfterMs, tookMs: Date.now() - started }
    if (grant.cause === 'changed')
      this.logger.warn(fields, 'Redis restarted or was replaced: re-based on the store')
    else if (grant.cause === 'resume') this.logger.warn(fields, 'resumed an interrupted re-base of Redis')
    else if (restored > 0 || rewritten > 0)
      this.logger.warn(fields, 'Redis had lost its data: unfinished tasks restored from the store')
    return restored + rewritten
  }

  /**
   * Reserves the next block of fencing tokens in the store, then lets the broker issue up to it.
   * With `floor` (a re-base), the counter is raised to the start of the block: above every token
   * an earlier block allowed, whatever Redis lost.
   */
  reserveFences(floor?: number): Promise<void> {
    if (floor === undefined && this.reserving) return this.reserving
    const reserve = (this.reserving ?? Promise.resolve()).then(async () => {
      const ceiling = await this.store.reserveFences(floor ?? 0, FENCE_BLOCK)
      await this.broker.raiseFences(floor === undefined ? 0 : ceiling - FENCE_BLOCK, ceiling)
    })
    const tracked: Promise<void> = reserve
      .catch(() => {})
      .finally(() => {
        if (this.reserving === tracked) this.reserving = undefined
      })
    this.reserving = tracked
    return reserve
  }

  /** Puts a task the store has as dead back into the broker's DLQ; false when the store has it otherwise. */
  async restoreDead(id: string): Promise<boolean> {
    const row = await this.store.get(id)
    if (row?.status !== 'failed') return false
    await this.broker.restore([this.restored(row)], Date.now())
    return true
  }

  private readonly restored = (r: StoredTask): RestoredTask => ({
    ...this.newTask(r, Date.now()),
    status: r.status,
    attempt: r.attempt,
    updatedAt: r.updatedAt,
    finishedAt: r.finishedAt,
    result: r.result,
    error: r.error,
  })

  /** An epoch check as soon as possible (a claim was refused), at most every CHECK_SOON_MS. */
  private checkSoon(): void {
    if (this.checkQueued) return
    this.checkQueued = true
    const wait = Math.max(0, this.lastSoonCheck + CHECK_SOON_MS - Date.now())
    const timer = setTimeout(() => {
      this.lastSoonCheck = Date.now()
      this.running = this.running
        .then(() => {
          this.checkQueued = false
          return this.stopped ? 0 : this.checkEpoch()
        })
        .catch((err: unknown) => this.stepFailed(err))
    }, wait)
    timer.unref()
  }

  private stepFailed(err: unknown): void {
    this.logger.warn({ err: toErrorInfo(err) }, 'recovery step failed; will try again')
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
    const added = await this.enqueueWith(rows)
    await this.store.markEnqueued(
      rows.map((r) => r.id),
      Date.now(),
    )
    // Enqueue is idempotent by id: a task the broker already held answers `deduplicated`.
    return added
  }

  /** Hands rows to the broker with their dependency edges; answers how many it did not hold. */
  private async enqueueWith(rows: readonly StoredTask[]): Promise<number> {
    const now = Date.now()
    const tasks = await withDependencies(
      this.store,
      rows,
      rows.map((r) => this.newTask(r, now)),
    )
    const results = await this.broker.enqueue(tasks, now)
    return results.filter((r) => !r.deduplicated).length
  }

  /** A pending row keeps its due time; any other unfinished row is due now (or when it was). */
  private newTask(r: StoredTask, now: number): NewTask {
    return storedToNewTask(r, r.status === 'pending' ? r.runAt : Math.min(r.runAt, now))
  }

  private every(ms: number, job: () => Promise<unknown>): void {
    const timer = setInterval(() => {
      this.running = this.running.then(job).catch((err: unknown) => this.stepFailed(err))
    }, ms)
    timer.unref()
    this.timers.push(timer)
  }
}
