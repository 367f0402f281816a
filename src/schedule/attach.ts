/**
 * What a queue gains from this feature, built in one place so `Queue` only wires it: `schedules`,
 * `definitions`, the scheduler's view of the queue, and worker registration. Redis (when the queue
 * has one) carries the due cache and the definition cache; its connection opens on first use.
 */
import type { EnqueueResult, NewTask } from '../broker/broker.js'
import { connectRedis, type RedisHandle, type RedisInput } from '../broker/redis/connection.js'
import { queueKeys } from '../broker/redis/keys.js'
import { DefinitionCache, type Definitions } from '../definitions/definitions.js'
import type { Logger } from '../logger.js'
import type { Store } from '../store/store.js'
import type { TaskDefinition } from '../task/define-task.js'
import { type DueCache, MemoryDueCache, RedisDueCache } from './due-cache.js'
import type { SchedulerHost } from './scheduler.js'
import { createSchedules, type Schedules } from './schedules.js'

export interface QueueParts {
  name: string
  redis: RedisInput | undefined
  /** Longest wait of one Redis call (the queue's `brokerTimeoutMs`). */
  redisTimeoutMs?: number | undefined
  /** The open store, or INVALID_STATE naming `what` when the queue has none. */
  store(what: string): Promise<Store>
  /** Whether the queue has a store (after it is ready). */
  hasStore(): Promise<boolean>
  write(rows: (NewTask & { schedule: string })[]): Promise<EnqueueResult[]>
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  defaultTenantId: string
  idempotencyTtlMs: number
  definitionCacheTtlMs: number
  logger: Logger
}

export interface QueueExtras {
  schedules: Schedules
  definitions: Definitions
  scheduling: SchedulerHost
  /** Records a worker's tasks; skipped without a store; failures are logged, never thrown. */
  registerDefinitions(tasks: readonly TaskDefinition<any, any>[]): Promise<void>
  close(): Promise<void>
}

export function attachSchedules(q: QueueParts): QueueExtras {
  const keys = queueKeys(q.name)
  let connection: RedisHandle | undefined
  const redis = (): RedisHandle | undefined => {
    if (q.redis === undefined) return undefined
    connection ??= connectRedis(q.redis, { timeoutMs: q.redisTimeoutMs })
    return connection
  }
  let dueCache: DueCache | undefined
  const cache = (): DueCache => {
    const r = redis()
    dueCache ??= r ? new RedisDueCache(r.client, keys) : new MemoryDueCache()
    return dueCache
  }
  const definitions = new DefinitionCache({
    store: () => q.store('task definitions'),
    redis:
      q.redis === undefined
        ? undefined
        : {
            get client() {
              return redis()!.client
            },
            subscriber: () => redis()!.duplicate(),
            keys,
          },
    ttlMs: q.definitionCacheTtlMs,
    logger: q.logger,
  })
  const schedules = createSchedules({
    store: () => q.store('schedules'),
    cache,
    encode: q.encode,
    decode: q.decode,
    defaultTenantId: q.defaultTenantId,
    resolve: (name) => definitions.resolve(name),
    logger: q.logger,
  })
  return {
    schedules,
    definitions,
    scheduling: {
      store: () => q.store('schedules'),
      cache,
      write: q.write,
      idempotencyTtlMs: q.idempotencyTtlMs,
      logger: q.logger,
    },
    async registerDefinitions(tasks) {
      if (tasks.length === 0) return
      try {
        if (await q.hasStore()) await definitions.register(...tasks)
      } catch (err) {
        q.logger.warn({ err }, 'could not register task definitions; API processes may not know them')
      }
    },
    async close() {
      await definitions.close()
      await connection?.close()
    },
  }
}
