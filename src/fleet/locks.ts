/**
 * Distributed locks over the queue's broker: `queue.lock(key, { ttlMs })` and `queue.withLock`.
 * Every successful acquisition of a key gets a fencing token strictly greater than the key's previous
 * ones (drawn from the queue's one fencing counter, which in durable mode also survives Redis losing
 * or rolling back its data), so a holder that outlived its lock can be refused by the system it
 * writes to.
 *
 * ```ts
 * await queue.withLock(`invoice:${id}`, async (lock, signal) => {
 *   await db.write({ ...row, fence: lock.fencingToken }, { signal }) // the db rejects a smaller fence
 * }, { ttlMs: 10_000, waitMs: 2_000 })
 * ```
 *
 * `withLock` keeps the lock while `fn` runs (a watchdog extends it by `ttlMs` every third of `ttlMs`,
 * as Redisson's does), so `ttlMs` bounds how long a crashed holder keeps the key, not how long `fn`
 * may take; `signal` aborts with LOCK_LOST the moment the lock is known lost.
 */
import type { Broker } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'

export interface LockOptions {
  /** How long the lock is held unless extended. Default 30,000 ms. */
  ttlMs?: number
  /** How long to wait for a busy lock before LOCK_BUSY. Default 0 (fail at once). */
  waitMs?: number
  /** Pause between attempts while waiting. Default 50 ms. */
  retryMs?: number
  /**
   * `withLock` only: extend the lock by `ttlMs` every `ttlMs / 3` while `fn` runs. Default true; with
   * false the lock lapses after `ttlMs` whatever `fn` is doing (the signal still aborts then).
   */
  renew?: boolean
}

export interface Lock {
  readonly key: string
  /** Strictly greater than every token issued before for this key. */
  readonly fencingToken: number
  /** When the lock lapses unless extended (epoch ms). */
  readonly expiresAt: number
  /** Holds the lock `ms` from now. LOCK_LOST when it already lapsed (and may be someone else's). */
  extend(ms: number): Promise<void>
  /** Frees the lock. LOCK_LOST when it already lapsed. */
  release(): Promise<void>
}

const MAX_TTL_MS = 86_400_000
/** How long an acquisition waits, beyond `waitMs`, for a durable queue's Redis to be re-based. */
const BLOCKED_WAIT_MS = 10_000

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length < 1 || key.length > 512) {
    throw new TaskloomError('INVALID_OPTIONS', 'a lock key must be a string of 1-512 characters', {
      issues: [{ path: 'key', message: 'a string of 1-512 characters' }],
    })
  }
}

function checkMs(name: string, value: unknown, min: number, max: number): number {
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    throw new TaskloomError('INVALID_OPTIONS', `${name} must be an integer from ${min} to ${max}`, {
      issues: [{ path: name, message: `an integer from ${min} to ${max}` }],
    })
  }
  return value as number
}

export async function acquireLock(broker: Broker, key: string, options: LockOptions = {}): Promise<Lock> {
  checkKey(key)
  const ttlMs = checkMs('ttlMs', options.ttlMs ?? 30_000, 1, MAX_TTL_MS)
  const waitMs = checkMs('waitMs', options.waitMs ?? 0, 0, MAX_TTL_MS)
  const retryMs = checkMs('retryMs', options.retryMs ?? 50, 1, 60_000)
  const deadline = Date.now() + waitMs
  // A durable queue refuses locks while Redis is being re-based or gets its next block of tokens
  // (moments, normally): that wait is not the lock being busy, and is bounded on its own.
  const blockedDeadline = deadline + BLOCKED_WAIT_MS
  for (;;) {
    const now = Date.now()
    const grant = await broker.acquireLock(key, ttlMs, now)
    if (grant.acquired) return makeLock(broker, key, grant.token, grant.expiresAt)
    if (grant.blocked !== undefined) {
      if (now >= blockedDeadline) {
        throw new TaskloomError(
          'BROKER_UNAVAILABLE',
          `lock ${JSON.stringify(key)}: Redis is being re-based after it restarted or lost data; try again`,
        )
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(grant.heldUntil - now, 1)))
      continue
    }
    const left = deadline - Date.now()
    if (left <= 0) {
      throw new TaskloomError(
        'LOCK_BUSY',
        `lock ${JSON.stringify(key)} is held by another owner until ${new Date(grant.heldUntil).toISOString()}`,
        { retryable: true },
      )
    }
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(retryMs, left, Math.max(grant.heldUntil - now, 1))),
    )
  }
}

function makeLock(broker: Broker, key: string, token: number, expiresAt: number): Lock {
  let released = false
  const lost = (what: string) =>
    new TaskloomError(
      'LOCK_LOST',
      `cannot ${what} lock ${JSON.stringify(key)} (token ${token}): it expired or was released`,
    )
  const lock = {
    key,
    fencingToken: token,
    expiresAt,
    async extend(ms: number): Promise<void> {
      checkMs('ms', ms, 1, MAX_TTL_MS)
      if (released) throw lost('extend')
      const now = Date.now()
      if (!(await broker.extendLock(key, token, ms, now))) throw lost('extend')
      lock.expiresAt = now + ms
    },
    async release(): Promise<void> {
      if (released) throw lost('release')
      released = true
      if (!(await broker.releaseLock(key, token, Date.now()))) throw lost('release')
    },
  }
  return lock
}

/**
 * Runs `fn` holding the lock and releases it on every path. While `fn` runs a watchdog renews the
 * lock (unless `renew: false`), and `fn`'s signal aborts with LOCK_LOST as soon as the lock is lost:
 * a renewal refused (the key expired or was taken), or its expiry passed with no renewal confirmed
 * (Redis unreachable, or an event loop blocked for longer than `ttlMs`). If the lock was lost,
 * `withLock` rejects with LOCK_LOST even when `fn` finished (the work ran unprotected for a while).
 */
export async function withLock<T>(
  broker: Broker,
  key: string,
  fn: (lock: Lock, signal: AbortSignal) => T | Promise<T>,
  options: LockOptions = {},
): Promise<T> {
  const renew = options.renew ?? true
  if (typeof renew !== 'boolean') {
    throw new TaskloomError('INVALID_OPTIONS', 'renew must be a boolean', {
      issues: [{ path: 'renew', message: 'a boolean' }],
    })
  }
  const lock = await acquireLock(broker, key, options)
  const ttlMs = options.ttlMs ?? 30_000
  const dog = new Watchdog(lock, renew ? ttlMs : null)
  let result: T
  try {
    result = await fn(lock, dog.signal)
  } catch (err) {
    dog.stop()
    await lock.release().catch(() => {})
    throw err
  }
  dog.stop()
  if (dog.signal.aborted) {
    await lock.release().catch(() => {})
    throw dog.signal.reason
  }
  await lock.release()
  return result
}

/**
 * Keeps one lock while `withLock`'s `fn` runs: one renewal in flight at a time, every third of the
 * TTL (so two renewals may fail before the lock lapses), and a timer on the expiry last confirmed,
 * which aborts even when a renewal hangs.
 */
class Watchdog {
  private readonly controller = new AbortController()
  private renewTimer: NodeJS.Timeout | undefined
  private expiryTimer: NodeJS.Timeout | undefined
  private stopped = false
  readonly signal = this.controller.signal

  constructor(
    private readonly lock: Lock,
    private readonly ttlMs: number | null,
  ) {
    this.armExpiry()
    this.scheduleRenewal()
  }

  stop(): void {
    this.stopped = true
    clearTimeout(this.renewTimer)
    clearTimeout(this.expiryTimer)
  }

  private lose(why: string): void {
    if (this.stopped || this.signal.aborted) return
    this.stop()
    this.controller.abort(
      new TaskloomError(
        'LOCK_LOST',
        `lock ${JSON.stringify(this.lock.key)} (token ${this.lock.fencingToken}) was lost while its holder ran: ${why}`,
      ),
    )
  }

  private armExpiry(): void {
    clearTimeout(this.expiryTimer)
    const left = this.lock.expiresAt - Date.now()
    if (left <= 0) {
      this.lose('it expired before a renewal was confirmed')
      return
    }
    this.expiryTimer = setTimeout(() => this.armExpiry(), left)
  }

  private scheduleRenewal(): void {
    if (this.ttlMs === null || this.stopped) return
    const ttlMs = this.ttlMs
    this.renewTimer = setTimeout(
      () => {
        this.lock.extend(ttlMs).then(
          () => {
            if (this.stopped) return
            this.armExpiry()
            this.scheduleRenewal()
          },
          (err: unknown) => {
            if (err instanceof TaskloomError && err.code === 'LOCK_LOST') {
              this.lose('a renewal was refused (the lock had expired or was released)')
            } else {
              // Unreachable broker: try again; the expiry timer aborts if none gets through in time.
              this.scheduleRenewal()
            }
          },
        )
      },
      Math.max(1, Math.floor(ttlMs / 3)),
    )
  }
}
