/** `createApi` options and the structural contracts the API takes from the rest of taskloom. */
import type { WorkerInfo } from '../fleet/workers.js'
import type { Logger } from '../logger.js'
import type { Queue } from '../queue/queue.js'
import type { SchedulerOptions } from '../schedule/scheduler.js'
import type { ScheduleInfo, ScheduleInput, ScheduleListOptions } from '../schedule/schedules.js'
import type { PostgresInput } from '../store/postgres/connection.js'
import type { TaskDefinition } from '../task/define-task.js'

/** Metrics the API reports; `createMetrics()` of taskloom's observability module satisfies it. */
export interface HttpMetrics {
  /** `route` is the template, e.g. '/tasks/:id'. */
  observeRequest(route: string, method: string, status: number, seconds: number): void
  rateLimitHit(tenantId: string): void
  /** The Prometheus text for GET /metrics. */
  render(): Promise<{ contentType: string; body: string }>
}

/** A schedule as the schedules service answers it (`queue.schedules`; a subset, for other services). */
export type ScheduleInfoLike = Omit<ScheduleInfo, 'options' | 'updatedAt'>

export type ScheduleInputLike = ScheduleInput

/** What the API uses of `queue.schedules`; pass another service of this shape to replace it. */
export interface SchedulesLike {
  upsert(s: ScheduleInputLike): Promise<ScheduleInfoLike>
  /** Create-if-absent, atomically (`POST /tasks` with `schedule`): a taken id answers the stored one. */
  create(s: ScheduleInputLike): Promise<{ schedule: ScheduleInfoLike; created: boolean }>
  get(id: string): Promise<ScheduleInfoLike | null>
  list(opts?: ScheduleListOptions): Promise<ScheduleInfoLike[]>
  remove(id: string): Promise<boolean>
  /** Stops firing until `resume`; false when there is no such schedule. Absent: pause answers 501. */
  pause?(id: string): Promise<boolean>
  /** Fires again from the next tick; false when there is no such schedule. Absent: resume answers 501. */
  resume?(id: string): Promise<boolean>
}

/** A worker as `queue.workers()` answers it. */
export type WorkerInfoLike = WorkerInfo

export interface ApiOptions {
  /** The queue the API submits to and reads from. */
  queue: Queue
  /** Tasks that can be submitted by name. */
  tasks?: readonly TaskDefinition<any, any>[]
  /**
   * Finds a task not in `tasks` by name, so an API process without the handler code can submit it;
   * answer null for an unknown name. Default: the task definitions workers registered
   * (`queue.definitions.resolve`), when the queue has a store.
   */
  resolveTask?: (name: string) => Promise<TaskDefinition<any, any> | null>
  /** Cron schedules. Default: `queue.schedules` when the queue has a store; without one, the schedule endpoints answer 501. */
  schedules?: SchedulesLike
  /**
   * Runs a scheduler in this process, so schedules made over REST fire: `true`, or the scheduler's
   * options (see `createScheduler`). It starts when the API opens (at mount, or the first request)
   * and stops with `api.close()`. Any number of API processes may each run one: every tick still
   * makes exactly one task. Default: on when the schedules are the queue's own (`queue.schedules`);
   * off when you pass `schedules` (that service fires its own) or the queue has no store. `false`
   * when a scheduler runs elsewhere (`createScheduler` in another process). `true` without a store
   * fails the open with INVALID_OPTIONS.
   */
  scheduler?: boolean | Omit<SchedulerOptions, 'queue'>
  /** The worker fleet for GET /workers. Default: `() => queue.workers()`. */
  workers?: () => Promise<WorkerInfoLike[]>
  /**
   * Prometheus metrics, served by GET /metrics to operator keys only (they show every tenant), or
   * by `metricsHandler(api)` from `taskloom/node` on a listener the host keeps private. Absent:
   * GET /metrics answers 501.
   */
  metrics?: HttpMetrics
  /**
   * Requests per minute per tenant (all its keys together), for tenants the operator gave no
   * `rate_limit`. A key's own `rate_limit` is a tighter limit within it. Default 1000.
   */
  rateLimit?: number
  /**
   * Task submissions per calendar month (UTC) per tenant (all its keys together), for tenants the
   * operator gave no `monthly_quota`. A key's own `monthly_quota` is a tighter quota within it.
   * Default: unlimited.
   */
  quota?: number
  /** Days audit entries are kept. Default 90. */
  auditRetentionDays?: number
  /** Largest request body in bytes. Default 1 MiB. */
  bodyLimit?: number
  /** How long a verified key is trusted before it is checked again. Default 5,000 ms; 0: every request. */
  keyCacheMs?: number
  /**
   * Where API keys and the audit log live, when not in the queue's store (e.g. a Redis-only
   * queue): a postgres:// URL, a pg.Pool or PGlite options. Default: the queue's store.
   */
  postgres?: PostgresInput
  /** Schema for `postgres`. Default 'taskloom'. */
  postgresSchema?: string
  /** Apply missing migrations to `postgres` at start. Default false. */
  migrate?: boolean
  /** Version reported by GET /health. Default: taskloom's. */
  version?: string
  logger?: Logger
}

export const API_DEFAULTS = {
  rateLimit: 1000,
  auditRetentionDays: 90,
  bodyLimit: 1_048_576,
  keyCacheMs: 5000,
}
