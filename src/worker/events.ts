/**
 * Typed, namespaced worker events. A throwing listener is caught and logged; it never breaks the
 * worker's loop (graphile-worker's safeEmit).
 */
import type { ClaimedTask, FlowScope } from '../broker/broker.js'
import type { Logger } from '../logger.js'
import { type ErrorInfo, toErrorInfo } from '../task/model.js'

export interface WorkerEvents {
  'task:started': { task: ClaimedTask }
  'task:completed': { task: ClaimedTask; result: unknown; durationMs: number }
  'task:failed': {
    task: ClaimedTask
    error: ErrorInfo
    willRetry: boolean
    retryAt: number | null
    /** How long the failed attempt ran. */
    durationMs: number
  }
  /** The task's lease was lost (expired and taken by another worker); its outcome was discarded. */
  'task:stale': { task: ClaimedTask; stage: 'extend' | 'complete' | 'fail' }
  'worker:error': { error: unknown; stage: string }
  /** Given back unrun, without spending an attempt, until `runAt` (its circuit breaker is open). */
  'task:deferred': { task: ClaimedTask; breaker: string; runAt: number }
  /** Given back unrun, without spending an attempt: its handler was rate-limited upstream. */
  'task:rate-limited': { task: ClaimedTask; scope: FlowScope; until: number }
  /** The autoscaler changed the worker's concurrency. */
  'worker:scaled': { from: number; to: number; queueDepth: number; reason: 'queue-deep' | 'queue-shallow' }
  /** A worker was found silent for 3 heartbeats; its leases were made to expire at once. */
  'worker:reaped': { workerId: string; tasks: number }
  /** The event loop was blocked for `blockedMs` (a handler doing synchronous work). */
  'worker:blocked': { blockedMs: number }
}

export type WorkerEventName = keyof WorkerEvents
type Listener<E extends WorkerEventName> = (payload: WorkerEvents[E]) => void

export class WorkerEmitter {
  private readonly listeners = new Map<WorkerEventName, Set<Listener<any>>>()

  constructor(private readonly logger: Logger) {}

  on<E extends WorkerEventName>(event: E, listener: Listener<E>): () => void {
    const set = this.listeners.get(event) ?? new Set()
    this.listeners.set(event, set)
    set.add(listener)
    return () => set.delete(listener)
  }

  emit<E extends WorkerEventName>(event: E, payload: WorkerEvents[E]): void {
    const set = this.listeners.get(event)
    if (!set) return
    for (const listener of set) {
      try {
        listener(payload)
      } catch (err) {
        this.logger.error({ err: toErrorInfo(err), event }, 'a worker event listener threw')
      }
    }
  }
}
