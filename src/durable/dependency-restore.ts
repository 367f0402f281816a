/**
 * Recovery of waiting tasks (durable mode): a task with dependencies is handed to the broker with
 * its edges from the store, each with the status the store has for the dependency, so a Redis that
 * lost its data (or never got the task) rebuilds the waiting state: the dependent waits for what is
 * unfinished, is released if nothing is, or fails if a `fail` dependency failed.
 */
import type { NewTask } from '../broker/broker.js'
import type { Store, StoredTask } from '../store/store.js'

/** `tasks` (made from `rows`, in order) with their dependency edges, when they have any. */
export async function withDependencies(
  store: Store,
  rows: readonly StoredTask[],
  tasks: NewTask[],
): Promise<NewTask[]> {
  const edges = await store.dependencyEdges(rows.map((r) => r.id))
  if (edges.size === 0) return tasks
  const ownDeps = [...new Set([...edges.values()].flat().map((e) => e.id))]
  const statuses = new Map((await store.getMany(ownDeps)).map((r) => [r.id, r.status]))
  return tasks.map((task) => {
    const list = edges.get(task.id)
    if (!list) return task
    const dependsOn = list.map((e) => ({
      ...e,
      // Another queue's dependency is not in this store: taken as unfinished until its queue says.
      knownStatus: (e.queue === store.queue ? statuses.get(e.id) : undefined) ?? ('queued' as const),
    }))
    return { ...task, dependsOn }
  })
}

/** Of unfinished rows, those that may still wait for dependencies (pending with edges go through enqueue). */
export async function splitWaiting(
  store: Store,
  rows: readonly StoredTask[],
): Promise<{ waiting: StoredTask[]; others: StoredTask[] }> {
  const pending = rows.filter((r) => r.status === 'pending')
  const edges = pending.length === 0 ? new Map() : await store.dependencyEdges(pending.map((r) => r.id))
  return {
    waiting: rows.filter((r) => edges.has(r.id)),
    others: rows.filter((r) => !edges.has(r.id)),
  }
}
