/**
 * The operator's endpoints (operator keys only): each tenant's rate limit, quota and scopes, every
 * tenant's keys, and the shared worker fleet. (GET /metrics, also operator-only, is in
 * routes-system.ts.)
 */
import type { z } from 'zod'
import { TENANT_ID } from '../task/validate.js'
import { isOperator } from './api-keys.js'
import { keyBody, tenantBody, workerBody } from './present.js'
import { HttpProblem } from './problem.js'
import type { Route, RouteContext } from './route.js'
import { keyRequest } from './routes-admin.js'
import {
  ApiKey,
  CreatedKey,
  CreateKeyBody,
  KeyList,
  Tenant,
  TenantList,
  TenantSettingsBody,
  WorkerList,
} from './schemas.js'
import { grantOf, type TenantSettings } from './tenants.js'

/** The `:tenant` path parameter, checked (400 names it when it is not a tenant id). */
function tenantParam(ctx: RouteContext): string {
  const id = ctx.params.tenant ?? ''
  if (!TENANT_ID.safeParse(id).success) {
    throw new HttpProblem('INVALID_REQUEST', `${JSON.stringify(id.slice(0, 200))} is not a tenant id`, {
      errors: [{ path: 'tenant', message: "1-128 letters, digits, '.', '_', ':', '@' or '-'" }],
    })
  }
  return id
}

function present(ctx: RouteContext, settings: TenantSettings) {
  return tenantBody(settings, grantOf(settings, ctx.services.options))
}

export const operatorRoutes: Route[] = [
  {
    method: 'GET',
    path: '/operator/tenants',
    scope: 'operator',
    tag: 'operator',
    summary: 'Every tenant the operator configured or that has keys, with what it is granted',
    responses: { 200: TenantList },
    async handle(ctx) {
      const tenants = await ctx.services.tenants.list()
      return { status: 200, body: { tenants: tenants.map((t) => present(ctx, t)) } }
    },
  },
  {
    method: 'GET',
    path: '/operator/tenants/:tenant',
    scope: 'operator',
    tag: 'operator',
    summary: "A tenant's rate limit, monthly quota and scopes (the API's defaults where none was set)",
    responses: { 200: Tenant },
    problems: [400],
    async handle(ctx) {
      return { status: 200, body: present(ctx, await ctx.services.tenants.get(tenantParam(ctx))) }
    },
  },
  {
    method: 'PUT',
    path: '/operator/tenants/:tenant',
    scope: 'operator',
    tag: 'operator',
    summary:
      "Set a tenant's rate limit, monthly quota or scopes (null: back to the default); its keys follow at once",
    body: TenantSettingsBody,
    responses: { 200: Tenant },
    problems: [400, 415],
    async handle(ctx) {
      const tenantId = tenantParam(ctx)
      const body = ctx.body as z.infer<typeof TenantSettingsBody>
      const settings = await ctx.services.tenants.set(tenantId, {
        rateLimit: body.rate_limit,
        monthlyQuota: body.monthly_quota,
        scopes: body.scopes,
      })
      ctx.services.forgetTenant(tenantId)
      ctx.audit('tenant.update', tenantId, { tenant_id: tenantId, ...body })
      return { status: 200, body: present(ctx, settings) }
    },
  },
  {
    method: 'GET',
    path: '/operator/tenants/:tenant/keys',
    scope: 'operator',
    tag: 'operator',
    summary: "A tenant's API keys (never their secrets)",
    responses: { 200: KeyList },
    problems: [400],
    async handle(ctx) {
      const keys = await ctx.services.keys.list(tenantParam(ctx))
      return { status: 200, body: { keys: keys.map(keyBody) } }
    },
  },
  {
    method: 'POST',
    path: '/operator/tenants/:tenant/keys',
    scope: 'operator',
    tag: 'operator',
    summary: "Create a key for a tenant, admin included, within the tenant's scopes and limits",
    body: CreateKeyBody,
    responses: { 201: CreatedKey },
    problems: [400, 415],
    async handle(ctx) {
      const tenantId = tenantParam(ctx)
      const body = ctx.body as z.infer<typeof CreateKeyBody>
      const { key, info } = await ctx.services.keys.create({ tenantId, ...keyRequest(body) })
      ctx.audit('key.create', info.id, { tenant_id: tenantId, prefix: info.prefix, scopes: info.scopes })
      return { status: 201, body: { ...keyBody(info), key } }
    },
  },
  {
    method: 'DELETE',
    path: '/operator/keys/:id',
    scope: 'operator',
    tag: 'operator',
    summary: "Revoke any tenant's API key, or an operator key (by id or prefix)",
    responses: { 200: ApiKey },
    problems: [404],
    async handle(ctx) {
      const id = ctx.params.id ?? ''
      const revoked = /^[A-Za-z0-9_-]{1,100}$/.test(id) ? await ctx.services.keys.revoke(id) : null
      if (!revoked) throw new HttpProblem('NOT_FOUND', `no API key ${id}`)
      ctx.services.forgetKey(revoked.id)
      ctx.audit('key.revoke', revoked.id, {
        prefix: revoked.prefix,
        ...(isOperator(revoked) ? { operator: true } : { tenant_id: revoked.tenantId }),
      })
      return { status: 200, body: keyBody(revoked) }
    },
  },
  {
    method: 'GET',
    path: '/workers',
    scope: 'operator',
    tag: 'operator',
    summary: 'The worker fleet (shared by every tenant): status, heartbeat, tasks in hand and processed',
    responses: { 200: WorkerList },
    problems: [501],
    async handle(ctx) {
      const workers = ctx.services.options.workers
      if (!workers) {
        throw new HttpProblem('NOT_IMPLEMENTED', 'this server has no fleet view: pass `workers` to createApi')
      }
      return { status: 200, body: { workers: (await workers()).map(workerBody) } }
    },
  },
]
