/**
 * `createScheduler`: fires due cron schedules as tasks. Any number of schedulers may run, in any
 * number of processes; each (schedule, tick) still becomes exactly one task:
 * - the due cache hands each due entry to one scheduler (an atomic pop);
 * - the task's idempotency key is `schedule:<id>:<tick ms>`, and the store admits one task per key,
 *   so a second scheduler that fires the same tick (after a refill re-added it) gets the same task;
 * - the schedule moves on with a compare and set on its next tick, so it moves once.
 * The store is the source of truth; the cache is refilled from it (one scheduler at a time) so that it
 * always covers at least the next minute, and an entry lost by a crash comes back with the next refill.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { CronExpressionParser } from 'cron-parser'
import type { EnqueueResult, NewTask } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import { internals } from '../queue/internal.js'
import type { Queue } from '../queue/queue.js'
import type { ScheduleRow, Store } from '../store/store.js'
import { TASK_DEFAULTS } from '../task/define-task.js'
import { uuidV7 } from '../util/uuid-v7.js'
import { nextTick, ticksBetween } from './cron.js'
import type { DueCache, DueEntry } from './due-cache.js'
import { tickKey } from './tick-key.js'

export interface SchedulerOptions {
  queue: Queue
  /** How often due schedules are looked for. Default 100 ms. */
  pollMs?: number
  /** A tick fired later than this is a misfire, handled by the schedule's policy. Default 60 s. */
  misfireThresholdMs?: number
  /** Most tasks a catch-up submits for one misfire (the latest missed ticks). Default 100. */
  maxCatchUp?: number
  /** How far ahead the cache is filled from the store; at least 60 s. Default 120 s. */
  lookaheadMs?: number
  /** How often one scheduler of the fleet refills the cache from the store. Default 10 s. */
  refillMs?: number
  logger?: Logger
}

/** What a scheduler needs from its queue (see Queue). */
export interface SchedulerHost {
  store(): Promise<Store>
  cache(): DueCache
  write(rows: (NewTask & { schedule: string })[]): Promise<EnqueueResult[]>
  idempotencyTtlMs: number
  logger: Logger
}

export interface FireEvent {
  scheduleId: string
  /** The ticks that became tasks (idempotency key `schedule:<id>:<tick>`). */
  ticks: number[]
  /** Ticks dropped by the misfire policy. */
  skipped: number
}

const TAKE_LIMIT = 100
const MAX_ON_TIME = 1000

export class Scheduler {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`
  private readonly host: SchedulerHost
  private readonly logger: Logger
  private readonly pollMs: number
  private readonly thresholdMs: number
  private readonly maxCatchUp: number
  private readonly lookaheadMs: number
  private readonly refillMs: number
  private running = false
  private loopDone: Promise<void> | undefined
  private wake: (() => void) | undefined
  private readonly listeners: ((e: FireEvent) => void)[] = []

  constructor(options: SchedulerOptions) {
    const int = (v: number | undefined, d: number, min: number, name: string) => {
      const n = v ?? d
      if (!Number.isInteger(n) || n < min)
        throw new TaskloomError('INVALID_OPTIONS', `${name} must be an integer of at least ${min}`, {
          issues: [{ path: name, message: `expected an integer >= ${min}` }],
        })
      return n
    }
    this.pollMs = int(options.pollMs, 100, 10, 'pollMs')
    this.thresholdMs = int(options.misfireThresholdMs, 60_000, 1, 'misfireThresholdMs')
    this.maxCatchUp = int(options.maxCatchUp, 100, 1, 'maxCatchUp')
    this.lookaheadMs = int(options.lookaheadMs, 120_000, 60_000, 'lookaheadMs')
    this.refillMs = int(options.refillMs, 10_000, 100, 'refillMs')
    if (this.refillMs > this.lookaheadMs - 60_000)
      throw new TaskloomError('INVALID_OPTIONS', 'refillMs must leave a minute of lookahead covered', {
        issues: [{ path: 'refillMs', message: 'at most lookaheadMs - 60000' }],
      })
    if (!options.queue) throw new TaskloomError('INVALID_OPTIONS', 'createScheduler needs a queue')
    this.host = options.queue[internals].scheduling
    this.logger = options.logger ?? this.host.logger
  }

  /** Called after each schedule fired (tests, metrics). */
  onFire(listener: (e: FireEvent) => void): void {
    this.listeners.push(listener)
  }

  /** Checks the store is there, then runs until `close()`. */
  async start(): Promise<void> {
    if (this.running) return
    await this.host.store()
    this.running = true
    this.loopDone = this.loop()
    this.logger.info({ scheduler: this.id }, 'scheduler started')
  }

  /** Stops; a schedule being fired is finished first. */
  async close(): Promise<void> {
    this.running = false
    this.wake?.()
    await this.loopDone
  }

  private async loop(): Promise<void> {
    /** When the current run of failed rounds began: logged once at its start and once at its end. */
    let failingSince: number | undefined
    while (this.running) {
      let busy = false
      try {
        busy = await this.round()
      } catch (err) {
        if (failingSince === undefined) {
          failingSince = Date.now()
          this.logger.warn({ err, scheduler: this.id }, 'scheduler round failed; retrying every second')
        } else {
          this.logger.debug({ err, scheduler: this.id }, 'scheduler round failed again; retrying')
        }
        await this.sleep(1000)
        continue
      }
      if (failingSince !== undefined) {
        this.logger.info(
          { scheduler: this.id, down_ms: Date.now() - failingSince },
          'scheduler rounds succeed again',
        )
        failingSince = undefined
      }
      if (!busy) await this.sleep(this.pollMs)
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms)
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }

  /** One pass: refill when needed, then fire what is due. True when it may have left work. */
  private async round(): Promise<boolean> {
    const cache = this.host.cache()
    const now = Date.now()
    await this.refill(cache, now)
    const due = await cache.take(now, TAKE_LIMIT)
    if (due.length === 0) return false
    const store = await this.host.store()
    const failed: DueEntry[] = []
    await Promise.all(
      due.map((entry) =>
        this.fire(store, cache, entry).catch((err: unknown) => {
          failed.push(entry)
          this.logger.warn({ err, schedule: entry.id }, 'firing a schedule failed; it will be tried again')
        }),
      ),
    )
    if (failed.length > 0) {
      await cache.put(failed)
      await this.sleep(1000)
    }
    return due.length === TAKE_LIMIT
  }

  /**
   * One scheduler of the fleet refills every `refillMs` (the claim expires then); the read is one
   * indexed range query. Besides keeping a minute or more ahead covered, it brings back an entry a
   * scheduler took and then died with, before advancing the schedule.
   */
  private async refill(cache: DueCache, now: number): Promise<void> {
    if (!(await cache.claimRefill(this.id, this.refillMs))) return
    const store = await this.host.store()
    const until = now + this.lookaheadMs
    const limit = 10_000
    const rows = await store.dueSchedules(until, limit)
    await cache.put(rows.map((r) => ({ id: r.id, at: r.nextRunAt! })))
    // A full page may have left some out: the cache is complete only up to the last one read.
    const complete = rows.length === limit ? rows[rows.length - 1]!.nextRunAt! - 1 : until
    await cache.setHorizon(complete)
  }

  private async fire(store: Store, cache: DueCache, entry: DueEntry): Promise<void> {
    const row = await store.getSchedule(entry.id)
    if (!row || row.paused || row.nextRunAt === null) return // removed or paused since
    if (row.nextRunAt !== entry.at || row.nextRunAt > Date.now()) {
      await cache.put([{ id: row.id, at: row.nextRunAt }]) // stale entry: the store knows better
      return
    }
    const now = Date.now()
    const plan = planTicks(row, now, this.thresholdMs, this.maxCatchUp)
    if (plan.ticks.length > 0) {
      await this.host.write(plan.ticks.map((tick) => this.taskFor(row, tick, now)))
    }
    if (plan.skipped > 0) {
      this.logger.warn(
        { schedule: row.id, misfire: row.misfire, skipped: plan.skipped, fired: plan.ticks.length },
        'schedule misfired: ticks were missed while no scheduler ran',
      )
    }
    const last = plan.ticks.length > 0 ? plan.ticks[plan.ticks.length - 1]! : null
    const moved = await store.advanceSchedule(row.id, entry.at, plan.next, last)
    if (moved && plan.next !== null) await cache.put([{ id: row.id, at: plan.next }])
    if (moved)
      for (const l of this.listeners) l({ scheduleId: row.id, ticks: plan.ticks, skipped: plan.skipped })
  }

  private taskFor(row: ScheduleRow, tick: number, now: number): NewTask & { schedule: string } {
    return {
      id: uuidV7(now),
      name: row.taskName,
      tenantId: row.tenantId,
      payload: row.input,
      priority: row.options.priority ?? TASK_DEFAULTS.priority,
      runAt: now,
      timeoutMs: row.options.timeoutMs ?? TASK_DEFAULTS.timeoutMs,
      maxRetries: row.options.maxRetries ?? TASK_DEFAULTS.maxRetries,
      createdAt: now,
      idempotencyKey: tickKey(row.id, tick),
      idempotencyTtlMs: this.host.idempotencyTtlMs,
      schedule: row.id,
      lockKey: row.options.lockKey,
    }
  }
}

export { tickKey } from './tick-key.js'

/**
 * Which ticks from the schedule's pending one (`nextRunAt`) up to `now` become tasks. A pending tick
 * at most `thresholdMs` old is ordinary lag: it and every tick after it up to `now` fire. A pending
 * tick older than that means the schedule misfired (no scheduler ran when it was due), and then every
 * tick up to `now` is a missed tick, handled by the policy as a whole (as Quartz does): `skip` fires
 * none of them, `run-once` exactly one (keyed by the first missed tick, so two schedulers firing the
 * same misfire make the same task), `catch-up` each of the latest `maxCatchUp`. The schedule then
 * moves to the first tick after `now`.
 */
export function planTicks(
  row: Pick<ScheduleRow, 'cron' | 'timezone' | 'misfire' | 'nextRunAt'>,
  now: number,
  thresholdMs: number,
  maxCatchUp: number,
): { ticks: number[]; skipped: number; next: number | null } {
  const first = row.nextRunAt!
  if (first >= now - thresholdMs) {
    const onTime = ticksBetween(row.cron, row.timezone, first, now, MAX_ON_TIME)
    // More on-time ticks than one round fires: go on from the last one fired.
    const from = onTime.more ? onTime.ticks[onTime.ticks.length - 1]! : now
    return { ticks: onTime.ticks, skipped: 0, next: nextTick(row.cron, row.timezone, from) }
  }
  // Missed ticks are [first, now]; walk back from now so a long outage costs little.
  const interval = CronExpressionParser.parse(row.cron, { tz: row.timezone, currentDate: new Date(now + 1) })
  const latest: number[] = []
  const keep = row.misfire === 'catch-up' ? maxCatchUp : 0
  let count = 0
  for (;;) {
    let t: number
    try {
      t = interval.prev().getTime()
    } catch {
      break
    }
    if (t < first) break
    count += 1
    if (latest.length < keep) latest.push(t)
    else if (count >= 1000) break // enough to report; a long outage of a fast schedule costs no more
  }
  const ticks = row.misfire === 'run-once' ? [first] : row.misfire === 'catch-up' ? latest.reverse() : []
  return { ticks, skipped: Math.max(0, count - ticks.length), next: nextTick(row.cron, row.timezone, now) }
}

/** Creates a scheduler for a queue; `start()` it in as many processes as you like. */
export function createScheduler(options: SchedulerOptions): Scheduler {
  return new Scheduler(options)
}
