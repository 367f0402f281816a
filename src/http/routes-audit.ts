/**
 * The audit log, filtered and paged, newest first: `GET /admin/audit` for a tenant's admin (its own
 * tenant's entries only) and `GET /operator/audit` for the operator (every tenant's, or one's).
 */
import type { z } from 'zod'
import type { AuditFilter } from './audit.js'
import type { Route, RouteContext } from './route.js'
import { AuditPage, AuditQuery, OperatorAuditQuery } from './schemas.js'

type Query = z.infer<typeof OperatorAuditQuery>

async function auditPage(ctx: RouteContext, q: Query, tenantId: string | undefined) {
  const filter: AuditFilter = { limit: q.limit + 1 }
  if (tenantId !== undefined) filter.tenantId = tenantId
  if (q.action !== undefined) filter.action = q.action
  if (q.key_id !== undefined) filter.keyId = q.key_id
  if (q.target_id !== undefined) filter.targetId = q.target_id
  if (q.request_id !== undefined) filter.requestId = q.request_id
  if (q.since !== undefined) filter.since = new Date(q.since)
  if (q.until !== undefined) filter.until = new Date(q.until)
  if (q.cursor !== undefined) filter.before = q.cursor
  const found = await ctx.services.audit.list(filter)
  const page = found.slice(0, q.limit)
  return {
    status: 200,
    body: {
      entries: page.map((e) => ({
        id: e.id,
        at: e.at.toISOString(),
        action: e.action,
        tenant_id: e.tenantId,
        key_id: e.keyId,
        request_id: e.requestId || null,
        target_id: e.targetId,
        details: e.details,
      })),
      next_cursor: found.length > q.limit ? (page.at(-1)?.id ?? null) : null,
    },
  }
}

export const auditRoutes: Route[] = [
  {
    method: 'GET',
    path: '/admin/audit',
    scope: 'admin',
    tag: 'admin',
    summary:
      "The tenant's audit log, newest first: filter by action, key, target, request or time; page with `cursor`",
    query: AuditQuery,
    responses: { 200: AuditPage },
    handle: (ctx) => auditPage(ctx, AuditQuery.parse(Object.fromEntries(ctx.query)), ctx.key.tenantId),
  },
  {
    method: 'GET',
    path: '/operator/audit',
    scope: 'operator',
    tag: 'operator',
    summary:
      "Every tenant's audit log, newest first (one tenant's with `tenant`): filter and page as `GET /admin/audit`",
    query: OperatorAuditQuery,
    responses: { 200: AuditPage },
    handle: (ctx) => {
      const q = OperatorAuditQuery.parse(Object.fromEntries(ctx.query))
      return auditPage(ctx, q, q.tenant)
    },
  },
]
