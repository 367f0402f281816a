/**
 * The queue-wide series' definitions: which broker event (see `TaskEvent`) each task counter
 * exports, and how a broker's totals become one queue's label sets. Every process that observes a
 * queue exports the same values; queries fold the copies with `max by (queue, …)`.
 */
import type { EventCount, TaskEvent } from '../broker/broker.js'

/** The queue-wide counters: metric name → the broker event it exports and the label its detail fills. */
export const EVENT_COUNTERS = {
  tasks_submitted_total: {
    event: 'submitted',
    detail: 'priority',
    help: 'Tasks accepted by submit (idempotent repeats not counted), fleet-wide, by priority.',
  },
  tasks_completed_total: {
    event: ['completed', 'dead_lettered'],
    detail: 'status',
    help: 'Tasks that reached an outcome: status completed, or failed (dead-lettered); fleet-wide. A task put back from the DLQ can reach a second outcome: see tasks_dead_letter_retried_total.',
  },
  tasks_failed_total: {
    event: 'dead_lettered',
    detail: 'error_type',
    help: 'Tasks that failed for good (dead-lettered: retries spent, non-retryable, or the last lease expired), by the last error, fleet-wide.',
  },
  task_attempts_failed_total: {
    event: 'attempt_failed',
    detail: 'error_type',
    help: 'Attempts that ended with an error reported by the worker (retried or not), by error type, fleet-wide.',
  },
  task_retries_total: {
    event: 'retried',
    detail: undefined,
    help: 'Failed attempts given another try, fleet-wide.',
  },
  task_lease_expirations_total: {
    event: 'lease_expired',
    detail: undefined,
    help: 'Leases that expired before their worker settled the task (stalled tasks: a crashed or frozen worker), fleet-wide.',
  },
  tasks_cancelled_total: {
    event: 'cancelled',
    detail: undefined,
    help: 'Tasks cancelled before they ran, fleet-wide.',
  },
  tasks_dead_letter_retried_total: {
    event: 'dead_letter_retried',
    detail: undefined,
    help: 'Dead-lettered tasks put back in the queue (each had been counted failed once), fleet-wide.',
  },
} as const satisfies Record<
  string,
  { event: TaskEvent | readonly TaskEvent[]; detail: string | undefined; help: string }
>

/** `circuit_breaker_state` values. */
export const BREAKER_STATES = { closed: 0, 'half-open': 1, open: 2 } as const

/** Maps raw label values to bounded ones (see BoundedLabel). */
export interface LabelBounds {
  tenant(raw: string): string
  taskType(raw: string): string
  errorType(raw: string): string
}

/**
 * One queue's series of a queue-wide counter from the broker's totals: label sets with their
 * counts, totals whose bounded labels coincide (`_other`) summed.
 */
export function eventTotals(
  spec: (typeof EVENT_COUNTERS)[keyof typeof EVENT_COUNTERS],
  queue: string,
  counts: readonly EventCount[],
  bounds: LabelBounds,
): { labels: Record<string, string>; n: number }[] {
  const events: readonly TaskEvent[] = typeof spec.event === 'string' ? [spec.event] : spec.event
  const totals = new Map<string, { labels: Record<string, string>; n: number }>()
  for (const c of counts) {
    if (!events.includes(c.event)) continue
    const labels: Record<string, string> = {
      queue,
      tenant_id: bounds.tenant(c.tenantId),
      task_type: bounds.taskType(c.taskName),
    }
    if (spec.detail === 'status') labels.status = c.event === 'completed' ? 'completed' : 'failed'
    else if (spec.detail === 'error_type') labels.error_type = bounds.errorType(c.detail)
    else if (spec.detail === 'priority') labels.priority = c.detail
    const key = JSON.stringify(labels)
    const total = totals.get(key)
    if (total) total.n += c.count
    else totals.set(key, { labels, n: c.count })
  }
  return [...totals.values()]
}
