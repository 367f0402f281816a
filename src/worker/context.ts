/** What a handler receives besides its input. */
import type { Logger } from '../logger.js'
import type { DependencyReads } from './dependencies.js'

export interface TaskContext extends DependencyReads {
  taskId: string
  /** 1 on the first attempt. */
  attempt: number
  tenantId: string
  /**
   * Strictly greater than every token issued before in this queue. Pass it to the systems you
   * write to, and have them reject writes with a smaller token, for exactly-once effects.
   */
  fencingToken: number
  /** Aborts on timeout, on a lost lease, and at the end of a graceful shutdown's grace period. */
  signal: AbortSignal
  /** Pushes this task's lease out to `ms` from now (and keeps renewing it at that length). */
  extendLease(ms: number): Promise<void>
  /**
   * A named circuit breaker shared by the fleet: `await ctx.breaker('smtp').run(() => send())`.
   * While it is open, `run` throws and the task is deferred to the half-open time without spending
   * an attempt; failures inside `run` count towards opening it. `{ perTenant: true }`: this task's
   * tenant's own breaker of that name (`'smtp@<tenantId>'`), so one tenant's failures defer only
   * its own tasks.
   */
  breaker(name: string, options?: { perTenant?: boolean }): { run<T>(fn: () => T | Promise<T>): Promise<T> }
  /** Logger bound to task_id, tenant_id and worker_id. */
  logger: Logger
  /**
   * Set when a cron schedule submitted this task: the schedule's id and the tick it stands for
   * (for `run-once` after a misfire, the first missed tick). Undefined for other tasks.
   */
  schedule: { id: string; scheduledAt: Date } | undefined
  // --- Task output (issue 17; docs/events.md) ---
  /**
   * Reports progress: a number from 0 to 100, or a small plain JSON object (at most 4 KiB), shown
   * as `progress` by `queue.get` and sent to `queue.events` listeners. Bad values throw INVALID_INPUT.
   * Rejects with LeaseLostError when the attempt no longer holds its lease (nothing is written);
   * not awaiting it is safe.
   * @example await ctx.progress(40); await ctx.progress({ step: 'resize', done: 3, of: 8 })
   */
  progress(value: number | Record<string, unknown>): Promise<void>
  /**
   * Appends a line to the task's log (`queue.logs(id)`), which keeps the last `maxLogLines` lines
   * (default 1,000); a line longer than `maxLogLineLength` (default 2,000) is cut. Rejects like
   * `progress` when the lease is lost; not awaiting it is safe.
   */
  log(line: string): Promise<void>
  // From DependencyReads (src/worker/dependencies.ts), for tasks submitted with `dependsOn` or in a flow:
  // `dependencies()`: `{ [id]: { name, status, result, error } }` of the tasks it depended on (a
  //   `remove` dependency that did not complete is left out);
  // `resultOf(taskDef, id)`: that dependency's result, typed by the task's `output` schema.
  /**
   * Upstream throttling: throws a RateLimitedError, so the task goes back to the queue without
   * spending an attempt and its group (or, `{ scope: 'task' }`, its task name) starts nothing
   * anywhere in the fleet for `ms`. `return ctx.rateLimit(30_000)`.
   */
  rateLimit(ms: number, options?: { scope?: 'group' | 'task' }): never
}
