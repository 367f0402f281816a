/**
 * The in-process broker's event totals (Redis keeps them in the hash `stats`, see common.lua's
 * `tally`): one running count per (event, tenant, task name, detail).
 */
import type { EventCount, TaskEvent } from '../broker.js'

export class EventCounts {
  private readonly counts = new Map<string, EventCount>()

  add(event: TaskEvent, task: { readonly tenantId: string; readonly name: string }, detail = ''): void {
    const key = JSON.stringify([event, task.tenantId, task.name, detail])
    const count = this.counts.get(key)
    if (count) count.count += 1
    else this.counts.set(key, { event, tenantId: task.tenantId, taskName: task.name, detail, count: 1 })
  }

  list(): EventCount[] {
    return [...this.counts.values()].map((c) => ({ ...c }))
  }
}
