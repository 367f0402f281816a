/**
 * The broker conformance and change-feed suites against a Redis Cluster of the test's own (three
 * masters, one replica each): every script and multi-key command must touch one slot (the server
 * refuses a script that reaches into another slot, and a CROSSSLOT command), blocking reads must go
 * to the node that serves the queue, and scripts load on whichever node runs them.
 */
import { Cluster, Redis } from 'ioredis'
import { describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis/redis-broker.js'
import { RedisLimits } from '../../src/http/limits.js'
import { canRunPrivateServers } from '../helpers/private-servers.js'
import { uniqueName } from '../helpers/services.js'
import { useCluster } from '../helpers/use-cluster.js'
import { changeFeedConformance } from './change-feed.js'
import { brokerConformance } from './conformance.js'

describe.skipIf(!(await canRunPrivateServers()))('Redis Cluster', () => {
  const cluster = useCluster()
  const seeds = () => ({ cluster: cluster().seeds })
  brokerConformance('RedisBroker on a Cluster', (name) => new RedisBroker(name, { redis: seeds() }))
  changeFeedConformance('RedisBroker on a Cluster', (name, options) => {
    return new RedisBroker(name, { redis: seeds(), ...options })
  })

  it('takes HTTP rate-limit tokens and counts quotas in one slot per tenant', async () => {
    const client = new Cluster(
      cluster().seeds.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })),
    )
    try {
      const limits = new RedisLimits(client, `tl:api:${uniqueName('limits')}:`)
      const buckets = [
        { name: 'tenant', perMinute: 2 },
        { name: 'key:k1', perMinute: 5 },
      ]
      const counters = [{ name: 'month', ttlMs: 60_000 }]
      const first = await limits.take('t:acme', buckets, counters)
      expect(first).toMatchObject({ allowed: true, counted: [1] })
      expect((await limits.take('t:acme', buckets, counters)).allowed).toBe(true)
      expect((await limits.take('t:acme', buckets, counters)).allowed).toBe(false)
      expect(await limits.add('t:acme', 'month', 3, 60_000)).toBe(5)
      expect(await limits.read('t:acme', 'month')).toBe(5)
    } finally {
      await client.quit()
    }
  })

  it('keeps every key of a queue on the master that serves its slot', async () => {
    const name = uniqueName('placement')
    const broker = new RedisBroker(name, { redis: seeds(), changeFeed: true })
    const now = Date.now()
    const task = (id: string) => ({
      ...{ id, name: 'x', tenantId: 't', payload: '{}', priority: 'normal' as const, runAt: now },
      ...{ timeoutMs: 1000, maxRetries: 1, createdAt: now, idempotencyTtlMs: 60_000 },
    })
    await broker.enqueue([task('a'), { ...task('b'), idempotencyKey: 'k', lockKey: 'l' }], now)
    await broker.claim('w', 1, 30_000, now)
    await broker.close()
    const owner = await cluster().masterOf(`tl:{${name}}:`)
    const held = await Promise.all(
      (await cluster().members())
        .filter((m) => m.master)
        .map(async (m) => {
          const node = new Redis(m.port, '127.0.0.1')
          const keys = await node.keys(`tl:{${name}}:*`)
          await node.quit()
          return [m.port, keys.length] as const
        }),
    )
    expect(held.filter(([, n]) => n > 0)).toEqual([[owner, expect.any(Number)]])
    expect(held.find(([port]) => port === owner)![1]).toBeGreaterThan(3)
  })
})
