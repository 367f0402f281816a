/**
 * Group commit for store writes: calls made in the same tick, or while a write is in flight, share
 * the next write. At low load a call waits one `setImmediate`; under load batches grow by
 * themselves, so a burst of N calls costs a few statements, not N.
 */
import { TaskloomError } from '../errors.js'

export interface GroupCommitOptions<I, O> {
  /** Writes one batch; answers one output per input, in order. */
  write: (items: I[]) => Promise<O[]>
  /** Most items in one write. A larger call is split. Default 1000. */
  maxItems?: number
  /** Writes in flight at once. Default 1. */
  concurrency?: number
  /**
   * Whether a failed shared write should be retried call by call, so one caller's bad data fails
   * only that caller. Default: never (every caller in the batch gets the error).
   */
  isolate?: (err: unknown) => boolean
  /**
   * How long a call may wait for its write. Past it the call fails with `timeoutError()`; if its
   * items were still waiting for a write they are dropped (never written). Default: no bound.
   */
  timeoutMs?: number | undefined
  timeoutError?: () => unknown
}

interface Unit<I, O> {
  items: readonly I[]
  resolve(out: O[]): void
  reject(err: unknown): void
}

export class GroupCommit<I, O> {
  readonly #write: (items: I[]) => Promise<O[]>
  readonly #maxItems: number
  readonly #concurrency: number
  readonly #isolate: (err: unknown) => boolean
  readonly #timeoutMs: number | undefined
  readonly #timeoutError: () => unknown
  #waiting: Unit<I, O>[] = []
  #inFlight = 0
  #scheduled = false
  #closed = false
  #idle: (() => void)[] = []

  constructor(options: GroupCommitOptions<I, O>) {
    this.#write = options.write
    this.#maxItems = Math.max(1, options.maxItems ?? 1000)
    this.#concurrency = Math.max(1, options.concurrency ?? 1)
    this.#isolate = options.isolate ?? (() => false)
    this.#timeoutMs = options.timeoutMs
    this.#timeoutError =
      options.timeoutError ??
      (() =>
        new TaskloomError('STORE_UNAVAILABLE', `the write was not done within ${options.timeoutMs} ms`, {
          retryable: true,
        }))
  }

  /** Queues items for the next write; resolves with their outputs, in order. */
  add(items: readonly I[]): Promise<O[]> {
    if (this.#closed) return Promise.reject(new TaskloomError('CLOSED', 'the store is closed'))
    if (items.length === 0) return Promise.resolve([])
    const parts: Promise<O[]>[] = []
    for (let i = 0; i < items.length; i += this.#maxItems) {
      const slice = items.slice(i, i + this.#maxItems)
      parts.push(
        new Promise<O[]>((resolve, reject) => this.#waiting.push(this.#unit(slice, resolve, reject))),
      )
    }
    this.#schedule()
    return parts.length === 1 ? parts[0]! : Promise.all(parts).then((outs) => outs.flat())
  }

  /** A unit that settles once: by its write, or by the deadline (which drops it if not yet taken). */
  #unit(items: readonly I[], resolve: (out: O[]) => void, reject: (err: unknown) => void): Unit<I, O> {
    const ms = this.#timeoutMs
    if (ms === undefined) return { items, resolve, reject }
    let settled = false
    const unit: Unit<I, O> = {
      items,
      resolve: (out) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        resolve(out)
      },
      reject: (err) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        reject(err)
      },
    }
    const timer = setTimeout(() => {
      const at = this.#waiting.indexOf(unit)
      if (at >= 0) {
        this.#waiting.splice(at, 1)
        if (this.#waiting.length === 0 && this.#inFlight === 0)
          for (const done of this.#idle.splice(0)) done()
      }
      unit.reject(this.#timeoutError())
    }, ms)
    return unit
  }

  /** Resolves once everything added so far is written. */
  drain(): Promise<void> {
    if (this.#waiting.length === 0 && this.#inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.#idle.push(resolve))
  }

  /** Refuses new calls, then waits for the ones already queued. */
  close(): Promise<void> {
    this.#closed = true
    return this.drain()
  }

  #schedule(): void {
    if (this.#scheduled || this.#inFlight >= this.#concurrency) return
    this.#scheduled = true
    setImmediate(() => {
      this.#scheduled = false
      this.#flush()
    })
  }

  #flush(): void {
    while (this.#waiting.length > 0 && this.#inFlight < this.#concurrency) {
      const batch = this.#take()
      this.#inFlight += 1
      void this.#run(batch).finally(() => {
        this.#inFlight -= 1
        if (this.#waiting.length > 0) this.#flush()
        else if (this.#inFlight === 0) for (const resolve of this.#idle.splice(0)) resolve()
      })
    }
  }

  /** Whole calls, oldest first, up to `maxItems` (always at least one call). */
  #take(): Unit<I, O>[] {
    let count = 0
    let n = 0
    while (n < this.#waiting.length) {
      const size = this.#waiting[n]!.items.length
      if (n > 0 && count + size > this.#maxItems) break
      count += size
      n += 1
    }
    return this.#waiting.splice(0, n)
  }

  async #run(batch: Unit<I, O>[]): Promise<void> {
    const items = batch.flatMap((unit) => unit.items)
    try {
      const out = await this.#write(items)
      if (out.length !== items.length) {
        throw new TaskloomError('INTERNAL', `a batched write answered ${out.length} of ${items.length} items`)
      }
      let offset = 0
      for (const unit of batch) {
        unit.resolve(out.slice(offset, offset + unit.items.length))
        offset += unit.items.length
      }
    } catch (err) {
      if (batch.length === 1 || !this.#isolate(err)) {
        for (const unit of batch) unit.reject(err)
        return
      }
      for (const unit of batch) {
        try {
          unit.resolve(await this.#write([...unit.items]))
        } catch (unitErr) {
          unit.reject(unitErr)
        }
      }
    }
  }
}
