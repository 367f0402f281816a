/**
 * What a handler reads of the tasks it depends on (`ctx.dependencies()`, `ctx.resultOf()`), and
 * the check of a result against its task's `output` schema on completion.
 */
import type { Broker, TaskRecord } from '../broker/broker.js'
import { NonRetryableError, TaskloomError } from '../errors.js'
import type { QueueInternals } from '../queue/internal.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { ErrorInfo, TaskStatus } from '../task/model.js'

/** One dependency as `ctx.dependencies()` shows it. */
export interface DependencyResult {
  name: string
  status: TaskStatus
  /** The result, once completed. */
  result: unknown
  /** The last error, when it failed (an `ignore` dependency). */
  error?: ErrorInfo | undefined
}

export interface DependencyReads {
  dependencies(): Promise<Record<string, DependencyResult>>
  resultOf<Result>(task: TaskDefinition<any, any, Result>, id: string): Promise<Result>
}

/** The reads of one attempt's dependencies; the records are fetched once, on first use. */
export function dependencyReads(q: QueueInternals, broker: Broker, taskId: string): DependencyReads {
  let loaded: Promise<Record<string, DependencyResult>> | undefined
  const load = async (): Promise<Record<string, DependencyResult>> => {
    const self = await broker.get(taskId)
    const store = q.store()
    // A task Redis got back from the store (a re-base) has its edges there only.
    const edges =
      self?.dependsOn ?? (store ? ((await store.dependencyEdges([taskId])).get(taskId) ?? []) : [])
    const records = await broker.getTasks(edges.map((e) => ({ id: e.id, queue: e.queue })))
    const out: Record<string, DependencyResult> = {}
    for (const [i, edge] of edges.entries()) {
      const record: TaskRecord | null =
        records[i] ?? (store && edge.queue === broker.queueName ? await store.get(edge.id) : null)
      if (!record) continue
      // A 'remove' dependency that did not complete is not part of this task's inputs.
      if (edge.onFailure === 'remove' && record.status !== 'completed') continue
      out[edge.id] = {
        name: record.name,
        status: record.status,
        result: record.result === undefined ? undefined : q.decode(record.result),
        error: record.error,
      }
    }
    return out
  }
  const dependencies = () => {
    loaded ??= load()
    return loaded
  }
  return {
    dependencies,
    async resultOf<Result>(task: TaskDefinition<any, any, Result>, id: string): Promise<Result> {
      const dep = (await dependencies())[id]
      if (!dep || dep.name !== task.name) {
        throw new TaskloomError('NOT_FOUND', `task ${taskId} has no dependency ${id} of task ${task.name}`)
      }
      if (dep.status !== 'completed') {
        throw new TaskloomError(
          'INVALID_STATE',
          `dependency ${id} (${task.name}) ended ${dep.status}: no result`,
        )
      }
      return dep.result as Result
    },
  }
}

/** A result that does not match the task's `output` schema fails the attempt, without retries. */
export function checkOutput(task: TaskDefinition<any, any, any>, result: unknown): unknown {
  if (!task.output) return result
  const parsed = task.output.safeParse(result)
  if (parsed.success) return parsed.data
  const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(result)'}: ${i.message}`).join('; ')
  throw new NonRetryableError(`result of task ${task.name} does not match its output schema: ${detail}`)
}
