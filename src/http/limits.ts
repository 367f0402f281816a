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
}

export interface Limits {
  /** Takes one token from the bucket `key` whose capacity (and refill per minute) is `perMinute`. */
  take(key: string, perMinute: number): Promise<TakeResult>
  /** Adds `by` to a counter that expires after `ttlMs`; answers the new value. */
  add(key: string, by: number, ttlMs: number): Promise<number>
  read(key: string): Promise<number>
}

const WINDOW_US = 60_000_000
const SHA = createHash('sha1').update(tokenBucket).digest('hex')

export class RedisLimits implements Limits {
  constructor(
    private readonly redis: Redis,
    private readonly prefix = 'tl:api:',
  ) {}

  async take(key: string, perMinute: number): Promise<TakeResult> {
    const keys = [`${this.prefix}rl:{${key}}`]
    const args = [perMinute, WINDOW_US, 1]
    let reply: number[]
    try {
      reply = (await this.redis.evalsha(SHA, 1, ...keys, ...args)) as number[]
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      reply = (await this.redis.eval(tokenBucket, 1, ...keys, ...args)) as number[]
    }
    const [allowed, remaining, nextUs, fullUs] = reply.map(Number) as [number, number, number, number]
    return {
      allowed: allowed === 1,
      limit: perMinute,
      remaining,
      retryAfterMs: Math.ceil(nextUs / 1000),
      resetMs: Math.ceil(fullUs / 1000),
    }
  }

  async add(key: string, by: number, ttlMs: number): Promise<number> {
    const k = `${this.prefix}n:{${key}}`
    const [[, value]] = (await this.redis.multi().incrby(k, by).pexpire(k, ttlMs).exec()) as [
      [unknown, number],
      unknown,
    ]
    return Number(value)
  }

  async read(key: string): Promise<number> {
    return Number((await this.redis.get(`${this.prefix}n:{${key}}`)) ?? 0)
  }
}

/** The same token bucket in this process's memory. */
export class MemoryLimits implements Limits {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly counters = new Map<string, { value: number; expiresAt: number }>()

  async take(key: string, perMinute: number): Promise<TakeResult> {
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
    }
  }

  async add(key: string, by: number, ttlMs: number): Promise<number> {
    const now = Date.now()
    const c = this.counters.get(key)
    const value = (c && c.expiresAt > now ? c.value : 0) + by
    this.counters.set(key, { value, expiresAt: now + ttlMs })
    return value
  }

  async read(key: string): Promise<number> {
    const c = this.counters.get(key)
    return c && c.expiresAt > Date.now() ? c.value : 0
  }

  private sweep(now: number): void {
    for (const [key, b] of this.buckets) if (now - b.at > 60_000) this.buckets.delete(key)
  }
}

/** The calendar month (UTC) a quota counts in, e.g. '2026-11', and ms until the next one. */
export function quotaPeriod(now = new Date()): { period: string; endsInMs: number; resetsAt: Date } {
  const y = now.getUTCFullYear()
  const m = now.getUTCMonth()
  const resetsAt = new Date(Date.UTC(y, m + 1, 1))
  return {
    period: `${y}-${String(m + 1).padStart(2, '0')}`,
    endsInMs: resetsAt.getTime() - now.getTime(),
    resetsAt,
  }
}
