/**
 * `queue.events` (issue 17): `on` listens from now on through one subscription shared by the
 * queue (and by `waitFor`); `subscribe({ from })` opens a subscription of its own that resumes after
 * an event id. All of them end when the queue closes.
 */
import type { Broker } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import type { Logger } from '../logger.js'
import { type EventSettings, EventSubscription } from './subscription.js'
import type { QueueEventListener, QueueEventName } from './types.js'
import { QUEUE_EVENT_NAMES } from './types.js'

export interface SubscribeOptions {
  /** Resume after this event id (an `eventId` seen before, or `lastId`). Default: from now on. */
  from?: string
}

const EVENT_ID = /^\d{1,20}-\d{1,20}$/

export class QueueEventHub {
  private shared: EventSubscription | undefined
  private readonly open = new Set<EventSubscription>()

  constructor(
    private readonly broker: Broker,
    private readonly settings: EventSettings,
    private readonly logger: Logger,
    private readonly assertOpen: () => void,
  ) {}

  /**
   * Calls `listener` for every `event` of this queue from now on, in whichever process it happened.
   * Answers a function that removes the listener.
   * @example queue.events.on('completed', (e) => console.log(e.taskId, 'done'))
   */
  on<E extends QueueEventName>(event: E, listener: QueueEventListener<E>): () => void {
    if (!QUEUE_EVENT_NAMES.includes(event)) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        `unknown queue event ${JSON.stringify(event)}: use ${QUEUE_EVENT_NAMES.join(', ')}`,
      )
    }
    return this.live().on(event, listener)
  }

  /**
   * A subscription of its own, from `from` (resumes after that event id; events older than the
   * stream keeps are gone) or from now on. Close it when done (the queue's `close` does too).
   */
  subscribe(options: SubscribeOptions = {}): EventSubscription {
    this.assertOpen()
    if (options.from !== undefined && (typeof options.from !== 'string' || !EVENT_ID.test(options.from))) {
      throw new TaskloomError('INVALID_OPTIONS', `from must be an event id such as "1700000000000-0"`, {
        issues: [{ path: 'from', message: 'expected an event id' }],
      })
    }
    return this.track(new EventSubscription(this.broker, this.settings, this.logger, options.from))
  }

  /** The queue's shared subscription, started on first use. */
  live(): EventSubscription {
    this.assertOpen()
    this.shared ??= this.track(new EventSubscription(this.broker, this.settings, this.logger))
    return this.shared
  }

  async close(): Promise<void> {
    await Promise.all([...this.open].map((sub) => sub.close()))
    this.open.clear()
    this.shared = undefined
  }

  private track(sub: EventSubscription): EventSubscription {
    this.open.add(sub)
    const close = sub.close.bind(sub)
    sub.close = async () => {
      this.open.delete(sub)
      if (this.shared === sub) this.shared = undefined
      await close()
    }
    return sub
  }
}
