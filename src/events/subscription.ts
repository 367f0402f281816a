/**
 * One reader of a queue's event stream (issue 17): keeps the broker writing events while it
 * listens, reads after its cursor in a loop (a blocking read on Redis, an in-memory wait on the
 * in-process broker) and hands each event to its listeners, in order. A throwing listener is
 * caught and logged; it never stops the loop.
 *
 * @example
 * const sub = queue.events.subscribe({ from: savedId })
 * sub.on('completed', (e) => save(e.eventId))
 */
import { setMaxListeners } from 'node:events'
import type { Broker } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import { type QueueEventRecord, toErrorInfo } from '../task/model.js'
import type { QueueEventListener, QueueEventName, QueueEvents } from './types.js'

export interface EventSettings {
  maxLen: number
  keepMs: number
}

/** Events per read, and how long one read waits. */
const READ_MAX = 500
const BLOCK_MS = 1000
/** The broker is told of the listener at least this often (a Redis that restarted empty forgets it). */
const RENEW_MAX_MS = 10_000

export class EventSubscription {
  private readonly listeners = new Map<QueueEventName, Set<QueueEventListener<any>>>()
  private readonly taps = new Set<(event: QueueEventRecord) => void>()
  private readonly stop = new AbortController()
  private cursor: string
  private renewTimer: NodeJS.Timeout | undefined
  private loop: Promise<void> | undefined
  /** Resolves once the broker writes events for this subscription and its start is fixed. */
  readonly ready: Promise<void>

  constructor(
    private readonly broker: Broker,
    private readonly settings: EventSettings,
    private readonly logger: Logger,
    from?: string,
  ) {
    this.cursor = from ?? ''
    // Each pending queue.waitFor listens on `closed`; many at once is normal, not a leak.
    setMaxListeners(0, this.stop.signal)
    this.ready = this.start(from)
    this.ready.catch(() => {})
  }

  /** Aborts when the subscription closes. */
  get closed(): AbortSignal {
    return this.stop.signal
  }

  /** The id of the last event handed to the listeners (or the start): resume from it. */
  get lastId(): string {
    return this.cursor
  }

  on<E extends QueueEventName>(event: E, listener: QueueEventListener<E>): () => void {
    const set = this.listeners.get(event) ?? new Set()
    this.listeners.set(event, set)
    set.add(listener)
    return () => set.delete(listener)
  }

  /**
   * Tells the broker again that events are listened to (a Redis that restarted empty forgot it
   * until the next periodic renewal). Resolves once it has.
   */
  async renew(): Promise<void> {
    await this.ready
    await this.broker.listenEvents(this.settings.keepMs, this.settings.maxLen)
  }

  /** Every event, as the broker records it (for waitFor). */
  tap(listener: (event: QueueEventRecord) => void): () => void {
    this.taps.add(listener)
    return () => this.taps.delete(listener)
  }

  async close(): Promise<void> {
    this.stop.abort()
    await this.ready.catch(() => {})
    clearInterval(this.renewTimer)
    await this.loop
  }

  /** Registers the listener and fixes the start; while the broker is unreachable, tries again. */
  private async start(from: string | undefined): Promise<void> {
    const { keepMs, maxLen } = this.settings
    let backoff = 100
    for (;;) {
      try {
        await this.broker.listenEvents(keepMs, maxLen)
        if (from === undefined) this.cursor = await this.broker.lastEventId()
        break
      } catch (err) {
        if (this.stop.signal.aborted) return
        if (backoff === 100)
          this.logger.warn({ err: toErrorInfo(err) }, 'subscribing to queue events failed; retrying')
        await this.pause(backoff)
        backoff = Math.min(backoff * 2, 5000)
      }
    }
    if (this.stop.signal.aborted) return
    this.renewTimer = setInterval(
      () => void this.broker.listenEvents(keepMs, maxLen).catch(() => {}),
      Math.min(Math.floor(keepMs / 3), RENEW_MAX_MS),
    )
    this.renewTimer.unref()
    if (!this.stop.signal.aborted) this.loop = this.run()
  }

  private async run(): Promise<void> {
    let backoff = 100
    let warned = false
    while (!this.stop.signal.aborted) {
      try {
        const events = await this.broker.readEvents(this.cursor, READ_MAX, BLOCK_MS, this.stop.signal)
        for (const event of events) {
          if (this.stop.signal.aborted) return
          this.cursor = event.eventId
          this.dispatch(event)
        }
        backoff = 100
        warned = false
      } catch (err) {
        if (this.stop.signal.aborted) return
        if (!warned) this.logger.warn({ err: toErrorInfo(err) }, 'reading queue events failed; retrying')
        warned = true
        await this.pause(backoff)
        backoff = Math.min(backoff * 2, 5000)
      }
    }
  }

  /** Waits `ms`, or less when the subscription closes meanwhile. */
  private pause(ms: number): Promise<void> {
    const signal = this.stop.signal
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  private dispatch(record: QueueEventRecord): void {
    for (const tap of this.taps) this.safely(() => tap(record), record.type)
    const event = toEvent(record)
    this.emit(record.type, event)
    if (record.type === 'retrying' || record.type === 'dead') {
      this.emit('failed', { ...event, willRetry: record.type === 'retrying' })
    }
  }

  private emit(name: QueueEventName, event: unknown): void {
    const set = this.listeners.get(name)
    if (!set) return
    for (const listener of set) this.safely(() => listener(event as never), name)
  }

  private safely(call: () => void, event: string): void {
    try {
      call()
    } catch (err) {
      this.logger.error({ err: toErrorInfo(err), event }, 'a queue event listener threw')
    }
  }
}

/** The public shape of a recorded event (dates as Date, progress parsed). */
function toEvent(r: QueueEventRecord): QueueEvents[QueueEventName] {
  const event: Record<string, unknown> = {
    eventId: r.eventId,
    taskId: r.taskId,
    name: r.name,
    tenantId: r.tenantId,
    attempt: r.attempt,
    at: new Date(r.at),
  }
  if (r.runAt !== undefined) event.runAt = new Date(r.runAt)
  if (r.error !== undefined) event.error = r.error
  if (r.progress !== undefined) event.progress = JSON.parse(r.progress)
  return event as unknown as QueueEvents[QueueEventName]
}
