/** From taskloom's objects to the API's snake_case bodies. */
import type { TaskInfo } from '../queue/task-info.js'
import type { ErrorInfo } from '../task/model.js'
import { type ApiKeyInfo, isOperator } from './api-keys.js'
import type { ScheduleInfoLike, WorkerInfoLike } from './options.js'
import type { TenantGrant, TenantSettings } from './tenants.js'

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null)
const errorText = (e: ErrorInfo | null | undefined) => (e ? `${e.name}: ${e.message}` : null)

export function taskBody(t: TaskInfo) {
  return {
    task_id: t.id,
    name: t.name,
    status: t.status,
    priority: t.priority,
    created_at: t.createdAt.toISOString(),
    scheduled_at: t.runAt.toISOString(),
    started_at: iso(t.startedAt),
    completed_at: iso(t.completedAt),
    duration_ms: t.durationMs ?? null,
    retry_count: t.retryCount,
    max_retries: t.maxRetries,
    timeout: t.timeoutMs / 1000,
    idempotency_key: t.idempotencyKey ?? null,
    error: errorText(t.error),
    deferred_until: iso(t.deferredUntil),
    deferred_by: t.deferredBy ?? null,
    progress: t.progress ?? null,
    ...dependencyBody(t),
  }
}

/** The dependency fields, on tasks that have dependencies, dependents or a flow (docs/workflows.md). */
function dependencyBody(t: TaskInfo) {
  if (t.dependsOn === undefined && t.dependents === undefined && t.flowId === undefined) return {}
  const ref = (r: { id: string; queue: string }) => ({ task_id: r.id, queue: r.queue })
  return {
    depends_on: (t.dependsOn ?? []).map((d) => ({ ...ref(d), on_failure: d.onFailure })),
    dependents: (t.dependents ?? []).map(ref),
    waiting_for: (t.waitingFor ?? []).map(ref),
    flow_id: t.flowId ?? null,
  }
}

export function deadTaskBody(t: TaskInfo) {
  return {
    ...taskBody(t),
    payload: t.input,
    history: t.history.map((h) => ({
      attempt: h.attempt,
      worker_id: h.workerId,
      started_at: new Date(h.startedAt).toISOString(),
      ended_at: new Date(h.endedAt).toISOString(),
      outcome: h.outcome,
      error: errorText(h.error) ?? '',
    })),
  }
}

export function keyBody(k: ApiKeyInfo) {
  return {
    key_id: k.id,
    prefix: k.prefix,
    tenant_id: isOperator(k) ? null : k.tenantId,
    name: k.name,
    scopes: k.scopes,
    rate_limit: k.rateLimit,
    monthly_quota: k.monthlyQuota,
    is_active: k.isActive && !k.revokedAt,
    created_at: k.createdAt.toISOString(),
    expires_at: iso(k.expiresAt),
    revoked_at: iso(k.revokedAt),
    last_used_at: iso(k.lastUsedAt),
  }
}

export function scheduleBody(s: ScheduleInfoLike) {
  return {
    schedule_id: s.id,
    name: s.taskName,
    cron: s.cron,
    timezone: s.timezone,
    misfire: s.misfire,
    paused: s.paused,
    payload: s.input ?? null,
    next_run_at: iso(s.nextRunAt),
    last_run_at: iso(s.lastRunAt),
    created_at: s.createdAt.toISOString(),
  }
}

export function workerBody(w: WorkerInfoLike) {
  return {
    worker_id: w.id,
    status: w.status,
    last_heartbeat: w.lastHeartbeat.toISOString(),
    tasks_in_hand: w.tasksInHand,
    tasks_processed: w.tasksProcessed,
    hostname: w.hostname,
    pid: w.pid,
    concurrency: w.concurrency,
    started_at: w.startedAt.toISOString(),
  }
}

export function tenantBody(settings: TenantSettings, grant: TenantGrant) {
  return {
    tenant_id: settings.tenantId,
    rate_limit: grant.rateLimit,
    monthly_quota: grant.monthlyQuota,
    scopes: grant.scopes,
    configured: {
      rate_limit: settings.rateLimit,
      monthly_quota: settings.monthlyQuota,
      scopes: settings.scopes,
    },
    updated_at: iso(settings.updatedAt),
  }
}
