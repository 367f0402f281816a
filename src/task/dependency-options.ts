/** How a caller names a task's dependencies (submit's `dependsOn`, flow nodes). No I/O. */
import { z } from 'zod'

/**
 * What a dependent does when a dependency ends failed (dead-lettered) or cancelled:
 * - `fail` (default): it fails too (is cancelled, when the dependency was cancelled), and so do
 *   its own `fail` dependents, each with a `DependencyFailedError` naming the cause;
 * - `ignore`: it runs anyway and sees the failure in `ctx.dependencies()`;
 * - `remove`: it runs without it (left out of `ctx.dependencies()`).
 */
export type FailurePolicy = 'fail' | 'ignore' | 'remove'
export const FAILURE_POLICIES = ['fail', 'ignore', 'remove'] as const satisfies readonly FailurePolicy[]

/**
 * One dependency of `submit(..., { dependsOn })`: a task id, or `{ id, onFailure?, queue? }`.
 * `queue` names another queue on the same Redis (default: this queue).
 */
export type DependencyRef = string | { id: string; onFailure?: FailurePolicy; queue?: string }

const TASK_ID = z.string().min(1).max(200)

export const DEPENDENCY_REF = z.union([
  TASK_ID,
  z.strictObject({
    id: TASK_ID,
    onFailure: z.enum(FAILURE_POLICIES).optional(),
    queue: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,200}$/)
      .optional(),
  }),
])
