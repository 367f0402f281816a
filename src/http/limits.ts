/**
 * Per-key request rate limits (token bucket) and monthly submission counters, in Redis when the
 * queue has Redis (shared by every API process), else in this process (embedded mode).
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import tokenBucket from './token-bucket.lua'

export interface TakeResult {
  allowed: boolean
  limit: number
  /** Whole tokens left after this request. */
  remaining: number
  /** Milliseconds until the next request would be allowed (0 when one is). */
  retryAfterMs: number
  /** Milliseconds until the bucket is full again. */
  resetMs: number
  /** With `count`: the counter's value after adding 1. */
  counted?: number
}

/** A counter to add 1 to in the same round trip as the token (the monthly quota). */
export interface CountAlong {
  key: string
  ttlMs: number
}

export interface Limits {
  /**
   * Takes one token from the bucket `key` whose capacity (and refill per minute) is `perMinute`;
   * with `count`, also adds 1 to that counter (one round trip for both).
   */
  take(key: string, perMinute: number, count?: CountAlong): Promise<TakeResult>
  /** Adds `by` to a counter that expires after `ttlMs`; answers the new value. */
  add(key: string, by: number, ttlMs: number, bucket?: string): Promise<number>
  /** `bucket`: the counter was counted along with that bucket's tokens (`take`'s `count`). */
  read(key: string, bucket?: string): Promise<number>
}

const WINDOW_US = 60_000_000
const SHA = createHash('sha1').update(tokenBucket).digest('hex')

export class RedisLimits implements Limits {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'tl:api:',
  ) {}

  async take(key: string, perMinute: number, count?: CountAlong): Promise<TakeResult> {
    // The counter shares the bucket's hash tag, so the script touches one slot.
    const keys = count ? [this.bucketKey(key), this.counterKey(count.key, key)] : [this.bucketKey(key)]
    const args = count ? [perMinute, WINDOW_US, 1, count.ttlMs] : [perMinute, WINDOW_US, 1]
    let reply: number[]
    try {
      reply = (await this.redis.evalsha(SHA, keys.length, ...keys, ...args)) as number[]
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      reply = (await this.redis.eval(tokenBucket, keys.length, ...keys, ...args)) as number[]
    }
    const [allowed, remaining, nextUs, fullUs, counted] = reply.map(Number) as number[]
    return {
      allowed: allowed === 1,
      limit: perMinute,
      remaining: remaining!,
      retryAfterMs: Math.ceil(nextUs! / 1000),
      resetMs: Math.ceil(fullUs! / 1000),
      ...(count ? { counted: counted! } : {}),
    }
  }

  private bucketKey(key: string): string {
    return `${this.prefix}rl:{${key}}`
  }

  /** Counters named `<bucket>|<name>` live in the bucket's slot; others in their own. */
  private counterKey(name: string, bucket?: string): string {
    return bucket === undefined ? `${this.prefix}n:{${name}}` : `${this.prefix}n:{${bucket}}:${name}`
  }

  async add(key: string, by: number, ttlMs: number, bucket?: string): Promise<number> {
    const k = this.counterKey(key, bucket)
    const [[, value]] = (await this.redis.multi().incrby(k, by).pexpire(k, ttlMs).exec()) as [
      [unknown, number],
      unknown,
    ]
    return Number(value)
  }

  async read(key: string, bucket?: string): Promise<number> {
    return Number((await this.redis.get(this.counterKey(key, bucket))) ?? 0)
  }
}

/** The same token bucket in this process's memory. */
export class MemoryLimits implements Limits {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly counters = new Map<string, { value: number; expiresAt: number }>()

  async take(key: string, perMinute: number, count?: CountAlong): Promise<TakeResult> {
    const counted = count ? await this.add(count.key, 1, count.ttlMs, key) : undefined
    const now = performance.now()
    const rate = perMinute / 60_000
    const b = this.buckets.get(key) ?? { tokens: perMinute, at: now }
    b.tokens = Math.min(perMinute, b.tokens + (now - b.at) * rate)
    b.at = now
    const allowed = b.tokens >= 1
    if (allowed) b.tokens -= 1
    this.buckets.set(key, b)
    if (this.buckets.size > 100_000) this.sweep(now)
    return {
      allowed,
      limit: perMinute,
      remaining: Math.floor(b.tokens),
      retryAfterMs: allowed ? 0 : Math.ceil((1 - b.tokens) / rate),
      resetMs: Math.ceil((perMinute - b.tokens) / rate),
      ...(counted !== undefined ? { counted } : {}),
    }
  }

  async add(key: string, by: number, ttlMs: number, bucket?: string): Promise<number> {
    const now = Date.now()
    const k = `${bucket ?? ''}|${key}`
    const c = this.counters.get(k)
    const value = (c && c.expiresAt > now ? c.value : 0) + by
    this.counters.set(k, { value, expiresAt: now + ttlMs })
    return value
  }

  async read(key: string, bucket?: string): Promise<number> {
    const c = this.counters.get(`${bucket ?? ''}|${key}`)
    return c && c.expiresAt > Date.now() ? c.value : 0
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(key)
  }
}

/** The calendar month (UTC) a quota counts in, e.g. '2026-11', its start, and ms until the next. */
export function quotaPeriod(now = new Date()): {
  period: string
  endsInMs: number
  startsAt: Date
  resetsAt: Date
} {
  const y = now.getUTCFullYear()
  const m = now.getUTCMonth()
  const resetsAt = new Date(Date.UTC(y, m + 1, 1))
  return {
    period: `${y}-${String(m + 1).padStart(2, '0')}`,
    endsInMs: resetsAt.getTime() - now.getTime(),
    startsAt: new Date(Date.UTC(y, m, 1)),
    resetsAt,
  }
}
