/**
 * Flow control's series (src/flow), read from `queue.counts({ flow: true })` at scrape: ready and
 * running tasks per group (groups past the label bound share `_other`, their counts added up),
 * paused scopes, and how long throttled or rate-limited scopes still wait. Each scrape replaces the
 * previous one's label sets, so a group that drained leaves no stale series.
 */
import { Counter, Gauge, type Registry } from 'prom-client'
import type { QueueCounts } from '../broker/broker.js'
import type { BoundedLabel } from './labels.js'

export interface FlowSeriesOptions {
  prefix: string
  registers: Registry[]
  /** Group names (they default to tenant ids: off with `tenantLabels: false`). */
  groups: BoundedLabel
  /** Task names. */
  names: BoundedLabel
  /** Every observed queue's counts of this scrape (with `flow`), by queue name. */
  read(): Promise<[queue: string, counts: QueueCounts | undefined][]>
}

export function registerFlowSeries(o: FlowSeriesOptions): Counter<'task_type' | 'scope'> {
  const { prefix: p, registers } = o
  const label = (kind: string, name: string) =>
    kind === 'queue' ? '' : kind === 'task' ? o.names.value(name) : o.groups.value(name)
  const perGroup = (name: string, help: string, pick: (g: { ready: number; running: number }) => number) =>
    new Gauge({
      name: `${p}${name}`,
      help,
      labelNames: ['queue', 'group'],
      registers,
      async collect() {
        const read = await o.read()
        this.reset()
        for (const [queue, counts] of read) {
          const sums = new Map<string, number>()
          for (const g of counts?.flow?.groups ?? []) {
            const group = o.groups.value(g.group)
            sums.set(group, (sums.get(group) ?? 0) + pick(g))
          }
          for (const [group, n] of sums) this.set({ queue, group }, n)
        }
      },
    })
  perGroup(
    'task_group_ready_count',
    'Ready tasks per flow-control group (queues with fairness, group caps or group limits).',
    (g) => g.ready,
  )
  perGroup(
    'task_group_running_count',
    'Tasks processing per flow-control group, fleet-wide.',
    (g) => g.running,
  )
  new Gauge({
    name: `${p}task_flow_paused`,
    help: 'Paused scopes: 1 per paused queue (name empty), task name or group.',
    labelNames: ['queue', 'kind', 'name'],
    registers,
    async collect() {
      const read = await o.read()
      this.reset()
      for (const [queue, counts] of read) {
        const paused = counts?.flow?.paused
        if (!paused) continue
        this.set({ queue, kind: 'queue', name: '' }, paused.queue ? 1 : 0)
        for (const t of paused.tasks) this.set({ queue, kind: 'task', name: label('task', t) }, 1)
        for (const g of paused.groups) this.set({ queue, kind: 'group', name: label('group', g) }, 1)
      }
    },
  })
  new Gauge({
    name: `${p}task_flow_wait_seconds`,
    help: 'How long a throttled or rate-limited scope (queue, task name or group) still waits before its tasks start again.',
    labelNames: ['queue', 'kind', 'name'],
    registers,
    async collect() {
      const read = await o.read()
      this.reset()
      const now = Date.now()
      for (const [queue, counts] of read) {
        for (const w of counts?.flow?.waiting ?? []) {
          const labels = { queue, kind: w.kind, name: label(w.kind, w.name) }
          this.set(labels, Math.max(w.until - now, 0) / 1000)
        }
      }
    },
  })
  return new Counter({
    name: `${p}tasks_rate_limited_total`,
    help: 'Tasks given back unrun (no attempt spent) because their handler was rate-limited upstream (RateLimitedError, ctx.rateLimit), by scope stopped.',
    labelNames: ['task_type', 'scope'],
    registers,
  })
}
