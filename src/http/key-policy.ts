/**
 * What a tenant's admin may give a key it creates: never more than its own key holds. Only the
 * operator grants `admin`; the new key's scopes are within the creator's (and its tenant's); its
 * rate limit, monthly quota and expiry are at most the creator's own, and inherit them when left
 * out. (The operator's own creations are bounded by the tenant's grant in `ApiKeys.create`.)
 */
import type { Issue } from '../errors.js'
import type { ApiKeyInfo, CreateKeyInput, Scope } from './api-keys.js'
import { HttpProblem } from './problem.js'
import { effectiveScopes } from './tenant-limits.js'
import type { TenantGrant } from './tenants.js'

export interface KeyRequest {
  scopes: readonly Scope[]
  name?: string | undefined
  rateLimit?: number | undefined
  monthlyQuota?: number | undefined
  expiresAt?: Date | undefined
}

/** The key a tenant admin (`creator`) may create for this request; FORBIDDEN names each field it exceeds. */
export function boundByCreator(request: KeyRequest, creator: ApiKeyInfo, grant: TenantGrant): CreateKeyInput {
  const refused: Issue[] = []
  const held = effectiveScopes(creator, grant)
  for (const scope of request.scopes) {
    if (scope === 'admin' || scope === 'operator') {
      refused.push({ path: 'scopes', message: `only the operator grants ${scope}` })
    } else if (!held.includes(scope)) {
      refused.push({ path: 'scopes', message: `the creating key does not hold ${scope}` })
    }
  }
  // A limit the creator does not have itself is bounded by the tenant's (null: unlimited).
  const rateCap = creator.rateLimit ?? grant.rateLimit
  const quotaCap = creator.monthlyQuota ?? grant.monthlyQuota
  if (request.rateLimit !== undefined && request.rateLimit > rateCap) {
    refused.push({ path: 'rate_limit', message: `at most ${rateCap}, what the creating key has` })
  }
  if (request.monthlyQuota !== undefined && quotaCap !== null && request.monthlyQuota > quotaCap) {
    refused.push({ path: 'monthly_quota', message: `at most ${quotaCap}, what the creating key has` })
  }
  if (
    request.expiresAt !== undefined &&
    creator.expiresAt !== null &&
    request.expiresAt > creator.expiresAt
  ) {
    refused.push({
      path: 'expires_at',
      message: `at the latest ${creator.expiresAt.toISOString()}, when the creating key expires`,
    })
  }
  if (refused.length > 0) {
    throw new HttpProblem(
      'FORBIDDEN',
      `a key cannot get more than the key that creates it: ${refused.map((r) => `${r.path}: ${r.message}`).join('; ')}`,
      { errors: refused },
    )
  }
  return {
    tenantId: creator.tenantId,
    scopes: request.scopes,
    name: request.name,
    rateLimit: request.rateLimit ?? creator.rateLimit ?? undefined,
    monthlyQuota: request.monthlyQuota ?? creator.monthlyQuota ?? undefined,
    expiresAt: request.expiresAt ?? creator.expiresAt ?? undefined,
  }
}
