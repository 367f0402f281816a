/** What a worker reads from the queue it serves; not part of the public surface. */

import type { Broker, EnqueueResult, NewTask } from '../broker/broker.js'
import type { RedisClient } from '../broker/redis/connection.js'
import type { Logger } from '../logger.js'
import type { SchedulerHost } from '../schedule/scheduler.js'
import type { PostgresStore } from '../store/postgres/postgres-store.js'
import type { WorkerRow } from '../store/store.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { OpenState } from './opener.js'

// Symbol.for: the CJS build bundles each entry (root, observability) with its own copy of this module.
export const internals: unique symbol = Symbol.for('taskloom.queue.internals')

export interface QueueInternals {
  broker: Broker
  logger: Logger
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  /** What a scheduler of this queue uses (src/schedule/scheduler.ts). */
  scheduling: SchedulerHost
  /** Records a worker's task definitions; a queue without a store skips it. Never throws. */
  registerDefinitions(tasks: readonly TaskDefinition<any, any>[]): Promise<void>
  /** Writes heartbeats to the workers table when the queue has a store; a no-op otherwise. */
  recordWorkers(rows: readonly WorkerRow[]): Promise<void>
  /**
   * Called after each written batch of submits with the tasks and the broker's (or store's) answers,
   * item by item (metrics and logs listen here). A throwing listener is ignored.
   */
  submitted: Set<(tasks: readonly NewTask[], results: readonly EnqueueResult[]) => void>
  /** The queue's Redis command connection, when its broker is Redis. */
  redis: RedisClient | undefined
  /** The queue's store once open (after `ready()`), when it has one. */
  store(): PostgresStore | undefined
  /**
   * Test hook (fault tests only): called in durable mode after a batch of submits is stored and
   * before it is handed to the broker, e.g. to SIGKILL the process at that point. Unset: nothing.
   */
  afterInsert?: ((rows: readonly NewTask[]) => void) | undefined
  /** Where opening the queue stands: still trying (and why), open, or failed for good. */
  openState(): OpenState
  /** Bounds of `ctx.log` (QueueOptions.maxLogLines, maxLogLineLength). */
  output: { maxLogLines: number; maxLogLineLength: number }
}
