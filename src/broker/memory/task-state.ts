/**
 * The in-process broker's record of one task: the public `TaskRecord` plus the fencing token it was
 * last claimed with and its entry in the delayed or lease timeline. Never handed out; `toRecord`
 * copies it.
 */
import type { AttemptOutcome, ErrorInfo, TaskLogLine } from '../../task/model.js'
import type { ClaimedTask, NewTask, TaskRecord } from '../broker.js'
import type { TimelineEntry } from './timeline.js'

export interface TaskState extends TaskRecord {
  /** The token of the latest claim (0 before the first). */
  token: number
  /** Its entry in the delayed timeline while pending, in the lease timeline while processing. */
  timer: TimelineEntry<TaskState> | undefined
  /** Queued but waiting for its lock key, outside the ready lists (not counted as ready). */
  parked?: boolean
  /** Let in from the waiters; if it must wait again, it waits first in line. */
  letIn?: boolean
  /** The submitter's trace context (`NewTask.tc`). */
  tc: string | undefined
  /** `ctx.log` lines kept (the last ones), and how many were written (issue 17). */
  logLines?: TaskLogLine[]
  logCount?: number
  /** Flow control: the group whose slot this processing task holds (queues with lanes). */
  slotGroup?: string | undefined
}

export function createTask(task: NewTask): TaskState {
  return {
    id: task.id,
    name: task.name,
    tenantId: task.tenantId,
    payload: task.payload,
    priority: task.priority,
    status: 'pending',
    attempt: task.attempt ?? 0,
    maxRetries: task.maxRetries,
    timeoutMs: task.timeoutMs,
    createdAt: task.createdAt,
    runAt: task.runAt,
    history: [],
    idempotencyKey: task.idempotencyKey,
    lockKey: task.lockKey || undefined,
    group: task.group || undefined,
    token: 0,
    timer: undefined,
    tc: task.tc,
  }
}

export function toRecord(task: TaskState): TaskRecord {
  return {
    id: task.id,
    name: task.name,
    tenantId: task.tenantId,
    payload: task.payload,
    priority: task.priority,
    status: task.status,
    attempt: task.attempt,
    maxRetries: task.maxRetries,
    timeoutMs: task.timeoutMs,
    createdAt: task.createdAt,
    runAt: task.runAt,
    startedAt: task.startedAt,
    finishedAt: task.finishedAt,
    result: task.result,
    error: task.error && { ...task.error },
    history: task.history.map((attempt) => ({ ...attempt, error: { ...attempt.error } })),
    workerId: task.workerId,
    idempotencyKey: task.idempotencyKey,
    lockKey: task.lockKey,
    group: task.group,
    deferredBy: task.deferredBy,
    deferredUntil: task.deferredUntil,
    progress: task.progress,
  }
}

export function toClaimed(task: TaskState): ClaimedTask {
  return {
    id: task.id,
    name: task.name,
    tenantId: task.tenantId,
    payload: task.payload,
    priority: task.priority,
    attempt: task.attempt,
    maxRetries: task.maxRetries,
    timeoutMs: task.timeoutMs,
    createdAt: task.createdAt,
    runAt: task.runAt,
    token: task.token,
    lockKey: task.lockKey,
    tc: task.tc,
    idempotencyKey: task.idempotencyKey,
    group: task.group,
  }
}

/** Ends the current attempt in the task's history; its error becomes the task's last error. */
export function recordAttempt(task: TaskState, outcome: AttemptOutcome, error: ErrorInfo, now: number): void {
  task.history.push({
    attempt: task.attempt,
    workerId: task.workerId ?? '',
    startedAt: task.startedAt ?? now,
    endedAt: now,
    outcome,
    error: { ...error },
  })
  task.error = { ...error }
}

/** The error recorded when a worker held a lease past its deadline. */
export function leaseExpired(task: TaskState): ErrorInfo {
  return {
    name: 'LeaseExpiredError',
    message: `lease expired: worker ${task.workerId ?? '?'} held attempt ${task.attempt} past its deadline`,
  }
}
