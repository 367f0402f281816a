/** What a worker reads from the queue it serves; not part of the public surface. */
import type { Broker, EnqueueResult, NewTask } from '../broker/broker.js'
import type { Logger } from '../logger.js'

// Symbol.for: the CJS build bundles each entry (root, observability) with its own copy of this module.
export const internals: unique symbol = Symbol.for('taskloom.queue.internals')

export interface QueueInternals {
  broker: Broker
  logger: Logger
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
  /**
   * Called after each written batch of submits with the tasks and the broker's (or store's) answers,
   * item by item (metrics and logs listen here). A throwing listener is ignored.
   */
  submitted: Set<(tasks: readonly NewTask[], results: readonly EnqueueResult[]) => void>
}
