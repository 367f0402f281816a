/**
 * Helpers for testing applications that use taskloom: `taskloom/testing`.
 */

import { TaskloomError } from './errors.js'
import type { Queue } from './queue/queue.js'
import type { TaskInfo } from './queue/task-info.js'
import { TERMINAL_STATUSES } from './task/model.js'

export { MemoryBroker } from './broker/memory/memory-broker.js'

/**
 * Resolves with the task once it reaches a terminal status (completed, failed or cancelled).
 * @example
 * const { id } = await queue.submit(sendEmail, input)
 * const done = await waitForTask(queue, id)
 * expect(done.status).toBe('completed')
 */
export async function waitForTask<Result = unknown>(
  queue: Queue,
  id: string,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<TaskInfo<Result>> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000)
  for (;;) {
    const task = await queue.get<Result>(id)
    if (task && TERMINAL_STATUSES.has(task.status)) return task
    if (Date.now() > deadline) {
      throw new TaskloomError(
        'INTERNAL',
        `task ${id} did not finish in time (status: ${task?.status ?? 'unknown'})`,
      )
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 10))
  }
}
