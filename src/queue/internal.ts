/** What a worker reads from the queue it serves; not part of the public surface. */
import type { Broker } from '../broker/broker.js'
import type { Logger } from '../logger.js'

export const internals: unique symbol = Symbol('taskloom.queue.internals')

export interface QueueInternals {
  broker: Broker
  logger: Logger
  encode(value: unknown, taskName: string): string
  decode(text: string): unknown
}
