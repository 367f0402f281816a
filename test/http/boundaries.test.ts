/**
 * The tenant-boundary matrix: the operator's key, and an admin, an app and a submit-only key of each
 * of two tenants, against every endpoint of the API, on Express, Fastify and node:http. For each
 * (endpoint, key) the ACCESS table says who may call it: everyone else gets 403; who may gets the
 * success status on its own tenant's resource and 404 on the other tenant's; and no answer to a
 * tenant's key names the other tenant or any of its resources.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { until } from '../helpers/backends.js'
import { hasPostgres, hasRedis, uniqueName } from '../helpers/services.js'
import { MapSchedules, RecordingMetrics, workersOf } from './fakes.js'
import {
  type Answer,
  call,
  doomed,
  SERVERS,
  type ServerKind,
  type Stack,
  sendEmail,
  startStack,
} from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

type TenantKey = 'admin' | 'app' | 'submit'
type Caller = 'operator' | TenantKey
const TENANT_KEYS: TenantKey[] = ['admin', 'app', 'submit']
const TENANT_SCOPES = {
  admin: ['admin'],
  app: ['task:create', 'task:read', 'task:list', 'task:cancel'],
  submit: ['task:create'],
} as const

interface Tenant {
  id: string
  keys: Record<TenantKey, string>
  /** Every id of this tenant's resources the matrix made (tasks, schedules, keys). */
  ids: Set<string>
}

interface Access {
  /** Who may call it (public endpoints: everyone, without a key too). */
  allowed: Caller[] | 'public'
  /** The success status. */
  ok: number
  /**
   * The request for a resource of `owner` (a fresh one where the call uses it up). Endpoints
   * without a resource of a tenant ignore `owner`.
   */
  request(owner: Tenant): Promise<{ path: string; json?: unknown }>
  /** The path names one tenant's resource: a caller of the other tenant gets 404. */
  owned?: boolean
  /**
   * A request for more than a tenant key may have (`{own}`: the caller's tenant): 403 for every
   * tenant key, whatever its scopes.
   */
  escalate?: { path: string; json: unknown }
}

describe.skipIf(!up)('the tenant-boundary matrix', () => {
  let stack: Stack
  let operator: string
  const tenants: Tenant[] = []
  let fresh: {
    pending(t: Tenant): Promise<string>
    completed(t: Tenant): Promise<string>
    dead(t: Tenant): Promise<string>
    schedule(t: Tenant): Promise<string>
    key(t: Tenant): Promise<string>
    flow(t: Tenant): Promise<string>
  }
  const completedOf = new Map<string, string>()

  beforeAll(async () => {
    stack = await startStack({
      schedules: new MapSchedules(),
      workers: workersOf(4),
      metrics: new RecordingMetrics(),
      // The matrix makes a few hundred requests per tenant; the limits have their own tests.
      rateLimit: 1_000_000,
    })
    operator = await stack.operatorKey()
    for (const name of ['alpha', 'beta']) {
      const id = uniqueName(name)
      const keys = {} as Record<TenantKey, string>
      for (const k of TENANT_KEYS) keys[k] = await stack.key(id, [...TENANT_SCOPES[k]])
      tenants.push({ id, keys, ids: new Set() })
    }
    const keys = await stack.api.keys()
    const remember = (t: Tenant, id: string) => {
      t.ids.add(id)
      return id
    }
    fresh = {
      async pending(t) {
        const task = await stack.queue.submit(
          sendEmail,
          { to: 'p@p.co', subject: 'later' },
          { tenantId: t.id, runAt: Date.now() + 3_600_000 },
        )
        return remember(t, task.id)
      },
      async completed(t) {
        const task = await stack.queue.submit(sendEmail, { to: 'c@c.co', subject: 'now' }, { tenantId: t.id })
        await until(async () => (await stack.queue.get(task.id))?.status === 'completed')
        return remember(t, task.id)
      },
      async dead(t) {
        const task = await stack.queue.submit(doomed, { why: 'matrix' }, { tenantId: t.id })
        await until(async () => (await stack.queue.get(task.id))?.status === 'failed')
        // The DLQ list reads the store, whose view catches up through the change feed.
        await until(async () => {
          const page = await stack.queue.list({ tenantId: t.id, status: 'failed', limit: 1000 })
          return page.tasks.some((x) => x.id === task.id)
        })
        return remember(t, task.id)
      },
      async schedule(t) {
        const id = uniqueName('sched')
        const r = await call(stack.url.node, 'POST', '/schedules', {
          key: t.keys.app,
          json: { id, name: 'send-email', cron: '0 3 * * *', payload: { to: 's@s.co', subject: 's' } },
        })
        expect(r.status).toBe(201)
        return remember(t, id)
      },
      async flow(t) {
        const flow = await stack.queue.flow(
          {
            task: sendEmail,
            input: { to: 'r@r.co', subject: 'root' },
            children: [{ task: sendEmail, input: { to: 'l@l.co', subject: 'leaf' } }],
          },
          { tenantId: t.id },
        )
        for (const id of Object.values(flow.ids)) remember(t, id)
        return remember(t, flow.flowId)
      },
      async key(t) {
        return remember(t, (await keys.create({ tenantId: t.id, scopes: ['task:read'] })).info.id)
      },
    }
    for (const t of tenants) completedOf.set(t.id, await fresh.completed(t))
  }, 120_000)
  afterAll(() => stack?.close())

  const submitBody = { name: 'send-email', payload: { to: 'm@m.co', subject: 'matrix' } }
  const ACCESS: Record<string, Access> = {
    'GET /health': { allowed: 'public', ok: 200, request: async () => ({ path: '/health' }) },
    'GET /ready': { allowed: 'public', ok: 200, request: async () => ({ path: '/ready' }) },
    'GET /openapi.json': { allowed: 'public', ok: 200, request: async () => ({ path: '/openapi.json' }) },
    'POST /tasks': {
      allowed: ['admin', 'app', 'submit'],
      ok: 201,
      request: async () => ({ path: '/tasks', json: submitBody }),
    },
    'GET /tasks': { allowed: ['admin', 'app'], ok: 200, request: async () => ({ path: '/tasks' }) },
    'GET /tasks/:id': {
      allowed: ['admin', 'app'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/tasks/${completedOf.get(t.id)}` }),
    },
    'GET /tasks/:id/result': {
      allowed: ['admin', 'app'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/tasks/${completedOf.get(t.id)}/result` }),
    },
    'GET /tasks/:id/logs': {
      allowed: ['admin', 'app'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/tasks/${completedOf.get(t.id)}/logs` }),
    },
    'POST /tasks/:id/cancel': {
      allowed: ['admin', 'app'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/tasks/${await fresh.pending(t)}/cancel` }),
    },
    'POST /flows': {
      allowed: ['admin', 'app', 'submit'],
      ok: 201,
      request: async () => ({
        path: '/flows',
        json: {
          task: 'send-email',
          input: { to: 'f@f.co', subject: 'root' },
          children: [{ task: 'send-email', input: { to: 'g@g.co', subject: 'leaf' } }],
        },
      }),
    },
    'GET /flows/:id': {
      allowed: ['admin', 'app'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/flows/${await fresh.flow(t)}` }),
    },
    'GET /quota': { allowed: ['admin', 'app', 'submit'], ok: 200, request: async () => ({ path: '/quota' }) },
    'POST /schedules': {
      allowed: ['admin', 'app', 'submit'],
      ok: 201,
      request: async () => ({
        path: '/schedules',
        json: {
          id: uniqueName('s'),
          name: 'send-email',
          cron: '0 4 * * *',
          payload: { to: 'x@x.co', subject: 'x' },
        },
      }),
    },
    'GET /schedules': { allowed: ['admin', 'app'], ok: 200, request: async () => ({ path: '/schedules' }) },
    'DELETE /schedules/:id': {
      allowed: ['admin', 'app'],
      ok: 204,
      owned: true,
      request: async (t) => ({ path: `/schedules/${await fresh.schedule(t)}` }),
    },
    'GET /schedules/:id': {
      allowed: ['admin', 'app'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/schedules/${await fresh.schedule(t)}` }),
    },
    'POST /schedules/:id/pause': {
      allowed: ['admin', 'app', 'submit'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/schedules/${await fresh.schedule(t)}/pause` }),
    },
    'POST /schedules/:id/resume': {
      allowed: ['admin', 'app', 'submit'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/schedules/${await fresh.schedule(t)}/resume` }),
    },
    'GET /admin/audit': { allowed: ['admin'], ok: 200, request: async () => ({ path: '/admin/audit' }) },
    'GET /operator/audit': {
      allowed: ['operator'],
      ok: 200,
      request: async (t) => ({ path: `/operator/audit?tenant=${t.id}` }),
    },
    'GET /admin/dlq': { allowed: ['admin'], ok: 200, request: async () => ({ path: '/admin/dlq' }) },
    'GET /admin/dlq/:id': {
      allowed: ['admin'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/admin/dlq/${await fresh.dead(t)}` }),
    },
    'POST /admin/dlq/:id/retry': {
      allowed: ['admin'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/admin/dlq/${await fresh.dead(t)}/retry` }),
    },
    'POST /admin/dlq/retry': {
      allowed: ['admin'],
      ok: 200,
      request: async () => ({ path: '/admin/dlq/retry' }),
    },
    'POST /admin/keys': {
      allowed: ['admin'],
      ok: 201,
      request: async () => ({ path: '/admin/keys', json: { scopes: ['task:read'] } }),
      escalate: {
        path: '/admin/keys',
        json: { scopes: ['task:create', 'admin'], rate_limit: 2_000_000_000, monthly_quota: 2_000_000_000 },
      },
    },
    'GET /admin/keys': { allowed: ['admin'], ok: 200, request: async () => ({ path: '/admin/keys' }) },
    'DELETE /admin/keys/:id': {
      allowed: ['admin'],
      ok: 200,
      owned: true,
      request: async (t) => ({ path: `/admin/keys/${await fresh.key(t)}` }),
    },
    'GET /workers': { allowed: ['operator'], ok: 200, request: async () => ({ path: '/workers' }) },
    'GET /metrics': { allowed: ['operator'], ok: 200, request: async () => ({ path: '/metrics' }) },
    'GET /operator/tenants': {
      allowed: ['operator'],
      ok: 200,
      request: async () => ({ path: '/operator/tenants' }),
    },
    'GET /operator/tenants/:tenant': {
      allowed: ['operator'],
      ok: 200,
      request: async (t) => ({ path: `/operator/tenants/${t.id}` }),
    },
    'PUT /operator/tenants/:tenant': {
      allowed: ['operator'],
      ok: 200,
      request: async (t) => ({ path: `/operator/tenants/${t.id}`, json: { rate_limit: 1_000_000 } }),
      escalate: { path: '/operator/tenants/{own}', json: { rate_limit: 2_000_000_000, scopes: null } },
    },
    'GET /operator/tenants/:tenant/keys': {
      allowed: ['operator'],
      ok: 200,
      request: async (t) => ({ path: `/operator/tenants/${t.id}/keys` }),
    },
    'POST /operator/tenants/:tenant/keys': {
      allowed: ['operator'],
      ok: 201,
      request: async (t) => ({ path: `/operator/tenants/${t.id}/keys`, json: { scopes: ['admin'] } }),
      escalate: {
        path: '/operator/tenants/{own}/keys',
        json: { scopes: ['admin'], rate_limit: 2_000_000_000 },
      },
    },
    'DELETE /operator/keys/:id': {
      allowed: ['operator'],
      ok: 200,
      request: async (t) => ({ path: `/operator/keys/${await fresh.key(t)}` }),
    },
    'GET /admin/flow': { allowed: ['admin'], ok: 200, request: async () => ({ path: '/admin/flow' }) },
    // A tenant admin pauses its own group; the next entry resumes it.
    'POST /admin/flow/pause': {
      allowed: ['admin'],
      ok: 200,
      request: async () => ({ path: '/admin/flow/pause' }),
    },
    'POST /admin/flow/resume': {
      allowed: ['admin'],
      ok: 200,
      request: async () => ({ path: '/admin/flow/resume' }),
    },
    'GET /operator/flow': {
      allowed: ['operator'],
      ok: 200,
      request: async () => ({ path: '/operator/flow' }),
    },
    'POST /operator/flow/pause': {
      allowed: ['operator'],
      ok: 200,
      request: async () => ({ path: '/operator/flow/pause', json: { group: 'boundary-probe' } }),
    },
    'POST /operator/flow/resume': {
      allowed: ['operator'],
      ok: 200,
      request: async () => ({ path: '/operator/flow/resume', json: { group: 'boundary-probe' } }),
    },
  }

  it('has an entry for every endpoint the API serves', () => {
    const served = stack.api.routes.map((r) => `${r.method} ${r.path}`)
    expect(
      served.filter((r) => !(r in ACCESS)),
      'endpoints missing from the ACCESS table',
    ).toEqual([])
    expect(
      Object.keys(ACCESS).filter((r) => !served.includes(r)),
      'entries for no endpoint',
    ).toEqual([])
  })

  describe.each(SERVERS)('through %s', (server: ServerKind) => {
    it('allows exactly the callers each endpoint is for, on their own tenant only, and leaks nothing', async () => {
      const url = stack.url[server]
      const failures: string[] = []
      /** `sent`: what the request itself named (a 404 may repeat it; that shows nothing new). */
      const check = (what: string, answer: Answer, status: number, reader?: Tenant, sent = '') => {
        if (answer.status !== status) {
          failures.push(
            `${what}: ${answer.status} (${JSON.stringify(answer.body).slice(0, 200)}), expected ${status}`,
          )
          return
        }
        if (status === 403 && answer.body.code !== 'FORBIDDEN')
          failures.push(`${what}: 403 without FORBIDDEN`)
        if (reader) {
          const other = tenants.find((t) => t !== reader)!
          const text = typeof answer.body === 'string' ? answer.body : JSON.stringify(answer.body)
          const leaked = [other.id, ...other.ids].filter((id) => text.includes(id) && !sent.includes(id))
          if (leaked.length > 0) failures.push(`${what}: shows the other tenant's ${leaked.join(', ')}`)
        }
      }
      // The retry-all of one tenant's dead letters goes last, after the single-task DLQ probes.
      const entries = Object.entries(ACCESS).sort(([a], [b]) =>
        a === 'POST /admin/dlq/retry' ? 1 : b === 'POST /admin/dlq/retry' ? -1 : 0,
      )
      for (const [endpoint, access] of entries) {
        const method = endpoint.split(' ')[0]!
        // A tenant key asking for more than it may have: refused, its own tenant's admin included.
        if (access.escalate) {
          for (const caller of tenants) {
            for (const k of TENANT_KEYS) {
              const path = access.escalate.path.replace('{own}', caller.id)
              const r = await call(url, method, path, { key: caller.keys[k], json: access.escalate.json })
              check(`${endpoint} escalated by ${k} of ${caller.id}`, r, 403, caller)
            }
          }
        }
        const send = async (key: string | undefined, owner: Tenant) => {
          const { path, json } = await access.request(owner)
          const answer = await call(url, method, path, {
            ...(key ? { key } : {}),
            ...(json !== undefined ? { json } : {}),
          })
          return Object.assign(answer, { sent: path })
        }
        if (access.allowed === 'public') {
          check(`${endpoint} without a key`, await send(undefined, tenants[0]!), access.ok)
          continue
        }
        const [alpha, beta] = tenants as [Tenant, Tenant]
        const byOperator = await send(operator, alpha)
        check(
          `${endpoint} by the operator`,
          byOperator,
          access.allowed.includes('operator') ? access.ok : 403,
        )
        for (const caller of [alpha, beta]) {
          const other = caller === alpha ? beta : alpha
          for (const k of TENANT_KEYS) {
            const allowed = access.allowed.includes(k)
            const own = await send(caller.keys[k], caller)
            check(`${endpoint} by ${k} of ${caller.id} on its own`, own, allowed ? access.ok : 403, caller)
            if (allowed && own.status === 201 && typeof own.body?.task_id === 'string')
              caller.ids.add(own.body.task_id)
            if (allowed && own.status === 201 && typeof own.body?.key_id === 'string')
              caller.ids.add(own.body.key_id)
            if (allowed && own.status === 201 && typeof own.body?.id === 'string') caller.ids.add(own.body.id)
            if (allowed && own.status === 201 && typeof own.body?.flow_id === 'string')
              for (const id of Object.values(own.body.ids as Record<string, string>)) caller.ids.add(id)
            if (access.owned) {
              const cross = await send(caller.keys[k], other)
              check(
                `${endpoint} by ${k} of ${caller.id} on ${other.id}'s`,
                cross,
                allowed ? 404 : 403,
                caller,
                cross.sent,
              )
            }
          }
        }
        // Without a key, every endpoint but the public ones is 401.
        const anonymous = await send(undefined, alpha)
        check(`${endpoint} without a key`, anonymous, 401)
      }
      expect(failures).toEqual([])
    }, 120_000)
  })
})
