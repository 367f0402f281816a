/** What a worker reads from the queue it serves; not part of the public surface. */
import type { Redis } from 'ioredis'
import type { Broker } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import type { PostgresStore } from '../store/postgres/postgres-store.js'

export const internals: unique symbol = Symbol('taskloom.queue.internals')

export interface QueueInternals {
  broker: Broker
  logger: Logger
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  /** The queue's Redis command connection, when its broker is Redis. */
  redis: Redis | undefined
  /** The queue's store once open (after `ready()`), when it has one. */
  store(): PostgresStore | undefined
}
