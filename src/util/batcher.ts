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
}

export class Batcher<I, O> {
  private queue: Pending<I, O>[] = []
  private inFlight = 0
  private scheduled = false
  private readonly idle: (() => void)[] = []
  private readonly concurrency: number

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
      if (ms === undefined) this.queue.push({ item, resolve, reject })
      else this.queue.push(this.bounded(item, resolve, reject, ms))
      this.schedule()
    })
  }

  private bounded(
    item: I,
    resolve: (value: O) => void,
    reject: (reason: unknown) => void,
    ms: number,
  ): Pending<I, O> {
    let settled = false
    const settle = () => {
      if (settled) return false
      settled = true
      clearTimeout(timer)
      return true
    }
    const pending: Pending<I, O> = {
      item,
      resolve: (value) => settle() && resolve(value),
      reject: (reason) => settle() && reject(reason),
    }
    const timer = setTimeout(() => {
      const at = this.queue.indexOf(pending)
      if (at >= 0) {
        this.queue.splice(at, 1)
        if (this.queue.length === 0 && this.inFlight === 0) for (const done of this.idle.splice(0)) done()
      }
      const error = this.options.timeoutError?.(ms) ?? new Error(`no answer within ${ms} ms`)
      pending.reject(error)
    }, ms)
    return pending
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
      this.run(batch.map((p) => p.item))
        .then(
          (answers) => {
            for (let i = 0; i < batch.length; i++) batch[i]!.resolve(answers[i] as O)
          },
          (err: unknown) => {
            for (const p of batch) p.reject(err)
          },
        )
        .finally(() => {
          this.inFlight -= 1
          if (this.queue.length > 0) this.flush()
          else if (this.inFlight === 0) for (const resolve of this.idle.splice(0)) resolve()
        })
    }
  }
}
