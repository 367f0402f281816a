import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createApi } from '../../src/http/index.js'
import { MemoryLimits } from '../../src/http/limits.js'
import { silent } from '../helpers/backends.js'
import { hasPostgres, hasRedis, REDIS_URL } from '../helpers/services.js'
import { RecordingMetrics } from './fakes.js'
import { call, type Stack, sendEmail, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('rate limits and quotas', () => {
  let stack: Stack
  const metrics = new RecordingMetrics()
  beforeAll(async () => {
    stack = await startStack({ worker: false, metrics })
  }, 60_000)
  afterAll(() => stack?.close())

  it('lets exactly 60 of a burst through a 60/min key, then 429 with Retry-After and RateLimit headers', async () => {
    const key = await stack.key('burst', ['task:read'], { rateLimit: 60 })
    const started = performance.now()
    const answers = await Promise.all(
      Array.from({ length: 100 }, () => call(stack.url.express, 'GET', '/quota', { key })),
    )
    const elapsed = performance.now() - started
    const ok = answers.filter((a) => a.status === 200)
    const limited = answers.filter((a) => a.status === 429)
    // One token refills per second; a burst shorter than a second gets the 60 in the bucket, no more.
    // (On a loaded machine the burst can outlast a second: then each whole second adds at most one.)
    if (elapsed < 1000) expect(ok.length).toBe(60)
    expect(ok.length).toBeGreaterThanOrEqual(60)
    expect(ok.length).toBeLessThanOrEqual(60 + Math.floor(elapsed / 1000))
    expect(limited.length).toBe(100 - ok.length)
    for (const a of limited) {
      expect(a.body.code).toBe('RATE_LIMITED')
      expect(a.headers.get('retry-after')).toBe('1')
      expect(a.headers.get('ratelimit-limit')).toBe('60')
      expect(a.headers.get('ratelimit-remaining')).toBe('0')
      expect(Number(a.headers.get('ratelimit-reset'))).toBeGreaterThan(0)
    }
    expect(ok.map((a) => Number(a.headers.get('ratelimit-remaining'))).sort((x, y) => x - y)[0]).toBe(0)
    expect(metrics.limited.filter((t) => t === 'burst').length).toBe(limited.length)
    const audit = await stack.api.audit()
    expect((await audit.list({ tenantId: 'burst', action: 'rate.limited', limit: 1000 })).length).toBe(
      limited.length,
    )
    // After Retry-After, the next request passes.
    await new Promise((r) => setTimeout(r, 1100))
    expect((await call(stack.url.express, 'GET', '/quota', { key })).status).toBe(200)
  })

  it('shares one bucket between API processes on the same Redis', async () => {
    const other = createApi({ queue: stack.queue, tasks: [sendEmail], logger: silent })
    const key = await stack.key('shared-bucket', ['task:read'], { rateLimit: 10 })
    const statuses: number[] = []
    for (let i = 0; i < 14; i++) {
      const api = i % 2 === 0 ? stack.api : other
      const res = await api.handle({ method: 'GET', url: '/quota', headers: { 'x-api-key': key } })
      statuses.push(res.status)
    }
    await other.close()
    expect(statuses.filter((s) => s === 200).length).toBe(10)
    expect(statuses.slice(10)).toEqual([429, 429, 429, 429])
  })

  it('uses the API default (1000/min) for keys without their own limit', async () => {
    const key = await stack.key('default-limit', ['task:read'])
    const r = await call(stack.url.node, 'GET', '/quota', { key })
    expect(r.headers.get('ratelimit-limit')).toBe('1000')
    expect(r.headers.get('ratelimit-policy')).toBe('1000;w=60')
    expect(r.headers.get('ratelimit-remaining')).toBe('999')
  })

  it('stops submissions at the monthly quota with a clear error; replays do not count', async () => {
    const key = await stack.key('quota', ['task:create', 'task:read'], { monthlyQuota: 3 })
    const submit = (i: number) =>
      call(stack.url.fastify, 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { to: 'q@q.co', subject: `s${i}` }, idempotency_key: `q-${i}` },
      })
    expect((await submit(0)).status).toBe(201)
    expect((await submit(1)).status).toBe(201)
    // A replay creates nothing and counts nothing: the third new task still fits.
    expect((await submit(0)).status).toBe(200)
    expect((await submit(2)).status).toBe(201)
    const over = await submit(3)
    expect(over.status).toBe(429)
    expect(over.body.code).toBe('QUOTA_EXCEEDED')
    expect(over.body.detail).toMatch(/monthly quota of 3/)
    expect(Number(over.headers.get('retry-after'))).toBeGreaterThan(0)
    const quota = await call(stack.url.fastify, 'GET', '/quota', { key })
    expect(quota.body).toMatchObject({
      tenant_id: 'quota',
      monthly_quota: null,
      used: 3,
      remaining: null,
      key: { monthly_quota: 3, used: 3, remaining: 0 },
    })
  })

  it('rebuilds a lost quota count from the audit log instead of starting the month over', async () => {
    const key = await stack.key('quota-lost', ['task:create', 'task:read'], { monthlyQuota: 3 })
    const submit = (i: number) =>
      call(stack.url.express, 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { to: 'q@q.co', subject: `lost ${i}` } },
      })
    expect((await submit(0)).status).toBe(201)
    expect((await submit(1)).status).toBe(201)
    // Redis loses the counters (a restart without persistence): only this tenant's are removed.
    const quota = await call(stack.url.express, 'GET', '/quota', { key })
    const redis = new Redis(REDIS_URL)
    try {
      const period = quota.body.period
      const prefix = `tl:api:${stack.queue.name}:n:{t:quota-lost}`
      const counters = [`${prefix}:quota:${period}`, `${prefix}:key:${quota.body.key_id}:quota:${period}`]
      expect(await redis.del(...counters)).toBe(2)
    } finally {
      redis.disconnect()
    }
    // The two earlier submissions still count: /quota says so, one more fits, the next is refused.
    expect((await call(stack.url.express, 'GET', '/quota', { key })).body).toMatchObject({
      used: 2,
      key: { used: 2, remaining: 1 },
    })
    expect((await submit(2)).status).toBe(201)
    const over = await submit(3)
    expect(over.status).toBe(429)
    expect(over.body.code).toBe('QUOTA_EXCEEDED')
    expect((await call(stack.url.express, 'GET', '/quota', { key })).body).toMatchObject({
      used: 3,
      key: { used: 3, remaining: 0 },
    })
  })
})

describe('the in-process token bucket (embedded mode)', () => {
  it('allows the capacity at once, then one token per 60/limit seconds', async () => {
    const limits = new MemoryLimits()
    const results = await Promise.all(
      Array.from({ length: 12 }, () => limits.take('g', [{ name: 'k', perMinute: 10 }])),
    )
    expect(results.filter((r) => r.allowed).length).toBe(10)
    const refused = results.at(-1)!
    expect(refused.allowed).toBe(false)
    expect(refused.buckets[0]!.retryAfterMs).toBeGreaterThan(5000)
    expect(refused.buckets[0]!.retryAfterMs).toBeLessThanOrEqual(6000)
  })
})
