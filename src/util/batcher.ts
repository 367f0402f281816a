/**
 * Group commit: calls made while a flush is running (or within the same tick) share the next one.
 * At low load a call flushes on the next microtask; under load batches grow by themselves, so a
 * burst of N calls costs a few round trips, not N.
 */
export interface BatcherOptions {
  /** Largest batch handed to `run`. */
  maxBatch: number
  /** Flushes allowed in flight at once. Default 1. */
  concurrency?: number
  /**
   * Asked at each `add`: how long that item may wait for its answer (undefined: no bound). Past it
   * the item fails with `timeoutError()`; one still queued is dropped (never flushed), one already
   * being flushed keeps going, and its answer is ignored.
   */
  timeoutMs?: () => number | undefined
  timeoutError?: (ms: number) => unknown
}

interface Pending<I, O> {
  item: I
  resolve(value: O): void
  reject(reason: unknown): void
  /** When it fails with the timeout error (epoch ms), `ms` after it was added; unset: never. */
  deadline?: number
  ms?: number
  done?: boolean
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = []
  private inFlight = 0
  private scheduled = false
  private readonly idle: (() => void)[] = []
  private readonly concurrency: number
  /** Batches being flushed, for the sweep of items past their deadline. */
  private readonly flushing = new Set<Pending<I, O>[]>()
  /** One timer for every bounded item (a timer per item costs each submit more than the rest). */
  private sweepTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions,
  ) {
    this.concurrency = options.concurrency ?? 1
  }

  /** Queues one item; resolves with its own answer from the batch. */
  add(item: I): Promise<O> {
    const ms = this.options.timeoutMs?.()
    return new Promise<O>((resolve, reject) => {
      const pending: Pending<I, O> = { item, resolve, reject }
      if (ms !== undefined) {
        pending.deadline = Date.now() + ms
        pending.ms = ms
        this.sweepTimer ??= this.sweepIn(ms)
      }
      this.queue.push(pending)
      this.schedule()
    })
  }

  private settle(p: Pending<I, O>, ok: boolean, value: unknown): void {
    if (p.done) return
    p.done = true
    if (ok) p.resolve(value as O)
    else p.reject(value)
  }

  /**
   * Fails every item past its deadline: one still queued leaves the queue (it is never flushed), one
   * being flushed is answered now and its flush's answer ignored. Then waits for the next deadline.
   */
  private sweep(): void {
    this.sweepTimer = undefined
    const now = Date.now()
    let next = Infinity
    const expired = (p: Pending<I, O>) => {
      if (p.done || p.deadline === undefined) return false
      if (p.deadline > now) {
        next = Math.min(next, p.deadline)
        return false
      }
      const ms = p.ms ?? 0
      this.settle(p, false, this.options.timeoutError?.(ms) ?? new Error(`no answer within ${ms} ms`))
      return true
    }
    this.queue = this.queue.filter((p) => !expired(p))
    for (const batch of this.flushing) for (const p of batch) expired(p)
    if (this.queue.length === 0 && this.inFlight === 0) for (const done of this.idle.splice(0)) done()
    if (next !== Infinity) this.sweepTimer = this.sweepIn(Math.max(1, next - now))
  }

  /** The sweep never keeps the process alive: what it bounds is work that does. */
  private sweepIn(ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => this.sweep(), ms)
    timer.unref()
    return timer
  }

  /** Items waiting or being flushed. */
  get size(): number {
    return this.queue.length + this.inFlight
  }

  /** Resolves once everything added so far has been flushed. */
  drain(): Promise<void> {
    if (this.queue.length === 0 && this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idle.push(resolve))
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.concurrency) return
    this.scheduled = true
    queueMicrotask(() => {
      this.scheduled = false
      this.flush()
    })
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.concurrency) {
      // What waits is shared among the free slots, so the flushes overlap instead of one large
      // flush leaving the other slots idle (its callers all come back at once, behind it).
      const share = Math.ceil(this.queue.length / (this.concurrency - this.inFlight))
      const batch = this.queue.splice(0, Math.min(this.options.maxBatch, share))
      this.inFlight += 1
      this.flushing.add(batch)
      this.run(batch.map((p) => p.item))
        .then(
          (answers) => {
            for (let i = 0; i < batch.length; i++) this.settle(batch[i]!, true, answers[i])
          },
          (err: unknown) => {
            for (const p of batch) this.settle(p, false, err)
          },
        )
        .finally(() => {
          this.flushing.delete(batch)
          this.inFlight -= 1
          if (this.queue.length > 0) this.flush()
          else if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve()
        })
    }
  }
}
