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

export interface TaskSpec<S extends z.ZodType> {
  /** Unique within a queue: 1-200 characters. */
  name: string
  /** Validates the input at submit and again before the handler runs. */
  input: S
  defaults?: TaskDefaults
  /**
   * The circuit breaker this task's runs count towards (e.g. `'smtp'`, shared by every task that
   * calls the mail server). Default: a breaker of its own, named after the task.
   */
  breaker?: string
}

/** A defined task. `In` is what `submit` accepts, `Out` what the handler receives. */
export interface TaskDefinition<In = unknown, Out = In> {
  readonly name: string
  readonly input: z.ZodType<Out, In>
  readonly defaults: Readonly<Required<TaskDefaults>>
  /** The named circuit breaker, when one was given. */
  readonly breaker?: string
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
export function defineTask<S extends z.ZodType>(spec: TaskSpec<S>): TaskDefinition<z.input<S>, z.output<S>> {
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
  if (
    spec.breaker !== undefined &&
    (typeof spec.breaker !== 'string' || spec.breaker.length < 1 || spec.breaker.length > 200)
  ) {
    throw new TaskloomError(
      'INVALID_OPTIONS',
      `task ${spec.name}: breaker must be a string of 1-200 characters`,
    )
  }
  return Object.freeze({
    name: spec.name,
    input,
    defaults: Object.freeze(defaults),
    ...(spec.breaker === undefined ? {} : { breaker: spec.breaker }),
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
