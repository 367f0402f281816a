/** The public view of a task: what `queue.get` answers. */
import type { TaskRecord } from '../broker/broker.js'
import { scheduleOfKey } from '../schedule/tick-key.js'
import type { DependencyFields } from '../task/dependency-model.js'
import type { AttemptRecord, ErrorInfo, Priority, TaskStatus } from '../task/model.js'

/**
 * The dependency fields (see docs/workflows.md), set on tasks that have dependencies, dependents
 * or a flow: `dependsOn` (each with its `onFailure` policy), `dependents`, `waitingFor` (what a
 * pending task still waits for; empty once released) and `flowId`.
 */
export type TaskDependencyInfo = DependencyFields

export interface TaskInfo<Result = unknown> extends TaskDependencyInfo {
  id: string
  name: string
  tenantId: string
  status: TaskStatus
  priority: Priority
  /** The input as submitted. */
  input: unknown
  /** The handler's return value, once completed. */
  result?: Result | undefined
  /** The last failed attempt's error. */
  error?: ErrorInfo | undefined
  /** Attempts started within the current budget (reset by a DLQ retry). */
  attempts: number
  /**
   * Retries actually made: attempts started after the first, over the task's whole life (a DLQ
   * retry's attempts included). 0 for a task that failed its only attempt (`maxRetries` 0).
   */
  retryCount: number
  maxRetries: number
  timeoutMs: number
  createdAt: Date
  /** When it became (or becomes) claimable. */
  runAt: Date
  /** Start of the latest attempt. */
  startedAt?: Date | undefined
  /** When it completed, was dead-lettered, or was cancelled. */
  completedAt?: Date | undefined
  /** From the latest attempt's start to its end, for a completed or a failed (dead) task. */
  durationMs?: number | undefined
  /** Failed attempts, oldest first. */
  history: AttemptRecord[]
  workerId?: string | undefined
  idempotencyKey?: string | undefined
  /** Tasks sharing this key never run at the same time (SubmitOptions.lockKey). */
  lockKey?: string | undefined
  /**
   * While the task waits because a circuit breaker turned it away: the breaker's name (e.g.
   * `'smtp'`, or `'smtp@acme'` for a tenant's own breaker) and when it is let try again. Unset
   * otherwise (from the live record; a deferral spends no attempt).
   */
  deferredBy?: string | undefined
  deferredUntil?: Date | undefined
  /** The cron schedule and tick that submitted it, as the handler sees in `ctx.schedule`. */
  schedule?: { id: string; scheduledAt: Date } | undefined
  /** The latest `ctx.progress` value (issue 17); its log lines are read with `queue.logs(id)`. */
  progress?: number | Record<string, unknown> | undefined
}

const date = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms))

export function toTaskInfo<Result>(r: TaskRecord, decode: (s: string) => unknown): TaskInfo<Result> {
  // The deferral still holds while the task waits for the time it was deferred to.
  const deferred =
    (r.status === 'pending' || r.status === 'queued') &&
    r.deferredBy !== undefined &&
    r.deferredUntil === r.runAt
  return {
    id: r.id,
    name: r.name,
    tenantId: r.tenantId,
    status: r.status,
    priority: r.priority,
    input: decode(r.payload),
    result: r.result === undefined ? undefined : (decode(r.result) as Result),
    error: r.error,
    attempts: r.attempt,
    retryCount: retriesMade(r),
    maxRetries: r.maxRetries,
    timeoutMs: r.timeoutMs,
    createdAt: new Date(r.createdAt),
    runAt: new Date(r.runAt),
    startedAt: date(r.startedAt),
    completedAt: date(r.finishedAt),
    durationMs:
      (r.status === 'completed' || r.status === 'failed') &&
      r.startedAt !== undefined &&
      r.finishedAt !== undefined
        ? r.finishedAt - r.startedAt
        : undefined,
    history: r.history,
    workerId: r.workerId,
    idempotencyKey: r.idempotencyKey,
    lockKey: r.lockKey,
    deferredBy: deferred ? r.deferredBy : undefined,
    deferredUntil: deferred ? new Date(r.runAt) : undefined,
    schedule: scheduleOfKey(r.idempotencyKey),
    progress: r.progress === undefined ? undefined : (JSON.parse(r.progress) as TaskInfo['progress']),
    ...dependencyInfo(r),
  }
}

function dependencyInfo(r: TaskRecord): TaskDependencyInfo {
  if (r.dependsOn === undefined && r.dependents === undefined && r.flowId === undefined) return {}
  return {
    dependsOn: r.dependsOn?.map(({ knownStatus: _k, ...edge }) => edge) ?? [],
    dependents: r.dependents ?? [],
    waitingFor: r.waitingFor ?? [],
    flowId: r.flowId,
  }
}

/**
 * Attempts started, less the first. Every ended attempt that did not complete is in the history
 * (failures, timeouts, lost leases); a running or completed task adds the attempt in hand.
 */
function retriesMade(r: TaskRecord): number {
  const inHand = r.status === 'processing' || r.status === 'completed' ? 1 : 0
  return Math.max(0, r.history.length + inHand - 1)
}
