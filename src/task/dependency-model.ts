/**
 * Task dependencies as the broker and the store keep them (issue 17): a task submitted with `dependsOn` waits,
 * `pending`, until every dependency reached a final state; then it is queued, or (a dependency
 * failed or was cancelled under the `fail` policy) it ends as its cause did, and so do the tasks
 * that depend on it in turn.
 *
 * Bookkeeping is O(1) per finished task and edge: each waiting task keeps the set of dependencies
 * it still waits for, each task the set of its dependents; a dependency that finishes removes
 * itself from each dependent's set, and the dependent whose set empties is released.
 */

import type { FailurePolicy } from './dependency-options.js'
import type { TaskStatus } from './model.js'

export type { FailurePolicy } from './dependency-options.js'

/** One edge as the dependent holds it: the task it waits for (in `queue`), and the policy. */
export interface DependencyEdge {
  id: string
  queue: string
  onFailure: FailurePolicy
  /**
   * Recovery only: the dependency's status in the store, used when the broker does not hold it
   * (Redis lost it, or it was purged): then it need not exist, and counts as finished or not by
   * this status.
   */
  knownStatus?: TaskStatus | undefined
}

/** A task that depends on another, as the dependency lists it. */
export interface DependentRef {
  id: string
  queue: string
}

/**
 * The dependency fields of a TaskRecord (grouped, so the record's other fields stay apart):
 * every dependency, the tasks that depend on this one, and the dependencies a waiting task still
 * waits for (empty once released).
 */
export interface DependencyFields {
  dependsOn?: DependencyEdge[] | undefined
  dependents?: DependentRef[] | undefined
  waitingFor?: DependentRef[] | undefined
  /** The flow the task was created by (`queue.flow`), when it was. */
  flowId?: string | undefined
}

/** A flow as the broker records it: its tasks by the caller's keys. */
export interface FlowRecord {
  id: string
  tenantId: string
  /** Node key → task id, in creation order. */
  nodes: Record<string, string>
  /** The root's id (tree flows and chains: the task that runs last). */
  rootId?: string | undefined
  createdAt: number
}

/** A flow-wide idempotency key: at most one flow per (tenant, key) for `ttlMs`. */
export interface FlowKey {
  key: string
  ttlMs: number
}

/**
 * The error a dependent fails with when a dependency it needed failed or was cancelled; it names
 * the dependency and carries the dependency's own error, so a chain of failures reads back to its
 * cause. Lua builds the same text (lua/deps.lua).
 */
export function dependencyFailure(
  cause: { id: string; name: string; status: string },
  causeError?: { message: string } | undefined,
): { name: string; message: string } {
  const what = cause.status === 'cancelled' ? 'was cancelled' : 'failed'
  const why = causeError?.message ? `: ${causeError.message}` : ''
  return { name: 'DependencyFailedError', message: `dependency ${cause.id} (${cause.name}) ${what}${why}` }
}
