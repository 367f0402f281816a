/**
 * A Redis Cluster master SIGKILLed under load (see failover-scenario.ts), and a Sentinel-managed
 * primary the same way: clients follow the promoted replica without a restart, and in durable mode
 * every acknowledged task completes, once.
 */
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { createQueue, type Queue, TaskloomError } from '../../src/index.js'
import { durableJob as job, silentLogger as silent } from '../fixtures/durable-common.js'
import { type PrivateSentinel, startPrivateSentinel } from '../helpers/private-sentinel.js'
import { canRunPrivateServers } from '../helpers/private-servers.js'
import { DATABASE_URL, uniqueName } from '../helpers/services.js'
import { useCluster } from '../helpers/use-cluster.js'
import { runFailover } from './failover-scenario.js'

const canRun = await canRunPrivateServers()

describe.skipIf(!canRun)('Redis Cluster: a master killed while durable tasks are submitted and run', () => {
  const cluster = useCluster()
  afterEach(async () => {
    await Promise.all(queues.splice(0).map((q) => q.close()))
  })
  const queues: Queue[] = []
  const redisOnly = (waitReplicas: number) => {
    const queue = createQueue({
      name: uniqueName('wait-replicas'),
      redis: { cluster: cluster().seeds, waitReplicas },
      brokerTimeoutMs: 1000,
      logger: silent,
    })
    queues.push(queue)
    return queue
  }

  it('waitReplicas: a submit resolves once a replica has the task', async () => {
    const queue = redisOnly(1)
    const task = await queue.submit(job, { n: 1 })
    // The replica of the queue's master holds the task hash the moment submit resolved.
    const port = await cluster().masterOf(`tl:{${queue.name}}:`)
    const members = await cluster().members()
    const master = members.find((m) => m.port === port)
    const replica = members.find((m) => m.replicaOf === master?.id)!
    const reader = new Redis(replica.port, '127.0.0.1')
    try {
      await reader.readonly() // a cluster replica answers reads of its master's slots only after READONLY
      expect(await reader.hget(`tl:{${queue.name}}:task:${task.id}`, 's')).toBe('queued')
    } finally {
      reader.disconnect()
    }
  })

  it('waitReplicas: a submit fails with the retryable BROKER_UNAVAILABLE when too few replicas acknowledge', async () => {
    const queue = redisOnly(2)
    const err = await queue.submit(job, { n: 1 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TaskloomError)
    expect((err as TaskloomError).code).toBe('BROKER_UNAVAILABLE')
    expect((err as TaskloomError).message).toMatch(/only 1 of 2 replicas/)
  })

  it('follows the promoted replica; every acknowledged task completes once', async () => {
    await runFailover({
      label: 'cluster',
      redis: { cluster: cluster().seeds },
      postgresUrl: DATABASE_URL,
      killPrimary: async (name) => {
        await cluster().killMasterOf(`tl:{${name}}:`)
      },
    })
  }, 180_000)
})

describe.skipIf(!canRun)(
  'Redis Sentinel: the primary killed while durable tasks are submitted and run',
  () => {
    it('follows the promoted replica; every acknowledged task completes once', async () => {
      let sentinel: PrivateSentinel | undefined
      try {
        sentinel = await startPrivateSentinel()
        const s = sentinel
        await runFailover({
          label: 'sentinel',
          redis: { sentinels: s.sentinels, name: s.name },
          postgresUrl: DATABASE_URL,
          killPrimary: async () => {
            await s.killPrimary()
          },
        })
      } finally {
        await sentinel?.stop()
      }
    }, 180_000)
  },
)
