/**
 * `defineTask`: a task's name, input schema and defaults, from which every other signature is typed.
 */
import type { z } from 'zod'
import { TaskloomError } from '../errors.js'
import { PRIORITIES, type Priority } from './model.js'
import { textFault } from './text.js'

export interface TaskDefaults {
  /** Default `'normal'`. */
  priority?: Priority
  /** Retries after the first attempt. Default 3. */
  maxRetries?: number
  /** Per-attempt timeout. Default 300,000 ms (5 minutes). */
  timeoutMs?: number
}

export const TASK_DEFAULTS: Required<TaskDefaults> = { priority: 'normal', maxRetries: 3, timeoutMs: 300_000 }

export interface TaskSpec<S extends z.ZodType, O extends z.ZodType | undefined = undefined> {
  /** Unique within a queue: 1-200 characters. */
  name: string
  /** Validates the input at submit and again before the handler runs. */
  input: S
  /**
   * Validates the handler's result on completion (a result that does not match fails the attempt,
   * without retries), and types it for dependents: `ctx.resultOf(task, id)`. Default: none.
   */
  output?: O
  defaults?: TaskDefaults
  /**
   * The circuit breaker this task's runs count towards, shared by the fleet. Breakers protect a
   * dependency, so name one after it: `'smtp'`, shared by every task that calls the mail server.
   * `true`: a breaker named after the task. `{ name?, perTenant: true }`: one breaker per tenant
   * (`'<name>@<tenantId>'`), so one tenant's failures never hold back another's tasks.
   * Default: none (unless the worker's `taskBreakers` gives every task one).
   */
  breaker?: string | true | { name?: string; perTenant?: boolean }
}

/**
 * A defined task. `In` is what `submit` accepts, `Out` what the handler receives, `Result` what it
 * returns (typed by `output`, unknown without it).
 */
export interface TaskDefinition<In = unknown, Out = In, Result = unknown> {
  readonly name: string
  readonly input: z.ZodType<Out, In>
  /** The result's schema, when the task has one. */
  readonly output?: z.ZodType<Result> | undefined
  readonly defaults: Readonly<Required<TaskDefaults>>
  /** The name of the task's circuit breaker, when it has one. */
  readonly breaker?: string
  /** True when the breaker is per tenant: `'<breaker>@<tenantId>'`. */
  readonly breakerPerTenant?: boolean
}

export const MAX_RETRIES_LIMIT = 100
export const MAX_TIMEOUT_MS = 7 * 86_400_000

/**
 * @example
 * const sendEmail = defineTask({
 *   name: 'send-email',
 *   input: z.object({ to: z.string().email(), subject: z.string() }),
 *   defaults: { priority: 'high', maxRetries: 5 },
 * })
 */
export function defineTask<S extends z.ZodType, O extends z.ZodType | undefined = undefined>(
  spec: TaskSpec<S, O>,
): TaskDefinition<z.input<S>, z.output<S>, O extends z.ZodType ? z.output<O> : unknown> {
  if (
    typeof spec.name !== 'string' ||
    spec.name.length < 1 ||
    spec.name.length > 200 ||
    textFault(spec.name) !== null
  ) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      'a task name must be a string of 1-200 characters of valid Unicode without NUL',
    )
  }
  if (!spec.input || typeof (spec.input as { safeParse?: unknown }).safeParse !== 'function') {
    throw new TaskloomError('INVALID_OPTIONS', `task ${spec.name}: input must be a zod schema`)
  }
  const defaults = { ...TASK_DEFAULTS, ...spec.defaults } satisfies Required<TaskDefaults>
  checkDefaults(spec.name, defaults)
  // zod's generic S is its own ZodType<output<S>, input<S>>; the compiler cannot see that through S.
  const input = spec.input as unknown as z.ZodType<z.output<S>, z.input<S>>
  const breaker = breakerOf(spec.name, spec.breaker)
  if (spec.output !== undefined && typeof (spec.output as { safeParse?: unknown }).safeParse !== 'function') {
    throw new TaskloomError('INVALID_OPTIONS', `task ${spec.name}: output must be a zod schema`)
  }
  return Object.freeze({
    name: spec.name,
    input,
    ...(spec.output === undefined ? {} : { output: spec.output as z.ZodType<any> }),
    defaults: Object.freeze(defaults),
    ...breaker,
  })
}

function checkDefaults(name: string, d: Required<TaskDefaults>): void {
  const bad: string[] = []
  if (!PRIORITIES.includes(d.priority)) bad.push(`priority must be one of ${PRIORITIES.join(', ')}`)
  if (!Number.isInteger(d.maxRetries) || d.maxRetries < 0 || d.maxRetries > MAX_RETRIES_LIMIT) {
    bad.push(`maxRetries must be an integer from 0 to ${MAX_RETRIES_LIMIT}`)
  }
  if (!Number.isInteger(d.timeoutMs) || d.timeoutMs < 1 || d.timeoutMs > MAX_TIMEOUT_MS) {
    bad.push(`timeoutMs must be an integer from 1 to ${MAX_TIMEOUT_MS}`)
  }
  if (bad.length > 0) {
    throw new TaskloomError('INVALID_OPTIONS', `task ${name}: ${bad.join('; ')}`, {
      issues: bad.map((message) => ({ path: 'defaults', message })),
    })
  }
}

/** `TaskSpec.breaker` as the definition keeps it: a name, and whether it is per tenant. */
function breakerOf(
  task: string,
  spec: TaskSpec<z.ZodType>['breaker'],
): { breaker?: string; breakerPerTenant?: boolean } {
  if (spec === undefined) return {}
  const bad = () =>
    new TaskloomError(
      'INVALID_OPTIONS',
      `task ${task}: breaker must be a name of 1-200 characters, true, or { name?, perTenant? }`,
    )
  const okName = (n: unknown): n is string => typeof n === 'string' && n.length >= 1 && n.length <= 200
  if (spec === true) return { breaker: task }
  if (typeof spec === 'string') {
    if (!okName(spec)) throw bad()
    return { breaker: spec }
  }
  if (typeof spec !== 'object' || spec === null) throw bad()
  const { name, perTenant, ...rest } = spec
  if (Object.keys(rest).length > 0 || (name !== undefined && !okName(name))) throw bad()
  if (perTenant !== undefined && typeof perTenant !== 'boolean') throw bad()
  return { breaker: name ?? task, ...(perTenant ? { breakerPerTenant: true } : {}) }
}
