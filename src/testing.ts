/**
 * Helpers for testing applications that use taskloom: `taskloom/testing`.
 */

import type { Queue } from './queue/queue.js'
import type { TaskInfo } from './queue/task-info.js'

export { MemoryBroker } from './broker/memory/memory-broker.js'

/**
 * Resolves with the task once it reaches a terminal status (completed, failed or cancelled), through
 * `queue.waitFor` (no polling); rejects with a TaskloomError code TIMEOUT after `timeoutMs`
 * (default 10,000).
 * @example
 * const { id } = await queue.submit(sendEmail, input)
 * const done = await waitForTask(queue, id)
 * expect(done.status).toBe('completed')
 */
export async function waitForTask<Result = unknown>(
  queue: Queue,
  id: string,
  options: {
    timeoutMs?: number
    /** @deprecated Ignored: the wait is driven by queue events, not by polling. */
    intervalMs?: number
  } = {},
): Promise<TaskInfo<Result>> {
  return queue.waitFor<Result>(id, { timeoutMs: options.timeoutMs ?? 10_000 })
}
