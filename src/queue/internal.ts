/** What a worker reads from the queue it serves; not part of the public surface. */
import type { Broker } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import type { WorkerRow } from '../store/store.js'

export const internals: unique symbol = Symbol('taskloom.queue.internals')

export interface QueueInternals {
  broker: Broker
  logger: Logger
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  /** Writes heartbeats to the workers table when the queue has a store; a no-op otherwise. */
  recordWorkers(rows: readonly WorkerRow[]): Promise<void>
}
