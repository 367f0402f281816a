import { Redis } from 'ioredis'
import { describe } from 'vitest'
import type { Broker } from '../../src/broker/broker.js'
import { RedisBroker } from '../../src/broker/redis/redis-broker.js'
import { hasRedis, REDIS_URL } from '../helpers/services.js'
import { changeFeedConformance } from './change-feed.js'
import { brokerConformance } from './conformance.js'

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
  changeFeedConformance(
    'RedisBroker',
    (name, options) => new RedisBroker(name, { redis: REDIS_URL, ...options }),
    async (broker) => {
      await broker.close()
      await dropKeys(broker)
    },
  )
})
