/**
 * The API's bodies as zod schemas, snake_case as in the spec. Requests are validated with them, and
 * `GET /openapi.json` is generated from the same objects, so the two cannot disagree.
 */
import { z } from 'zod'
import { MAX_RETRIES_LIMIT, MAX_TIMEOUT_MS } from '../task/define-task.js'
import { FAILURE_POLICIES } from '../task/dependency-options.js'
import { PRIORITIES, TASK_STATUSES } from '../task/model.js'
import { TENANT_ID } from '../task/validate.js'
import { SCOPES } from './api-keys.js'
import { AUDIT_ACTIONS } from './audit.js'
import { PROBLEM_STATUS } from './problem.js'
import { MAX_LIMIT, TENANT_SCOPES } from './tenants.js'

const timestamp = z.iso.datetime({ offset: true }).meta({ example: '2024-01-15T10:30:00.000Z' })
const nullableTimestamp = timestamp.nullable()
const taskId = z.string().meta({ example: '550e8400-e29b-41d4-a716-446655440000' })
const taskStatus = z.enum(TASK_STATUSES)
const taskRef = z.object({ task_id: taskId, queue: z.string() })
const cron = z.string().min(1).max(200).meta({ example: '*/5 * * * *' })

export const SubmitTaskBody = z
  .strictObject({
    name: z.string().min(1).max(200).meta({ description: 'A registered task name', example: 'send-email' }),
    payload: z.unknown().optional().meta({ description: "The task's input, validated by its schema" }),
    priority: z.enum(PRIORITIES).optional(),
    schedule: cron.optional().meta({
      description: 'A cron expression: instead of one task now, a schedule that submits it on every tick',
    }),
    timeout: z
      .number()
      .positive()
      .max(MAX_TIMEOUT_MS / 1000)
      .optional()
      .meta({ description: 'Per-attempt timeout in seconds (default: the task definition)' }),
    max_retries: z.number().int().min(0).max(MAX_RETRIES_LIMIT).optional(),
    idempotency_key: z.string().min(1).max(255).optional(),
    run_at: timestamp.optional().meta({ description: 'Run no sooner than this time' }),
  })
  .meta({ id: 'SubmitTaskRequest' })

export const SubmitTaskResponse = z
  .object({ task_id: taskId, status: taskStatus, created_at: timestamp })
  .meta({ id: 'SubmitTaskResponse' })

export const Task = z
  .object({
    task_id: taskId,
    name: z.string(),
    status: taskStatus,
    priority: z.enum(PRIORITIES),
    created_at: timestamp,
    scheduled_at: timestamp,
    started_at: nullableTimestamp,
    completed_at: nullableTimestamp,
    duration_ms: z.number().int().nullable(),
    retry_count: z.number().int(),
    max_retries: z.number().int(),
    timeout: z.number().meta({ description: 'Per-attempt timeout in seconds' }),
    idempotency_key: z.string().nullable(),
    error: z.string().nullable(),
    deferred_until: nullableTimestamp.meta({
      description: 'While a circuit breaker holds the task back: when it may run again; else null',
    }),
    deferred_by: z.string().nullable().meta({
      description: "The circuit breaker holding the task back (e.g. 'smtp', or 'smtp@<tenant>'); else null",
    }),
    progress: z
      .union([z.number(), z.record(z.string(), z.unknown())])
      .nullable()
      .meta({ description: "The handler's latest ctx.progress value (0-100, or a small object); else null" }),
    depends_on: z
      .array(taskRef.extend({ on_failure: z.enum(FAILURE_POLICIES) }))
      .optional()
      .meta({ description: 'Tasks with dependencies, dependents or a flow: what it runs after' }),
    dependents: z.array(taskRef).optional().meta({ description: 'The tasks that wait for it' }),
    waiting_for: z
      .array(taskRef)
      .optional()
      .meta({ description: 'The dependencies a pending task still waits for (empty once released)' }),
    flow_id: z.string().nullable().optional().meta({ description: 'The flow that created it (POST /flows)' }),
  })
  .meta({ id: 'Task' })

// --- Task logs (issue 17) ---
export const TaskLogsQuery = z.strictObject({
  tail: z.coerce.number().int().min(1).max(10_000).optional().meta({
    description: 'Answer the last `tail` lines (wins over offset and limit)',
  }),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
})
export const TaskLogs = z
  .object({
    task_id: taskId,
    lines: z.array(
      z.object({
        line: z.string(),
        at: timestamp,
        seq: z.number().int().meta({ description: "The line's number within the task, from 1" }),
        attempt_token: z.number().int().meta({
          description:
            'The fencing token of the attempt that wrote it (lines of later attempts have larger ones)',
        }),
      }),
    ),
    total: z.number().int().meta({ description: 'Lines kept for the task (the last `maxLogLines`)' }),
    offset: z.number().int(),
  })
  .meta({ id: 'TaskLogs' })

export const TaskResultResponse = z
  .object({
    task_id: taskId,
    status: taskStatus,
    result: z.unknown().meta({ description: "The handler's return value once completed, else null" }),
    error: z.string().nullable(),
  })
  .meta({ id: 'TaskResult' })

export const CancelResponse = z
  .object({ task_id: taskId, status: z.literal('cancelled') })
  .meta({ id: 'CancelResponse' })

const page = { total: z.number().int(), limit: z.number().int(), offset: z.number().int() }
export const TaskList = z.object({ tasks: z.array(Task), ...page }).meta({ id: 'TaskList' })

export const ListQuery = z.strictObject({
  status: taskStatus.optional(),
  name: z.string().min(1).max(200).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
})
export const PageQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
})

export const Health = z
  .object({
    status: z.enum(['healthy', 'unhealthy']),
    version: z.string(),
    uptime_seconds: z.number().int(),
    reason: z
      .string()
      .optional()
      .meta({ description: 'Why the process cannot recover (503): its queue failed to open for good' }),
  })
  .meta({ id: 'Health' })

const check = z.enum(['ok', 'error', 'not_configured'])
export const Readiness = z
  .object({
    status: z.enum(['ready', 'not_ready']),
    checks: z.object({ redis: check, postgres: check }),
    errors: z
      .object({ redis: z.string().optional(), postgres: z.string().optional() })
      .optional()
      .meta({ description: 'What each failing check met' }),
  })
  .meta({ id: 'Readiness' })

export const Quota = z
  .object({
    tenant_id: z.string(),
    key_id: z.string(),
    period: z.string().meta({ example: '2026-11' }),
    monthly_quota: z.number().int().nullable(),
    used: z.number().int(),
    remaining: z.number().int().nullable(),
    resets_at: timestamp,
    rate_limit: z
      .number()
      .int()
      .meta({ description: "The tenant's requests per minute, all its keys together" }),
    key: z
      .object({
        key_id: z.string(),
        rate_limit: z.number().int().nullable().meta({ description: "The key's own tighter limit, if any" }),
        monthly_quota: z.number().int().nullable(),
        used: z.number().int(),
        remaining: z.number().int().nullable(),
      })
      .meta({ description: "The calling key's own sub-limits and its submissions this period" }),
  })
  .meta({
    id: 'Quota',
    description: "The tenant's submissions this period against its monthly quota (all its keys together)",
  })

const misfire = z.enum(['skip', 'run-once', 'catch-up'])
/** A tenant's schedule id (and, with `schedule`, a submit's idempotency key). */
export const SCHEDULE_KEY = /^[A-Za-z0-9._:-]{1,100}$/
export const SCHEDULE_KEY_RULE = "1-100 letters, digits, '.', '_', ':' or '-'"

export const CreateScheduleBody = z
  .strictObject({
    id: z.string().regex(SCHEDULE_KEY, SCHEDULE_KEY_RULE).optional(),
    name: z.string().min(1).max(200).meta({ description: 'The task name' }),
    cron,
    payload: z.unknown().optional(),
    timezone: z.string().min(1).max(100).optional(),
    misfire: misfire.optional(),
    priority: z.enum(PRIORITIES).optional(),
    timeout: z
      .number()
      .positive()
      .max(MAX_TIMEOUT_MS / 1000)
      .optional(),
    max_retries: z.number().int().min(0).max(MAX_RETRIES_LIMIT).optional(),
  })
  .meta({ id: 'CreateScheduleRequest' })

export const Schedule = z
  .object({
    schedule_id: z.string(),
    name: z.string(),
    cron: z.string(),
    timezone: z.string(),
    misfire: misfire,
    paused: z.boolean(),
    payload: z.unknown(),
    next_run_at: nullableTimestamp,
    last_run_at: nullableTimestamp,
    created_at: timestamp,
  })
  .meta({ id: 'Schedule' })
export const ScheduleList = z.object({ schedules: z.array(Schedule) }).meta({ id: 'ScheduleList' })

const attempt = z.object({
  attempt: z.number().int(),
  worker_id: z.string(),
  started_at: timestamp,
  ended_at: timestamp,
  outcome: z.string(),
  error: z.string(),
})
export const DeadTask = Task.extend({ payload: z.unknown(), history: z.array(attempt) }).meta({
  id: 'DeadTask',
})
export const DeadTaskList = z.object({ tasks: z.array(Task), ...page }).meta({ id: 'DeadTaskList' })
export const RetryResponse = z.object({ task_id: taskId, status: taskStatus }).meta({ id: 'RetryResponse' })
export const RetryAllResponse = z.object({ retried: z.number().int() }).meta({ id: 'RetryAllResponse' })

export const Worker = z
  .object({
    worker_id: z.string(),
    status: z.enum(['ACTIVE', 'IDLE', 'UNHEALTHY']),
    last_heartbeat: timestamp,
    tasks_in_hand: z.number().int(),
    tasks_processed: z.number().int(),
    hostname: z.string(),
    pid: z.number().int(),
    concurrency: z.number().int(),
    started_at: timestamp,
  })
  .meta({ id: 'Worker' })
export const WorkerList = z.object({ workers: z.array(Worker) }).meta({ id: 'WorkerList' })

const scope = z.enum(SCOPES)
const tenantScope = z.enum(TENANT_SCOPES)
export const CreateKeyBody = z
  .strictObject({
    name: z.string().min(1).max(200).optional(),
    scopes: z.array(tenantScope).min(1),
    rate_limit: z.number().int().min(1).max(MAX_LIMIT).optional().meta({
      description: "Requests per minute, within the tenant's; default: the creating admin key's own",
    }),
    monthly_quota: z.number().int().min(1).max(MAX_LIMIT).optional().meta({
      description: "Task submissions per month, within the tenant's; default: the creating admin key's own",
    }),
    expires_at: timestamp
      .optional()
      .meta({ description: "In the future; default: the creating admin key's own expiry" }),
  })
  .meta({ id: 'CreateApiKeyRequest' })

export const ApiKey = z
  .object({
    key_id: z.string(),
    prefix: z.string(),
    tenant_id: TENANT_ID.nullable().meta({ description: 'null for an operator key' }),
    name: z.string().nullable(),
    scopes: z.array(scope),
    rate_limit: z.number().int().nullable(),
    monthly_quota: z.number().int().nullable(),
    is_active: z.boolean(),
    created_at: timestamp,
    expires_at: nullableTimestamp,
    revoked_at: nullableTimestamp,
    last_used_at: nullableTimestamp.meta({
      description: 'The last successful authentication, to the minute; null if never used',
    }),
  })
  .meta({ id: 'ApiKey' })
export const CreatedKey = ApiKey.extend({
  key: z.string().meta({ description: 'The secret; shown once, never again' }),
}).meta({ id: 'CreatedApiKey' })
export const KeyList = z.object({ keys: z.array(ApiKey) }).meta({ id: 'ApiKeyList' })

const limitSetting = z.number().int().min(1).max(MAX_LIMIT).nullable()
export const TenantSettingsBody = z
  .strictObject({
    rate_limit: limitSetting
      .optional()
      .meta({ description: "Requests per minute, all the tenant's keys together; null: the API's default" }),
    monthly_quota: limitSetting.optional().meta({
      description: "Task submissions per month (UTC), all its keys together; null: the API's default",
    }),
    scopes: z
      .array(tenantScope)
      .nullable()
      .optional()
      .meta({ description: 'The scopes its keys may hold (admin: it may have admins); null: all' }),
  })
  .meta({ id: 'TenantSettingsRequest', description: 'Fields left out stay as they are' })
export const Tenant = z
  .object({
    tenant_id: TENANT_ID,
    rate_limit: z.number().int().meta({ description: 'Requests per minute, all its keys together' }),
    monthly_quota: z
      .number()
      .int()
      .nullable()
      .meta({ description: 'Task submissions per month; null: unlimited' }),
    scopes: z.array(tenantScope),
    configured: z
      .object({
        rate_limit: limitSetting,
        monthly_quota: limitSetting,
        scopes: z.array(tenantScope).nullable(),
      })
      .meta({ description: "What the operator set (null: the API's default)" }),
    updated_at: nullableTimestamp,
  })
  .meta({ id: 'Tenant' })
export const TenantList = z.object({ tenants: z.array(Tenant) }).meta({ id: 'TenantList' })

export const Problem = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    code: z.enum(Object.keys(PROBLEM_STATUS) as [keyof typeof PROBLEM_STATUS]),
    detail: z.string(),
    instance: z.string().optional(),
    request_id: z.string().optional(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .meta({ id: 'Problem' })

const auditText = z.string().min(1).max(200)
export const AuditQuery = z.strictObject({
  action: z.enum(AUDIT_ACTIONS).optional(),
  key_id: auditText.optional().meta({ description: 'Entries made with this API key id' }),
  target_id: auditText.optional().meta({ description: 'Entries about this task, schedule or key' }),
  request_id: auditText.optional(),
  since: timestamp.optional().meta({ description: 'Entries at or after this time' }),
  until: timestamp.optional().meta({ description: 'Entries before this time' }),
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  cursor: z
    .string()
    .regex(/^[1-9][0-9]{0,17}$/, 'a next_cursor from a previous page')
    .optional()
    .meta({ description: "The previous page's `next_cursor`" }),
})

/** The operator's audit query: every tenant's entries, or one tenant's with `tenant`. */
export const OperatorAuditQuery = AuditQuery.extend({
  tenant: TENANT_ID.optional().meta({ description: "Only this tenant's entries" }),
})

export const AuditEntry = z
  .object({
    id: z.string(),
    at: timestamp,
    action: z.enum(AUDIT_ACTIONS),
    tenant_id: z.string().nullable(),
    key_id: z.string().nullable().meta({ description: 'The API key that made the request, if any' }),
    request_id: z.string().nullable(),
    target_id: z.string().nullable(),
    details: z.record(z.string(), z.unknown()).nullable(),
  })
  .meta({ id: 'AuditEntry' })
export const AuditPage = z
  .object({
    entries: z.array(AuditEntry),
    next_cursor: z
      .string()
      .nullable()
      .meta({ description: 'Pass as `cursor` for the next page; null at the end' }),
  })
  .meta({ id: 'AuditPage' })
