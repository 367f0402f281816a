/**
 * Opening a durable queue (its store, then the Redis-loss check) when PostgreSQL or Redis may not
 * be there yet: an attempt that fails because a server is unreachable is retried with backoff
 * (100 ms doubling to 5 s) until one succeeds or `openTimeoutMs` passes; any other failure (an
 * outdated schema, bad options, a refused password) ends the open at once. Callers are never held
 * longer than the bound while it retries: they get the retryable STORE_UNAVAILABLE with the last
 * failure as its cause. The first failure is logged once at WARN and the success after it once at
 * INFO, with how long the open took.
 */
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import { orTimeout, TIMED_OUT } from '../util/or-timeout.js'
import { unavailable } from '../util/unavailable.js'

export type OpenState =
  | { state: 'opening'; since: number; attempts: number; lastError: TaskloomError | undefined }
  | { state: 'open' }
  | { state: 'failed'; error: TaskloomError }

const FIRST_DELAY_MS = 100
const MAX_DELAY_MS = 5000

export class Opener {
  private current: OpenState = { state: 'opening', since: Date.now(), attempts: 0, lastError: undefined }
  private readonly cancelled = new AbortController()
  private firstFailed: (() => void) | undefined
  /** Settles when the first attempt has failed (never, when it succeeds). */
  private readonly firstFailure = new Promise<void>((resolve) => {
    this.firstFailed = resolve
  })

  constructor(
    private readonly attempt: () => Promise<void>,
    private readonly discard: () => Promise<void>,
    private readonly logger: Logger,
    /** Give up after this long. Default: never. */
    private readonly timeoutMs: number | undefined,
    /** Longest a caller waits while the open is being retried. */
    private readonly waitMs: number,
  ) {}

  state(): OpenState {
    return this.current
  }

  /** Stops retrying (the queue is closing): the open ends with CLOSED. */
  cancel(): void {
    this.cancelled.abort()
  }

  /** A queue with nothing to open (no store). */
  skip(): Promise<void> {
    this.current = { state: 'open' }
    return Promise.resolve()
  }

  async open(): Promise<void> {
    const since = Date.now()
    let delay = FIRST_DELAY_MS
    for (let attempts = 1; ; attempts++) {
      try {
        await this.attempt()
        if (attempts > 1) {
          this.logger.info({ attempts, waited_ms: Date.now() - since }, 'queue opened after retrying')
        }
        this.current = { state: 'open' }
        return
      } catch (thrown) {
        await this.discard()
        const err = typed(thrown)
        const left =
          this.timeoutMs === undefined ? Number.POSITIVE_INFINITY : since + this.timeoutMs - Date.now()
        if (this.cancelled.signal.aborted)
          return this.fail(new TaskloomError('CLOSED', 'the queue was closed while it opened'))
        if (!err.retryable) return this.fail(err)
        if (left <= 0) {
          return this.fail(
            new TaskloomError(
              'STORE_UNAVAILABLE',
              `the queue could not open within ${this.timeoutMs} ms: ${err.message}`,
              {
                cause: err,
                retryable: false,
              },
            ),
          )
        }
        this.current = { state: 'opening', since, attempts, lastError: err }
        this.firstFailed?.()
        if (attempts === 1) {
          this.logger.warn(
            { err, open_timeout_ms: this.timeoutMs ?? null },
            'opening the queue failed: a server is unreachable; retrying with backoff until it answers',
          )
        }
        await sleep(Math.min(delay, left), this.cancelled.signal)
        if (this.cancelled.signal.aborted)
          return this.fail(new TaskloomError('CLOSED', 'the queue was closed while it opened'))
        delay = Math.min(delay * 2, MAX_DELAY_MS)
      }
    }
  }

  /**
   * What `queue.ready()` answers: the open itself while its first attempt runs (a slow migration
   * is not an outage), the final error once it failed, and while it retries, at most `waitMs` of
   * waiting before STORE_UNAVAILABLE.
   */
  async ready(opening: Promise<void>): Promise<void> {
    if (this.current.state !== 'opening') return opening
    // Wait out the first attempt, however long (a slow migration is not an outage).
    if (this.current.lastError === undefined) await Promise.race([opening, this.firstFailure])
    const now = this.current
    if (now.state !== 'opening') return opening
    const out = await orTimeout(opening, this.waitMs)
    if (out !== TIMED_OUT) return
    const last = (this.current.state === 'opening' && this.current.lastError) || now.lastError!
    throw new TaskloomError(
      last.code === 'BROKER_UNAVAILABLE' ? 'BROKER_UNAVAILABLE' : 'STORE_UNAVAILABLE',
      `the queue is not open yet (retrying since ${new Date(now.since).toISOString()}): ${last.message}`,
      { cause: last, retryable: true },
    )
  }

  private fail(error: TaskloomError): never {
    this.current = { state: 'failed', error }
    if (error.code !== 'CLOSED')
      this.logger.error({ err: error }, 'opening the queue failed for good; it cannot serve')
    throw error
  }
}

/** An open failure as a TaskloomError: unreachable servers retryable, anything else as it says. */
function typed(err: unknown): TaskloomError {
  const mapped = unavailable(err)
  if (mapped instanceof TaskloomError) return mapped
  const message = mapped instanceof Error ? mapped.message : String(mapped)
  return new TaskloomError('INTERNAL', message, { cause: mapped, retryable: false })
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
    function done() {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
  })
}
