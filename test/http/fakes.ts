/**
 * Small working implementations of the contracts the API takes from the other modules (schedules,
 * fleet, metrics), for tests; the real ones are wired in by the application.
 */
import { hostname } from 'node:os'
import { TaskloomError } from '../../src/errors.js'
import type {
  HttpMetrics,
  ScheduleInfoLike,
  ScheduleInputLike,
  SchedulesLike,
  WorkerInfoLike,
} from '../../src/http/index.js'

const CRON_FIELD = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/

export class MapSchedules implements SchedulesLike {
  readonly map = new Map<string, ScheduleInfoLike>()

  async upsert(s: ScheduleInputLike): Promise<ScheduleInfoLike> {
    const fields = s.cron.trim().split(/\s+/)
    if (fields.length !== 5 || !fields.every((f) => CRON_FIELD.test(f))) {
      throw new TaskloomError('INVALID_INPUT', `invalid cron expression ${JSON.stringify(s.cron)}`, {
        issues: [{ path: 'cron', message: 'expected 5 cron fields' }],
      })
    }
    const now = new Date()
    const info: ScheduleInfoLike = {
      id: s.id,
      cron: s.cron,
      taskName: typeof s.task === 'string' ? s.task : s.task.name,
      input: s.input,
      timezone: s.timezone ?? 'UTC',
      misfire: s.misfire ?? 'run-once',
      paused: false,
      tenantId: s.tenantId ?? null,
      nextRunAt: new Date(Math.ceil(now.getTime() / 60_000) * 60_000),
      lastRunAt: null,
      createdAt: this.map.get(s.id)?.createdAt ?? now,
    }
    this.map.set(s.id, info)
    return info
  }
  async create(s: ScheduleInputLike) {
    const existing = this.map.get(s.id)
    if (existing) return { schedule: existing, created: false }
    return { schedule: await this.upsert(s), created: true }
  }
  async get(id: string) {
    return this.map.get(id) ?? null
  }
  async list(opts: { tenantId?: string } = {}) {
    return [...this.map.values()].filter((s) => opts.tenantId === undefined || s.tenantId === opts.tenantId)
  }
  async remove(id: string) {
    return this.map.delete(id)
  }
  async pause(id: string) {
    return this.setPaused(id, true)
  }
  async resume(id: string) {
    return this.setPaused(id, false)
  }
  private setPaused(id: string, paused: boolean) {
    const s = this.map.get(id)
    if (!s) return false
    this.map.set(id, {
      ...s,
      paused,
      nextRunAt: paused ? null : new Date(Math.ceil(Date.now() / 60_000) * 60_000),
    })
    return true
  }
}

export const workersOf = (concurrency: number) => async (): Promise<WorkerInfoLike[]> => [
  {
    id: `${hostname()}:${process.pid}`,
    status: 'ACTIVE',
    lastHeartbeat: new Date(),
    tasksInHand: 0,
    tasksProcessed: 0,
    hostname: hostname(),
    pid: process.pid,
    concurrency,
    startedAt: new Date(Date.now() - 1000),
  },
]

export class RecordingMetrics implements HttpMetrics {
  readonly requests: { route: string; method: string; status: number; seconds: number }[] = []
  readonly limited: string[] = []
  observeRequest(route: string, method: string, status: number, seconds: number) {
    this.requests.push({ route, method, status, seconds })
  }
  rateLimitHit(tenantId: string) {
    this.limited.push(tenantId)
  }
  async render() {
    const counts = new Map<string, number>()
    for (const r of this.requests) {
      const k = `route="${r.route}",method="${r.method}",status="${r.status}"`
      counts.set(k, (counts.get(k) ?? 0) + 1)
    }
    const lines = [...counts].map(([k, n]) => `taskloom_http_requests_total{${k}} ${n}`)
    return { contentType: 'text/plain; version=0.0.4', body: `${lines.join('\n')}\n` }
  }
}
