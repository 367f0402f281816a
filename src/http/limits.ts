/**
 * Request rate limits (token buckets) and monthly submission counters per tenant, with a key's own
 * limits as tighter sub-limits: in Redis when the queue has Redis (shared by every API process),
 * else in this process (embedded mode). A tenant's buckets and counters form one group (one Redis
 * hash tag), so a request is checked against all of them in one atomic step.
 */
import { createHash } from 'node:crypto'
import { BROKER_TIMEOUT_MS, bounded, type RedisClient } from '../broker/redis/connection.js'
import tokenBucket from './token-bucket.lua'

/** A bucket to take a token from: its name within the group and its capacity per minute. */
export interface BucketSpec {
  name: string
  perMinute: number
}

/** A counter to add 1 to when the request passes (a monthly quota). */
export interface CounterSpec {
  name: string
  ttlMs: number
}

export interface BucketState {
  name: string
  limit: number
  /** Whole tokens left after this request. */
  remaining: number
  /** Milliseconds until the next request would be allowed by this bucket (0 when one is). */
  retryAfterMs: number
  /** Milliseconds until the bucket is full again. */
  resetMs: number
}

export interface TakeResult {
  /** Every bucket had a token (and one was taken from each); a refused request takes none. */
  allowed: boolean
  buckets: BucketState[]
  /** When allowed: each counter's value after adding 1, in the order given. */
  counted: number[]
}

export interface Limits {
  /**
   * Takes one token from every bucket of `group` listed, or none if any is empty; when it passes,
   * adds 1 to each counter, in the same atomic step.
   */
  take(group: string, buckets: readonly BucketSpec[], counters?: readonly CounterSpec[]): Promise<TakeResult>
  /** Adds `by` to a counter of `group` that expires after `ttlMs`; answers the new value. */
  add(group: string, name: string, by: number, ttlMs: number): Promise<number>
  read(group: string, name: string): Promise<number>
}

const WINDOW_US = 60_000_000
const SHA = createHash('sha1').update(tokenBucket).digest('hex')

/** Keys: `<prefix>rl:{t:<tenant>}:<bucket>` and `<prefix>n:{t:<tenant>}:<counter>`. */
export class RedisLimits implements Limits {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix = 'tl:api:',
  ) {}

  async take(
    group: string,
    buckets: readonly BucketSpec[],
    counters: readonly CounterSpec[] = [],
  ): Promise<TakeResult> {
    const keys = [
      ...buckets.map((b) => `${this.prefix}rl:{${group}}:${b.name}`),
      ...counters.map((c) => this.counterKey(group, c.name)),
    ]
    const args = [
      buckets.length,
      WINDOW_US,
      1,
      ...buckets.map((b) => b.perMinute),
      ...counters.map((c) => c.ttlMs),
    ]
    let reply: number[]
    try {
      reply = (await this.redis.evalsha(SHA, keys.length, ...keys, ...args)) as number[]
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      reply = (await this.redis.eval(tokenBucket, keys.length, ...keys, ...args)) as number[]
    }
    const values = reply.map(Number)
    const allowed = values[0] === 1
    return {
      allowed,
      buckets: buckets.map((b, i) => ({
        name: b.name,
        limit: b.perMinute,
        remaining: values[1 + 3 * i]!,
        retryAfterMs: Math.ceil(values[2 + 3 * i]! / 1000),
        resetMs: Math.ceil(values[3 + 3 * i]! / 1000),
      })),
      counted: allowed ? values.slice(1 + 3 * buckets.length) : [],
    }
  }

  private counterKey(group: string, name: string): string {
    return `${this.prefix}n:{${group}}:${name}`
  }

  async add(group: string, name: string, by: number, ttlMs: number): Promise<number> {
    const k = this.counterKey(group, name)
    const exec = this.redis.multi().incrby(k, by).pexpire(k, ttlMs).exec()
    const [[, value]] = (await bounded(exec, BROKER_TIMEOUT_MS)) as [[unknown, number], unknown]
    return Number(value)
  }

  async read(group: string, name: string): Promise<number> {
    return Number((await this.redis.get(this.counterKey(group, name))) ?? 0)
  }
}

/** The same buckets and counters in this process's memory. */
export class MemoryLimits implements Limits {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()
  private readonly counters = new Map<string, { value: number; expiresAt: number }>()

  async take(
    group: string,
    specs: readonly BucketSpec[],
    counters: readonly CounterSpec[] = [],
  ): Promise<TakeResult> {
    const now = performance.now()
    const states = specs.map((spec) => {
      const key = `${group}|${spec.name}`
      const rate = spec.perMinute / 60_000
      const b = this.buckets.get(key) ?? { tokens: spec.perMinute, at: now }
      b.tokens = Math.min(spec.perMinute, b.tokens + Math.max(0, now - b.at) * rate)
      b.at = now
      this.buckets.set(key, b)
      return { spec, b, rate }
    })
    const allowed = states.every((s) => s.b.tokens >= 1)
    if (allowed) for (const s of states) s.b.tokens -= 1
    if (this.buckets.size > 100_000) this.sweep(now)
    const counted: number[] = []
    if (allowed) for (const c of counters) counted.push(await this.add(group, c.name, 1, c.ttlMs))
    return {
      allowed,
      buckets: states.map(({ spec, b, rate }) => ({
        name: spec.name,
        limit: spec.perMinute,
        remaining: Math.floor(b.tokens),
        retryAfterMs: b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / rate),
        resetMs: Math.ceil((spec.perMinute - b.tokens) / rate),
      })),
      counted,
    }
  }

  async add(group: string, name: string, by: number, ttlMs: number): Promise<number> {
    const now = Date.now()
    const k = `${group}|${name}`
    const c = this.counters.get(k)
    const value = (c && c.expiresAt > now ? c.value : 0) + by
    this.counters.set(k, { value, expiresAt: now + ttlMs })
    return value
  }

  async read(group: string, name: string): Promise<number> {
    const c = this.counters.get(`${group}|${name}`)
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
