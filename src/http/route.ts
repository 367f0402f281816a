/** What a route is: method, path template, scope, schemas (for validation and OpenAPI), handler. */

import type { Kysely } from 'kysely'
import type { z } from 'zod'
import type { RedisClient } from '../broker/redis/connection.js'
import type { Queue } from '../queue/queue.js'
import type { Database } from '../store/postgres/tables.js'
import type { TaskDefinition } from '../task/define-task.js'
import type { ApiKeyInfo, ApiKeys, Scope } from './api-keys.js'
import type { AuditAction, AuditLog } from './audit.js'
import type { Limits } from './limits.js'
import type { API_DEFAULTS, ApiOptions } from './options.js'
import type { TenantGrant, Tenants } from './tenants.js'

export type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'

/**
 * What a route needs: a tenant scope; 'tenant', any key of a tenant; 'operator', an operator key;
 * 'public', no key.
 */
export type RouteScope = Scope | 'tenant' | 'public'

export interface Services {
  queue: Queue
  options: ApiOptions & typeof API_DEFAULTS
  keys: ApiKeys
  /** The operator's settings per tenant. */
  tenants: Tenants
  audit: AuditLog
  limits: Limits
  redis: RedisClient | undefined
  db: Kysely<Database>
  findTask(name: string): Promise<TaskDefinition<any, any> | null>
  startedAt: number
  /** Drops a key from the verified-key cache (after revocation). */
  forgetKey(id: string): void
  /** Drops a tenant's settings from the cache (after the operator changed them). */
  forgetTenant(tenantId: string): void
}

export interface RouteContext {
  services: Services
  params: Record<string, string>
  query: URLSearchParams
  /** The authenticated key (public routes: none). */
  key: ApiKeyInfo
  /** What the key's tenant is granted, defaults filled in (operator keys and public routes: none). */
  tenant: TenantGrant | undefined
  requestId: string
  /** The request's headers, names in lower case. */
  headers: Record<string, string | string[] | undefined>
  /** The request body, parsed as JSON and validated with the route's `body` schema. */
  body: unknown
  audit(action: AuditAction, targetId?: string | null, details?: Record<string, unknown>): void
  /**
   * Routes with `countsQuota`: this request's count toward the tenant's and the key's monthly
   * quota (already added, in the same Redis round trip as the rate limit; `limit` null: none). It
   * is given back unless `keep()` is called.
   */
  quota:
    | {
        period: string
        endsInMs: number
        tenant: { used: number; limit: number | null }
        key: { used: number; limit: number | null }
        keep(): void
      }
    | undefined
}

export interface RouteResult {
  status: number
  /** Sent as JSON; omitted for 204. */
  body?: unknown
  headers?: Record<string, string>
  /** A body that is not JSON (GET /metrics). */
  raw?: { contentType: string; body: string }
}

export interface Route {
  method: Method
  /** Template with `:param` segments, e.g. '/tasks/:id'. */
  path: string
  /** Needed scope; 'public' needs no key. */
  scope: RouteScope
  summary: string
  tag: string
  body?: z.ZodType
  query?: z.ZodType
  /** Success responses by status, for the OpenAPI document (null: no body). */
  responses: Record<number, z.ZodType | null>
  /** Error statuses this route can answer besides the common ones. */
  problems?: number[]
  /** Each request counts toward the tenant's and the key's monthly quota (task submissions). */
  countsQuota?: boolean
  handle(ctx: RouteContext): Promise<RouteResult>
}

export interface Match {
  route: Route
  params: Record<string, string>
}

/**
 * Matches `/a/b` against the table; answers the route, or the methods allowed at that path. HEAD
 * matches a GET route (the core answers it without a body), as load balancers' health checks expect.
 */
export function matchRoute(
  routes: readonly Route[],
  method: string,
  segments: readonly string[],
): Match | { allowed: (Method | 'HEAD')[] } | null {
  const allowed: (Method | 'HEAD')[] = []
  for (const route of routes) {
    const params = matchPath(route.path, segments)
    if (!params) continue
    if (route.method === method || (method === 'HEAD' && route.method === 'GET')) return { route, params }
    allowed.push(route.method)
    if (route.method === 'GET') allowed.push('HEAD')
  }
  return allowed.length > 0 ? { allowed } : null
}

const templates = new Map<string, string[]>()

function matchPath(template: string, segments: readonly string[]): Record<string, string> | null {
  let parts = templates.get(template)
  if (!parts) {
    parts = template.split('/').filter(Boolean)
    templates.set(template, parts)
  }
  if (parts.length !== segments.length) return null
  const params: Record<string, string> = {}
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i]!
    const seg = segments[i]!
    if (part.startsWith(':')) params[part.slice(1)] = seg
    else if (part !== seg) return null
  }
  return params
}
