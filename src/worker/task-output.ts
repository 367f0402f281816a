/**
 * `ctx.progress` and `ctx.log` (issue 17): validated here, batched for the whole worker (one
 * round trip carries many calls), fenced by the broker with the attempt's token. A task's output is
 * written before its outcome: the worker awaits `flushed(taskId)` before it completes or fails it.
 */
import type { Broker, ClaimedTask, FencedOutcome, TaskReport } from '../broker/broker.js'
import { LeaseLostError, TaskloomError } from '../errors.js'
import { textFault } from '../task/text.js'
import { Batcher } from '../util/batcher.js'

/** Largest progress object, as JSON text. */
export const MAX_PROGRESS_BYTES = 4096

export interface OutputLimits {
  maxLogLines: number
  maxLogLineLength: number
}

/** What a handler's context gets (see TaskContext). */
export interface OutputContext {
  progress(value: number | Record<string, unknown>): Promise<void>
  log(line: string): Promise<void>
}

export class TaskOutputs {
  private readonly batch: Batcher<TaskReport, FencedOutcome>
  /** Writes not yet answered, per task. */
  private readonly pending = new Map<string, Set<Promise<unknown>>>()

  constructor(
    broker: Broker,
    private readonly limits: OutputLimits,
  ) {
    this.batch = new Batcher((items) => broker.report(items, limits.maxLogLines, Date.now()), {
      maxBatch: 500,
    })
  }

  context(task: ClaimedTask): OutputContext {
    return {
      progress: (value) =>
        this.write(task, { id: task.id, token: task.token, progress: progressText(value) }),
      log: (line) =>
        this.write(task, {
          id: task.id,
          token: task.token,
          log: logText(line, this.limits.maxLogLineLength),
        }),
    }
  }

  /** Resolves once every write of the task so far is answered (never rejects); undefined when none is pending. */
  flushed(taskId: string): Promise<unknown> | undefined {
    const set = this.pending.get(taskId)
    return set && Promise.allSettled([...set])
  }

  drain(): Promise<void> {
    return this.batch.drain()
  }

  private write(task: ClaimedTask, item: TaskReport): Promise<void> {
    const sent = this.batch.add(item)
    const set = this.pending.get(task.id) ?? new Set()
    this.pending.set(task.id, set)
    set.add(sent)
    const done = sent.then((outcome) => {
      if (outcome === 'stale') {
        throw new LeaseLostError(
          `task ${task.id}: the attempt no longer holds its lease; its output was refused`,
        )
      }
    })
    void sent.finally(() => {
      set.delete(sent)
      if (set.size === 0 && this.pending.get(task.id) === set) this.pending.delete(task.id)
    })
    // A handler may call without awaiting: a refusal must not become an unhandled rejection. One
    // that awaits still sees it.
    done.catch(() => {})
    return done
  }
}

/** A progress value as JSON text: a number from 0 to 100, or a small plain object. */
export function progressText(value: unknown): string {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0 || value > 100) {
      throw invalid(`progress must be a number from 0 to 100, got ${value}`)
    }
    return JSON.stringify(value)
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalid('progress must be a number from 0 to 100 or a plain JSON object')
  }
  const proto = Object.getPrototypeOf(value)
  if (proto !== Object.prototype && proto !== null) throw invalid('progress must be a plain JSON object')
  let text: string
  try {
    text = JSON.stringify(value)
  } catch (err) {
    throw invalid(`progress must be JSON: ${(err as Error).message}`)
  }
  if (Buffer.byteLength(text) > MAX_PROGRESS_BYTES) {
    throw invalid(
      `progress is ${Buffer.byteLength(text)} bytes as JSON; at most ${MAX_PROGRESS_BYTES} are kept`,
    )
  }
  const fault = textFault(text)
  if (fault) throw invalid(`progress ${fault}`)
  return text
}

/** A log line as stored: text only, cut to `max` characters. */
export function logText(line: unknown, max: number): string {
  if (typeof line !== 'string') throw invalid('a log line must be a string', 'line')
  let text = line.length > max ? `${line.slice(0, max - 1)}…` : line
  // NUL and lone surrogates (a cut pair too) cannot be stored (PostgreSQL text): replaced, not refused.
  if (textFault(text)) text = text.replace(UNSTORABLE, '\uFFFD')
  return text
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: U+0000 is exactly what this replaces
const UNSTORABLE = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

function invalid(message: string, path = 'progress'): TaskloomError {
  return new TaskloomError('INVALID_INPUT', message, { issues: [{ path, message }] })
}
