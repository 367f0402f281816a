/**
 * Drains the broker's change feed into the store: read a batch, apply it in one multi-row UPDATE,
 * acknowledge. Every durable queue process runs one; entries a dead (or frozen) process left
 * unacknowledged are taken over after `reclaimAfterMs`, and a live process that takes longer to
 * apply a batch (the store slow or down) keeps holding it meanwhile. The takeover is short because
 * a change waiting in Redis is lost if Redis loses its data: a completion that never reached the
 * store runs again. While PostgreSQL is down the feed simply grows in Redis, and the store catches
 * up when it is back. Replays are harmless: the store never moves a task back.
 */
import type { Broker } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import type { Store } from '../store/store.js'
import { type TaskOutput, toErrorInfo } from '../task/model.js'

export interface StoreSyncOptions {
  /** Entries per read. Default 500. */
  batch?: number
  /** How long one read waits for changes. Default 1,000 ms. */
  blockMs?: number
  /**
   * After how long another process's unacknowledged entries are taken over: a process that died
   * (or froze) while holding them. A live one renews its hold every third of it. Default 2,000 ms.
   */
  reclaimAfterMs?: number
  /**
   * After a read that did not fill a batch, how long from its start before the next read. Changes
   * arriving meanwhile go to PostgreSQL together, in one statement and one commit, instead of one
   * small transaction each. A full batch is followed by the next read at once. Default 100 ms.
   */
  intervalMs?: number
  /** Log lines the store keeps per task (QueueOptions.maxLogLines). Default 1,000. */
  maxLogLines?: number
}

const MAX_PAUSE_MS = 5000
export const DEFAULT_RECLAIM_AFTER_MS = 2000

export class StoreSync {
  private stopped = false
  private loop: Promise<void> | undefined
  private readonly batch: number
  private readonly blockMs: number
  private readonly reclaimAfterMs: number
  private readonly intervalMs: number
  private readonly maxLogLines: number
  /** Ends the current rest early (set while resting). */
  private wake: (() => void) | undefined

  constructor(
    private readonly broker: Broker,
    private readonly store: Store,
    private readonly consumer: string,
    private readonly logger: Logger,
    options: StoreSyncOptions = {},
  ) {
    this.batch = options.batch ?? 500
    this.blockMs = options.blockMs ?? 1000
    this.reclaimAfterMs = options.reclaimAfterMs ?? DEFAULT_RECLAIM_AFTER_MS
    this.intervalMs = options.intervalMs ?? 100
    this.maxLogLines = options.maxLogLines ?? 1000
  }

  start(): void {
    this.loop ??= this.run()
  }

  /** Applies whatever is on the feed now, without waiting for more (used at close). */
  async flush(): Promise<void> {
    for (;;) {
      const { ids, changes, outputs } = await this.broker.readChanges(
        this.consumer,
        this.batch,
        0,
        this.reclaimAfterMs,
      )
      if (ids.length === 0) return
      if (changes.length > 0) await this.store.applyUpdates(changes)
      if (outputs) await this.store.applyOutputs(outputs, this.maxLogLines)
      await this.broker.ackChanges(ids)
    }
  }

  /** Stops reading; the read in progress ends within `blockMs` (or at once when the broker closes). */
  async stop(): Promise<void> {
    this.stopped = true
    this.wake?.()
    await this.loop
  }

  private async run(): Promise<void> {
    let pause = 100
    while (!this.stopped) {
      try {
        const started = Date.now()
        const { ids, changes, outputs } = await this.broker.readChanges(
          this.consumer,
          this.batch,
          this.blockMs,
          this.reclaimAfterMs,
        )
        if (ids.length === 0) continue
        await this.holding(ids, () => this.applyUntilDone(changes, outputs))
        await this.broker.ackChanges(ids)
        pause = 100
        if (ids.length < this.batch) await this.rest(started + this.intervalMs - Date.now())
      } catch (err) {
        if (this.stopped) return
        this.logger.warn({ err: toErrorInfo(err) }, 'reading the change feed failed; retrying')
        await sleep(pause)
        pause = Math.min(pause * 2, MAX_PAUSE_MS)
      }
    }
  }

  /** Waits `ms` (if positive), or less when `stop()` is called meanwhile. */
  private rest(ms: number): Promise<void> {
    if (ms <= 0 || this.stopped) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done() {
        clearTimeout(timer)
        resolve()
      }
      this.wake = done
    })
  }

  /** Runs `apply` while renewing this consumer's hold on `ids`, so no other consumer takes them over. */
  private async holding(ids: readonly string[], apply: () => Promise<void>): Promise<void> {
    const timer = setInterval(() => {
      this.broker.holdChanges(this.consumer, ids).catch(() => {
        // Redis unreachable: the entries may be taken over, and applied twice, which is harmless.
      })
    }, this.reclaimAfterMs / 3)
    try {
      await apply()
    } finally {
      clearInterval(timer)
    }
  }

  /** Retries one batch until the store takes it: the feed entries stay unacknowledged meanwhile. */
  private async applyUntilDone(
    changes: Parameters<Store['applyUpdates']>[0],
    outputs: TaskOutput[] | undefined,
  ): Promise<void> {
    let pause = 100
    for (;;) {
      try {
        if (changes.length > 0) await this.store.applyUpdates(changes)
        // Output after status: a retry of the batch re-applies both, harmlessly.
        if (outputs) await this.store.applyOutputs(outputs, this.maxLogLines)
        return
      } catch (err) {
        if (this.stopped) throw err
        this.logger.warn(
          { err: toErrorInfo(err), changes: changes.length },
          'the store refused updates; retrying',
        )
        await sleep(pause)
        pause = Math.min(pause * 2, MAX_PAUSE_MS)
      }
    }
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
