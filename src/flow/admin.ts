/**
 * Pause and resume for a queue, a task name or a group: the queue's, the REST API's and the CLI's
 * one path. In durable mode the store records a pause before the broker applies it, and a re-base
 * puts the store's pauses back into a Redis that lost or rolled back its data.
 */
import type { Broker, FlowScope } from '../broker/broker.js'
import { TaskloomError } from '../errors.js'
import type { Store } from '../store/store.js'
import { checkScopeName, flowScopeKey } from './config.js'

/** What `queue.pause()` and `queue.resume()` apply to: the whole queue, a task name, or a group. */
export interface PauseTarget {
  /** A task name: only its tasks stop. */
  task?: string
  /** A group (a tenant, unless tasks were submitted with `group`): only its tasks stop. */
  group?: string
}

export function scopeOf(target: PauseTarget = {}): FlowScope {
  if (target.task !== undefined && target.group !== undefined) {
    throw new TaskloomError('INVALID_OPTIONS', 'pause or resume a task name or a group, not both', {
      issues: [{ path: 'group', message: 'not with task' }],
    })
  }
  if (target.task !== undefined) return { kind: 'task', name: checkScopeName('task', target.task) }
  if (target.group !== undefined) return { kind: 'group', group: checkScopeName('group', target.group) }
  return { kind: 'queue' }
}

function parseScope(key: string): FlowScope {
  if (key === 'q') return { kind: 'queue' }
  return key.startsWith('n:') ? { kind: 'task', name: key.slice(2) } : { kind: 'group', group: key.slice(2) }
}

export async function setPaused(
  broker: Broker,
  store: Store | undefined,
  scope: FlowScope,
  paused: boolean,
): Promise<void> {
  await store?.setFlowPause(flowScopeKey(scope), paused)
  if (paused) await broker.pause(scope, Date.now())
  else await broker.resume(scope, Date.now())
}

/** Makes the broker's pauses those the store recorded (a re-base after Redis lost its data). */
export async function reapplyPauses(broker: Broker, stored: readonly string[]): Promise<void> {
  const now = Date.now()
  const state = await broker.flowState(now)
  const held = new Set([
    ...(state.paused.queue ? ['q'] : []),
    ...state.paused.tasks.map((t) => `n:${t}`),
    ...state.paused.groups.map((g) => `g:${g}`),
  ])
  const wanted = new Set(stored)
  for (const key of held) if (!wanted.has(key)) await broker.resume(parseScope(key), now)
  for (const key of wanted) if (!held.has(key)) await broker.pause(parseScope(key), now)
}
