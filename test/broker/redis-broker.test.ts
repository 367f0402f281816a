import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import type { Broker } from '../../src/broker/broker.js'
import { RedisBroker } from '../../src/broker/redis/redis-broker.js'
import { hasRedis, REDIS_URL } from '../helpers/services.js'
import { changeFeedConformance } from './change-feed.js'
import { brokerConformance } from './conformance.js'
import { dependencyConformance } from './dependencies.js'
import { flowConformance } from './flow-conformance.js'

const up = await hasRedis()

/** Deletes every key of the broker's queue (they all share its hash tag). */
async function dropKeys(broker: Broker): Promise<void> {
  const redis = new Redis(REDIS_URL)
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `tl:{${broker.queueName}}:*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
  await redis.quit()
}

describe.skipIf(!up)('Redis', () => {
  brokerConformance(
    'RedisBroker',
    (name) => new RedisBroker(name, { redis: REDIS_URL }),
    async (broker) => {
      await broker.close()
      await dropKeys(broker)
    },
  )
  dependencyConformance(
    'RedisBroker',
    (name) => new RedisBroker(name, { redis: REDIS_URL }),
    async (broker) => {
      await broker.close()
      await dropKeys(broker)
    },
  )
  flowConformance(
    'RedisBroker',
    (name, flow) => new RedisBroker(name, { redis: REDIS_URL, flow }),
    async (broker) => {
      await broker.close()
      await dropKeys(broker)
    },
  )
  changeFeedConformance(
    'RedisBroker',
    (name, options) => new RedisBroker(name, { redis: REDIS_URL, ...options }),
    async (broker) => {
      await broker.close()
      await dropKeys(broker)
    },
  )

  describe('RedisBroker fenced', () => {
    it('judges a completion only against data re-based for this server, waiting until it is', async () => {
      const name = `fenced-settle-${randomUUID()}`
      const broker = new RedisBroker(name, { redis: REDIS_URL, changeFeed: true, fenced: true })
      const admin = new Redis(REDIS_URL)
      try {
        await broker.ensureEpoch(Date.now(), 10_000)
        await broker.raiseFences(100, 1_000_000)
        await broker.markEpoch(Date.now(), 'done', 10_000)
        const now = Date.now()
        const task = {
          id: randomUUID(),
          name: 'x',
          tenantId: 't',
          payload: '{}',
          priority: 'normal' as const,
          runAt: now,
          timeoutMs: 1000,
          maxRetries: 1,
          createdAt: now,
          idempotencyTtlMs: 0,
        }
        await broker.enqueue([task], now)
        const [claimed] = (await broker.claim('w', 1, 60_000, now)).tasks
        // As after a restart: the marker names another server until this one is re-based.
        const base = `tl:{${name}}:base`
        const run = await admin.hget(base, 'run')
        await admin.hset(base, 'run', 'another-server')
        let settled = false
        const completion = broker
          .complete([{ id: claimed!.id, token: claimed!.token, result: '1' }], now)
          .finally(() => (settled = true))
        await new Promise((r) => setTimeout(r, 300))
        expect(settled).toBe(false)
        expect((await admin.hget(`tl:{${name}}:task:${claimed!.id}`, 's')) ?? '').toBe('processing')
        await admin.hset(base, 'run', run!)
        expect(await completion).toEqual(['ok'])
      } finally {
        await broker.close()
        await dropKeys(broker)
        admin.disconnect()
      }
    })
  })

  it("expires a completed task's log lines with its record", async () => {
    const broker = new RedisBroker(`logs-expire-${randomUUID()}`, { redis: REDIS_URL, retentionMs: 5_000 })
    const admin = new Redis(REDIS_URL)
    try {
      const now = Date.now()
      const id = randomUUID()
      await broker.enqueue(
        [
          {
            id,
            name: 'x',
            tenantId: 't',
            payload: '{}',
            priority: 'normal',
            runAt: now,
            timeoutMs: 1000,
            maxRetries: 0,
            createdAt: now,
            idempotencyTtlMs: 0,
          },
        ],
        now,
      )
      const [claimed] = (await broker.claim('w', 1, 60_000, now)).tasks
      await broker.report([{ id, token: claimed!.token, log: 'hello' }], 10, now)
      const logs = `tl:{${broker.queueName}}:logs:${id}`
      expect(await admin.pttl(logs)).toBe(-1)
      await broker.complete([{ id, token: claimed!.token, result: '1' }], now)
      const ttl = await admin.pttl(logs)
      expect(ttl).toBeGreaterThan(0)
      expect(ttl).toBeLessThanOrEqual(5_000)
      expect(Math.abs(ttl - (await admin.pttl(`tl:{${broker.queueName}}:task:${id}`)))).toBeLessThan(100)
    } finally {
      await broker.close()
      await dropKeys(broker)
      admin.disconnect()
    }
  })
})
