/**
 * Running a schedule's task now, outside its ticks ("trigger now"): one task with the schedule's
 * input, tenant and task options. It carries no tick key (the next tick still fires as planned),
 * so `ctx.schedule` is unset for it.
 */
import { TaskloomError } from '../errors.js'
import type { Queue, SubmitResult } from '../queue/queue.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { SubmitOptions } from '../task/validate.js'

export async function triggerSchedule(
  queue: Queue,
  id: string,
  resolve: (name: string) => Promise<TaskDefinition<any, any> | null> = (name) =>
    queue.definitions.resolve(name),
): Promise<SubmitResult> {
  const schedule = await queue.schedules.get(id)
  if (!schedule) throw new TaskloomError('NOT_FOUND', `no schedule ${id}`)
  const task = await resolve(schedule.taskName)
  if (!task) {
    throw new TaskloomError(
      'UNKNOWN_TASK',
      `schedule ${id} runs ${JSON.stringify(schedule.taskName)}, which no worker registered`,
    )
  }
  const { priority, maxRetries, timeoutMs, lockKey } = schedule.options
  const options: SubmitOptions = {}
  if (schedule.tenantId !== null) options.tenantId = schedule.tenantId
  if (priority !== undefined) options.priority = priority
  if (maxRetries !== undefined) options.maxRetries = maxRetries
  if (timeoutMs !== undefined) options.timeoutMs = timeoutMs
  if (lockKey !== undefined) options.lockKey = lockKey
  return queue.submit(task, schedule.input, options)
}
