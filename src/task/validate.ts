/** Input and option validation with errors that name every bad field. */
import { z } from 'zod'
import { type Issue, TaskloomError } from '../errors.js'
import { SCHEDULE_KEY_PREFIX } from '../schedule/tick-key.js'
import type { TaskDefinition } from './define-task.js'
import { MAX_RETRIES_LIMIT, MAX_TIMEOUT_MS } from './define-task.js'
import { DEPENDENCY_REF, type DependencyRef } from './dependency-options.js'
import { PRIORITIES, type Priority } from './model.js'
import { textFault, textIssues } from './text.js'

export interface SubmitOptions {
  /** Overrides the task's default priority. */
  priority?: Priority
  /** Run no sooner than this many milliseconds from now. */
  delayMs?: number
  /** Run no sooner than this time (a Date or epoch milliseconds). Wins over `delayMs`. */
  runAt?: Date | number
  /** Per-attempt timeout; overrides the task's default. */
  timeoutMs?: number
  /** Retries after the first attempt; overrides the task's default. */
  maxRetries?: number
  /** At most one task per (tenant, key) within the queue's idempotency retention. */
  idempotencyKey?: string
  /** Owner of the task. Default: the queue's `defaultTenantId` (`'default'`). */
  tenantId?: string
  /**
   * A cron expression (five fields, or six with seconds first): instead of one task, creates a
   * schedule that submits this input on every tick (see `queue.schedules`). The idempotency key, if
   * given, names the schedule: its id is `<tenantId>:<idempotencyKey>`. Not with `delayMs` or `runAt`.
   */
  schedule?: string
  /**
   * Tasks sharing a lock key (e.g. a customer id) never run at the same time anywhere in the fleet;
   * a task waiting for its key spends no attempt. The key is held while the task is processing
   * (for its lease, and so at most its timeout).
   */
  lockKey?: string
  /**
   * Tasks this one waits for: it stays `pending` until each has finished, then is queued (see
   * docs/workflows.md). Ids, or `{ id, onFailure, queue }` (`onFailure`: 'fail' (default),
   * 'ignore' or 'remove'). Each must be a task of the same tenant, else NOT_FOUND.
   */
  dependsOn?: readonly DependencyRef[]
  /**
   * Flow-control group (fair scheduling, group concurrency and limits, pauses): 1-200 letters,
   * digits, '.', '_', ':', '@' or '-'. Default: the task's tenant.
   */
  group?: string
}

/** Text taskloom can store (see text.ts): valid Unicode without NUL. */
export const TEXT = z.string().check((ctx) => {
  const fault = textFault(ctx.value)
  if (fault) ctx.issues.push({ code: 'custom', message: fault, input: ctx.value })
})

/** An idempotency or lock key: 1-255 characters of valid Unicode, no NUL. */
export const KEY = TEXT.min(1).max(255)

/** Tenant ids: 1-128 letters, digits, '.', '_', ':', '@' or '-'. */
export const TENANT_ID = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,128}$/, "1-128 letters, digits, '.', '_', ':', '@' or '-'")

/** Flow-control groups: the tenant-id alphabet, up to 200 characters. */
export const GROUP = z
  .string()
  .regex(/^[A-Za-z0-9._:@-]{1,200}$/, "1-200 letters, digits, '.', '_', ':', '@' or '-'")

const optionsSchema = z.strictObject({
  priority: z.enum(PRIORITIES).optional(),
  delayMs: z
    .number()
    .int()
    .min(0)
    .max(366 * 86_400_000)
    .optional(),
  runAt: z.union([z.date(), z.number().int().nonnegative()]).optional(),
  timeoutMs: z.number().int().min(1).max(MAX_TIMEOUT_MS).optional(),
  maxRetries: z.number().int().min(0).max(MAX_RETRIES_LIMIT).optional(),
  idempotencyKey: KEY.refine(
    (key) => !key.startsWith(SCHEDULE_KEY_PREFIX),
    `the prefix '${SCHEDULE_KEY_PREFIX}' is reserved for the tasks cron schedules submit`,
  ).optional(),
  tenantId: TENANT_ID.optional(),
  schedule: TEXT.min(1).max(200).optional(),
  lockKey: KEY.optional(),
  dependsOn: z.array(DEPENDENCY_REF).max(10_000).optional(),
  group: GROUP.optional(),
})

function issuesOf(error: z.ZodError, prefix: string): Issue[] {
  return error.issues.map((i) => ({
    path: [prefix, ...i.path.map(String)].filter(Boolean).join('.'),
    message: i.message,
  }))
}

function describe(issues: readonly Issue[]): string {
  return issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')
}

export function checkOptions(options: unknown, where = 'options'): SubmitOptions {
  const parsed = optionsSchema.safeParse(options ?? {})
  if (parsed.success) {
    const runAt = parsed.data.runAt
    if (runAt instanceof Date && Number.isNaN(runAt.getTime())) {
      throw new TaskloomError('INVALID_OPTIONS', `invalid ${where}: runAt is an invalid date`, {
        issues: [{ path: `${where}.runAt`, message: 'invalid date' }],
      })
    }
    if (parsed.data.schedule !== undefined && (parsed.data.delayMs !== undefined || runAt !== undefined)) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        `invalid ${where}: schedule cannot be combined with delayMs or runAt`,
        {
          issues: [{ path: `${where}.schedule`, message: 'not with delayMs or runAt' }],
        },
      )
    }
    return parsed.data
  }
  const issues = issuesOf(parsed.error, where)
  throw new TaskloomError('INVALID_OPTIONS', `invalid ${where}: ${describe(issues)}`, { issues })
}

/**
 * Refuses input holding text PostgreSQL cannot store (a NUL, a lone surrogate), naming each field;
 * the submit and schedule paths call it, so such a value never reaches the store.
 */
export function checkText(taskName: string, input: unknown, where = 'input'): void {
  const issues = textIssues(input, where)
  if (issues.length === 0) return
  throw new TaskloomError('INVALID_INPUT', `invalid input for task ${taskName}: ${describe(issues)}`, {
    issues,
  })
}

/** Validates `input` against the task's schema; throws INVALID_INPUT listing every bad field. */
export function checkInput<In, Out>(task: TaskDefinition<In, Out>, input: unknown, where = 'input'): Out {
  const parsed = task.input.safeParse(input)
  if (parsed.success) return parsed.data
  const issues = issuesOf(parsed.error, where)
  throw new TaskloomError('INVALID_INPUT', `invalid input for task ${task.name}: ${describe(issues)}`, {
    issues,
  })
}
