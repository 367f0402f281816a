/**
 * Who may do what, and how much: a key's effective scopes within its tenant's grant, the rate
 * limit a request passes (the tenant's bucket, shared by all its keys, and the key's own bucket
 * when it has a tighter limit), and the monthly quota counted for the tenant and for the key.
 */
import { type ApiKeyInfo, isOperator, type Scope } from './api-keys.js'
import { quotaPeriod } from './limits.js'
import { HttpProblem } from './problem.js'
import type { Route, RouteContext, RouteScope, Services } from './route.js'
import type { TenantGrant } from './tenants.js'

/** The tenant scopes a key can use: its own, within what its tenant is granted; none for an operator key. */
export function effectiveScopes(key: ApiKeyInfo, grant: TenantGrant | undefined): Scope[] {
  if (isOperator(key) || !grant) return []
  const granted: readonly Scope[] = grant.scopes
  const own = key.scopes.includes('admin') ? granted : key.scopes
  return own.filter((s) => granted.includes(s))
}

/** Whether `key` may call a route needing `scope` (`admin` holds every tenant scope). */
export function mayCall(key: ApiKeyInfo, grant: TenantGrant | undefined, scope: RouteScope): boolean {
  if (scope === 'public') return true
  if (scope === 'operator') return isOperator(key)
  if (isOperator(key)) return false
  if (scope === 'tenant') return true
  return effectiveScopes(key, grant).includes(scope)
}

/** The refusal for a key that may not call a route. */
export function forbidden(key: ApiKeyInfo, scope: RouteScope): HttpProblem {
  if (scope === 'operator') return new HttpProblem('FORBIDDEN', 'this endpoint is for the operator only')
  if (isOperator(key)) {
    return new HttpProblem(
      'FORBIDDEN',
      "an operator key belongs to no tenant: act on a tenant's settings and keys through /operator/tenants, or use a tenant key",
    )
  }
  return new HttpProblem(
    'FORBIDDEN',
    `this endpoint needs the ${scope} scope (granted to the key and its tenant)`,
  )
}

const OPERATOR_GROUP = 'operator'
export const tenantGroup = (tenantId: string) => `t:${tenantId}`
const keyQuota = (keyId: string, period: string) => `key:${keyId}:quota:${period}`

export interface Admission {
  headers: Record<string, string>
  quota: RouteContext['quota']
  /** Gives the quota count back unless the route kept it. */
  release(): void
}

/**
 * Takes this request's token from the tenant's bucket and the key's (one atomic step, shared by
 * every API process through Redis) and, for routes that count toward the quota, counts it for the
 * tenant and the key. Throws RATE_LIMITED when a bucket is empty.
 */
export async function admit(
  services: Services,
  key: ApiKeyInfo,
  grant: TenantGrant | undefined,
  route: Pick<Route, 'path' | 'countsQuota'>,
  audit: RouteContext['audit'],
): Promise<Admission> {
  const { limits, options } = services
  const operator = isOperator(key) || !grant
  const group = operator ? OPERATOR_GROUP : tenantGroup(key.tenantId)
  const buckets = operator
    ? [{ name: `key:${key.id}`, perMinute: key.rateLimit ?? options.rateLimit }]
    : [
        { name: 'tenant', perMinute: grant.rateLimit },
        ...(key.rateLimit !== null ? [{ name: `key:${key.id}`, perMinute: key.rateLimit }] : []),
      ]
  const period = route.countsQuota && !operator ? quotaPeriod() : undefined
  const ttl = period ? period.endsInMs + 86_400_000 : 0
  const counters = period
    ? [
        { name: `quota:${period.period}`, ttlMs: ttl },
        { name: keyQuota(key.id, period.period), ttlMs: ttl },
      ]
    : []
  const countedAt = new Date()
  const taken = await limits.take(group, buckets, counters)
  // The bucket that binds: the one that refused (the longest wait), else the one with fewest left.
  const binding = taken.buckets.reduce((a, b) =>
    taken.allowed ? (b.remaining < a.remaining ? b : a) : b.retryAfterMs > a.retryAfterMs ? b : a,
  )
  const headers: Record<string, string> = {
    'ratelimit-limit': String(binding.limit),
    'ratelimit-remaining': String(binding.remaining),
    'ratelimit-reset': String(Math.ceil(binding.resetMs / 1000)),
    'ratelimit-policy': taken.buckets.map((b) => `${b.limit};w=60`).join(', '),
  }
  if (!taken.allowed) {
    const who = binding.name === 'tenant' ? `tenant ${key.tenantId} (all its keys together)` : 'this key'
    audit('rate.limited', null, {
      route: route.path,
      limit: binding.limit,
      bucket: binding.name === 'tenant' ? 'tenant' : 'key',
    })
    options.metrics?.rateLimitHit(key.tenantId)
    const retryAfter = Math.max(1, Math.ceil(binding.retryAfterMs / 1000))
    throw new HttpProblem(
      'RATE_LIMITED',
      `${who} may make ${binding.limit} requests per minute; retry in ${retryAfter} s`,
      { headers: { ...headers, 'retry-after': String(retryAfter) } },
    )
  }
  if (!period) return { headers, quota: undefined, release: () => {} }

  let [tenantUsed, keyUsed] = taken.counted as [number, number]
  // A new counter: this month's first counted request, or the count was lost with Redis (or with
  // this process, embedded). The audit log has every submission: count on from there. (Only those
  // before this count: later ones, made meanwhile, are in the counter already.)
  if (tenantUsed === 1) {
    const before = await services.audit.submissions(key.tenantId, period.startsAt, countedAt)
    if (before > 0) tenantUsed = await limits.add(group, `quota:${period.period}`, before, ttl)
  }
  if (keyUsed === 1) {
    const before = await services.audit.submissions(key.tenantId, period.startsAt, countedAt, key.id)
    if (before > 0) keyUsed = await limits.add(group, keyQuota(key.id, period.period), before, ttl)
  }
  let kept = false
  return {
    headers,
    quota: {
      period: period.period,
      endsInMs: period.endsInMs,
      tenant: { used: tenantUsed, limit: grant?.monthlyQuota ?? null },
      key: { used: keyUsed, limit: key.monthlyQuota },
      keep: () => {
        kept = true
      },
    },
    release: () => {
      if (kept) return
      for (const c of counters) void limits.add(group, c.name, -1, ttl).catch(() => {})
    },
  }
}

/** QUOTA_EXCEEDED when this request's count is past the tenant's quota or the key's own. */
export function quotaExceeded(ctx: RouteContext): HttpProblem | undefined {
  const q = ctx.quota
  if (!q) return undefined
  const over =
    q.tenant.limit !== null && q.tenant.used > q.tenant.limit
      ? { who: `tenant ${ctx.key.tenantId}'s`, limit: q.tenant.limit, bucket: 'tenant' }
      : q.key.limit !== null && q.key.used > q.key.limit
        ? { who: "this key's", limit: q.key.limit, bucket: 'key' }
        : undefined
  if (!over) return undefined
  ctx.audit('quota.exceeded', null, { quota: over.limit, period: q.period, bucket: over.bucket })
  return new HttpProblem(
    'QUOTA_EXCEEDED',
    `${over.who} monthly quota of ${over.limit} task submissions for ${q.period} is used up; it resets at the start of next month (UTC)`,
    { headers: { 'retry-after': String(Math.ceil(q.endsInMs / 1000)) } },
  )
}

/** What GET /quota answers: the tenant's usage and limits, and the calling key's sub-limits. */
export async function quotaReport(ctx: RouteContext) {
  const { key, services, tenant } = ctx
  if (!tenant) throw forbidden(key, 'tenant')
  const { period, resetsAt, startsAt } = quotaPeriod()
  const group = tenantGroup(key.tenantId)
  let [used, keyUsed] = await Promise.all([
    services.limits.read(group, `quota:${period}`),
    services.limits.read(group, keyQuota(key.id, period)),
  ])
  // No counter (none this month yet, or lost with Redis): the audit log knows; the next
  // submission stores the count (only the request that creates the counter may, so it is added once).
  if (used === 0) used = await services.audit.submissions(key.tenantId, startsAt)
  if (keyUsed === 0) keyUsed = await services.audit.submissions(key.tenantId, startsAt, new Date(), key.id)
  const remaining = (limit: number | null, n: number) => (limit === null ? null : Math.max(0, limit - n))
  return {
    tenant_id: key.tenantId,
    key_id: key.id,
    period,
    monthly_quota: tenant.monthlyQuota,
    used,
    remaining: remaining(tenant.monthlyQuota, used),
    resets_at: resetsAt.toISOString(),
    rate_limit: tenant.rateLimit,
    key: {
      key_id: key.id,
      rate_limit: key.rateLimit,
      monthly_quota: key.monthlyQuota,
      used: keyUsed,
      remaining: remaining(key.monthlyQuota, keyUsed),
    },
  }
}
