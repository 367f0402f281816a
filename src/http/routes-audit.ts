/** `GET /admin/audit`: the audit log, filtered and paged, newest first. */
import type { z } from 'zod'
import type { AuditFilter } from './audit.js'
import type { Route, RouteContext } from './route.js'
import { AuditPage, AuditQuery } from './schemas.js'

/**
 * Whose entries a caller may read: the one place that decides it. Today the `admin` scope is a
 * tenant's admin, who sees its own tenant's entries only. When operator keys exist, an operator
 * sees every tenant's (and may filter by tenant): change this function, nothing else.
 */
function auditScope(ctx: RouteContext): Pick<AuditFilter, 'tenantId'> {
  return { tenantId: ctx.key.tenantId }
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
    async handle(ctx) {
      const q: z.infer<typeof AuditQuery> = AuditQuery.parse(Object.fromEntries(ctx.query))
      const filter: AuditFilter = { ...auditScope(ctx), limit: q.limit + 1 }
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
    },
  },
]
