/**
 * Tenants: what the operator grants each tenant of the REST API. A tenant's keys together share one
 * rate limit (requests per minute) and one monthly quota (task submissions), and may hold only the
 * scopes the tenant is granted (`admin` among them: whether the tenant has admins at all). The
 * settings live in the `tenants` table (migration 6); a tenant without a row, or a null setting,
 * takes the API's defaults (`rateLimit`, default 1,000/min; `quota`, default unlimited; every
 * tenant scope).
 */
import type { Kysely } from 'kysely'
import { TaskloomError } from '../errors.js'
import type { Database } from '../store/postgres/tables.js'
import { TENANT_ID } from '../task/validate.js'

/**
 * The scopes a tenant's keys can hold; `admin` holds the others and manages keys. `dashboard:read`
 * opens the web dashboard (taskloom/dashboard) read-only, for the key's tenant.
 */
export const TENANT_SCOPES = [
  'task:create',
  'task:read',
  'task:cancel',
  'task:list',
  'admin',
  'dashboard:read',
] as const
export type TenantScope = (typeof TENANT_SCOPES)[number]

/** The largest rate limit or quota a tenant or key can be given. */
export const MAX_LIMIT = 2_000_000_000

/** What the operator set for a tenant; null: the API's default. */
export interface TenantSettings {
  tenantId: string
  /** Requests per minute, all of the tenant's keys together. */
  rateLimit: number | null
  /** Task submissions per calendar month (UTC), all of the tenant's keys together. */
  monthlyQuota: number | null
  /** The scopes its keys may hold; null: every tenant scope. */
  scopes: TenantScope[] | null
  createdAt: Date | null
  updatedAt: Date | null
}

/** A change to a tenant's settings: an absent field stays, null goes back to the default. */
export interface TenantPatch {
  rateLimit?: number | null | undefined
  monthlyQuota?: number | null | undefined
  scopes?: readonly TenantScope[] | null | undefined
}

/** The defaults a tenant without its own setting gets (the API's options). */
export interface TenantDefaults {
  rateLimit: number
  /** Undefined: unlimited. */
  quota?: number | undefined
}

/** A tenant's settings with the defaults filled in: what its keys actually get. */
export interface TenantGrant {
  tenantId: string
  rateLimit: number
  /** Null: unlimited. */
  monthlyQuota: number | null
  scopes: TenantScope[]
}

export function checkTenantId(tenantId: unknown): string {
  const parsed = TENANT_ID.safeParse(tenantId)
  if (!parsed.success) {
    throw new TaskloomError('INVALID_INPUT', `invalid tenant id ${JSON.stringify(tenantId)}`, {
      issues: [{ path: 'tenant_id', message: parsed.error.issues[0]?.message ?? 'invalid' }],
    })
  }
  return parsed.data
}

/** Throws INVALID_INPUT unless `value` is undefined, null (when allowed) or 1..MAX_LIMIT. */
export function checkLimit(field: string, value: unknown, nullable = false): void {
  if (value === undefined || (nullable && value === null)) return
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_LIMIT) {
    throw new TaskloomError('INVALID_INPUT', `${field} must be an integer from 1 to ${MAX_LIMIT}`, {
      issues: [{ path: field, message: `expected an integer from 1 to ${MAX_LIMIT}` }],
    })
  }
}

export function checkTenantScopes(scopes: readonly unknown[]): TenantScope[] {
  const bad = scopes.filter((s) => !TENANT_SCOPES.includes(s as TenantScope))
  if (bad.length > 0) {
    throw new TaskloomError(
      'INVALID_INPUT',
      `unknown tenant scope ${bad.map((b) => JSON.stringify(b)).join(', ')}: use ${TENANT_SCOPES.join(', ')}`,
      { issues: [{ path: 'scopes', message: `expected some of ${TENANT_SCOPES.join(', ')}` }] },
    )
  }
  return [...new Set(scopes as TenantScope[])]
}

/** Fills in the defaults. */
export function grantOf(settings: TenantSettings, defaults: TenantDefaults): TenantGrant {
  return {
    tenantId: settings.tenantId,
    rateLimit: settings.rateLimit ?? defaults.rateLimit,
    monthlyQuota: settings.monthlyQuota ?? defaults.quota ?? null,
    scopes: settings.scopes ?? [...TENANT_SCOPES],
  }
}

const unset = (tenantId: string): TenantSettings => ({
  tenantId,
  rateLimit: null,
  monthlyQuota: null,
  scopes: null,
  createdAt: null,
  updatedAt: null,
})

/** The `tenants` table. */
export class Tenants {
  readonly #db: Kysely<Database>
  readonly #schema: string

  constructor(db: Kysely<Database>, schema: string) {
    this.#db = db
    this.#schema = schema
  }

  private get table() {
    return this.#db.withSchema(this.#schema)
  }

  /** A tenant's settings (all null when the operator set none). */
  async get(tenantId: string): Promise<TenantSettings> {
    checkTenantId(tenantId)
    const row = await this.table
      .selectFrom('tenants')
      .selectAll()
      .where('id', '=', tenantId)
      .executeTakeFirst()
    return row ? toSettings(row) : unset(tenantId)
  }

  /**
   * Every tenant the operator configured or that has keys, by id. Tenants known only by their keys
   * have all-null settings.
   */
  async list(): Promise<TenantSettings[]> {
    const [rows, keyed] = await Promise.all([
      this.table.selectFrom('tenants').selectAll().execute(),
      this.table.selectFrom('api_keys').select('tenant_id').distinct().execute(),
    ])
    const byId = new Map(rows.map((r) => [r.id, toSettings(r)]))
    for (const { tenant_id } of keyed)
      if (TENANT_ID.safeParse(tenant_id).success && !byId.has(tenant_id))
        byId.set(tenant_id, unset(tenant_id))
    return [...byId.values()].sort((a, b) => (a.tenantId < b.tenantId ? -1 : a.tenantId > b.tenantId ? 1 : 0))
  }

  /** Changes a tenant's settings (creating its row); answers the new settings. */
  async set(tenantId: string, patch: TenantPatch): Promise<TenantSettings> {
    checkTenantId(tenantId)
    checkLimit('rate_limit', patch.rateLimit, true)
    checkLimit('monthly_quota', patch.monthlyQuota, true)
    const scopes = patch.scopes == null ? patch.scopes : checkTenantScopes(patch.scopes)
    const values = {
      ...(patch.rateLimit !== undefined ? { rate_limit: patch.rateLimit } : {}),
      ...(patch.monthlyQuota !== undefined ? { monthly_quota: patch.monthlyQuota } : {}),
      ...(scopes !== undefined ? { scopes } : {}),
    }
    const now = new Date()
    const row = await this.table
      .insertInto('tenants')
      .values({ id: tenantId, ...values, created_at: now, updated_at: now })
      .onConflict((oc) => oc.column('id').doUpdateSet({ ...values, updated_at: now }))
      .returningAll()
      .executeTakeFirstOrThrow()
    return toSettings(row)
  }
}

function toSettings(row: {
  id: string
  rate_limit: number | null
  monthly_quota: number | null
  scopes: string[] | null
  created_at: Date
  updated_at: Date
}): TenantSettings {
  return {
    tenantId: row.id,
    rateLimit: row.rate_limit,
    monthlyQuota: row.monthly_quota,
    scopes: row.scopes === null ? null : (row.scopes as TenantScope[]),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  }
}
