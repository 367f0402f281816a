/**
 * `queue.waitFor(id)` (issue 17): resolves with the task's final record without polling. It taps
 * the queue's event subscription first and reads the task second, so a change between the two
 * cannot be missed: it is either in the read or in an event that follows.
 */
import { TaskloomError } from '../errors.js'
import type { TaskInfo } from '../queue/task-info.js'
import { TERMINAL_STATUSES } from '../task/model.js'
import type { EventSubscription } from './subscription.js'

/** Events after which a task may be final. */
const FINAL = new Set(['completed', 'dead', 'cancelled'])
/**
 * Durable mode shows a final status once PostgreSQL has it: after the final event, the read is
 * repeated at these intervals (then the last) until it does.
 */
const CONFIRM_MS = [10, 20, 50, 100, 200]

export function waitForFinal<R>(
  events: EventSubscription,
  /** The task, and whether it is final but not shown so yet (durable mode: PostgreSQL lags). */
  read: () => Promise<{ task: TaskInfo<R> | null; settling: boolean }>,
  id: string,
  timeoutMs: number,
): Promise<TaskInfo<R>> {
  return new Promise((resolve, reject) => {
    let settled = false
    let reading = false
    let again = false
    let confirmations = -1
    let retry: NodeJS.Timeout | undefined
    const timer = setTimeout(
      () => finish(new TaskloomError('TIMEOUT', `task ${id} did not finish within ${timeoutMs} ms`)),
      timeoutMs,
    )
    const untap = events.tap((event) => {
      if (event.taskId !== id || !FINAL.has(event.type)) return
      confirmations = 0
      void check()
    })
    const onClose = () => finish(new TaskloomError('CLOSED', `the queue closed while waiting for task ${id}`))
    if (events.closed.aborted) return onClose()
    events.closed.addEventListener('abort', onClose, { once: true })
    // The broker must be writing events before the first read: an event after it then arrives.
    events.renew().then(check, finish)

    function finish(outcome: TaskInfo<R> | unknown): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      clearTimeout(retry)
      untap()
      events.closed.removeEventListener('abort', onClose)
      if (outcome instanceof Error) reject(outcome)
      else resolve(outcome as TaskInfo<R>)
    }

    async function check(): Promise<void> {
      if (settled) return
      if (reading) {
        again = true
        return
      }
      reading = true
      try {
        const { task, settling } = await read()
        if (!task) return finish(new TaskloomError('NOT_FOUND', `task ${id} not found`))
        if (TERMINAL_STATUSES.has(task.status)) return finish(task)
        if (settling && confirmations < 0) confirmations = 0
        if (confirmations >= 0 && !settled) {
          clearTimeout(retry)
          retry = setTimeout(check, CONFIRM_MS[Math.min(confirmations++, CONFIRM_MS.length - 1)])
        }
      } catch (err) {
        finish(err)
      } finally {
        reading = false
        if (again && !settled) {
          again = false
          void check()
        }
      }
    }
  })
}
