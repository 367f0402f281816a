/**
 * API keys: high-entropy secrets shown once, stored only as a SHA-256 hash, looked up by their
 * public prefix and compared in constant time. A tenant key belongs to one tenant and carries
 * scopes, an optional per-minute rate limit and monthly quota (sub-limits within its tenant's), an
 * optional expiry, and can be revoked. An operator key (scope `operator`) belongs to no tenant: it
 * sets tenants' limits and scopes, manages every tenant's keys and reads /metrics.
 *
 * Key format: `tlk_<12 hex>_<43 base64url>`; the part before the second `_` is the prefix (public,
 * unique, shown by `keys list`), the rest 256 random bits.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto'
import { Kysely } from 'kysely'
import { TaskloomError } from '../errors.js'
import { chooseDialect, type PostgresInput } from '../store/postgres/connection.js'
import { assertSchemaCurrent, checkSchemaName, DEFAULT_SCHEMA, migrate } from '../store/postgres/migrator.js'
import type { ApiKeysTable, Database } from '../store/postgres/tables.js'
import { textFault } from '../task/text.js'
import { checkLimit, checkTenantId, TENANT_SCOPES, Tenants } from './tenants.js'

export const SCOPES = [...TENANT_SCOPES, 'operator'] as const
export type Scope = (typeof SCOPES)[number]

/**
 * The `tenant_id` stored for operator keys: no tenant id can take it (tenant ids are letters,
 * digits and `._:@-`), so an operator key never matches a tenant's rows.
 */
export const OPERATOR_TENANT = '*'

/** Whether a key is the operator's (scope `operator`, no tenant) rather than a tenant's. */
export function isOperator(key: Pick<ApiKeyInfo, 'scopes'>): boolean {
  return key.scopes.includes('operator')
}

/** What the API knows about a key; never the secret. */
export interface ApiKeyInfo {
  id: string
  prefix: string
  tenantId: string
  name: string | null
  scopes: Scope[]
  /** Requests per minute; null: the API's default. */
  rateLimit: number | null
  /** Task submissions per calendar month (UTC); null: the API's default (unlimited unless set). */
  monthlyQuota: number | null
  isActive: boolean
  createdAt: Date
  expiresAt: Date | null
  revokedAt: Date | null
  /** The last successful authentication, to the minute (see `LAST_USED_RESOLUTION_MS`). */
  lastUsedAt: Date | null
}

/** `last_used_at` is written at most this often per key, so authentication stays a read. */
export const LAST_USED_RESOLUTION_MS = 60_000

export interface CreateKeyInput {
  /** The tenant; omit it for an operator key (`scopes: ['operator']`). */
  tenantId?: string | undefined
  /** Tenant scopes within what the tenant is granted, or `['operator']` alone. */
  scopes: readonly Scope[]
  name?: string | undefined
  rateLimit?: number | undefined
  monthlyQuota?: number | undefined
  expiresAt?: Date | undefined
}

export interface CreatedKey {
  /** The secret: shown this once, never stored. */
  key: string
  info: ApiKeyInfo
}

/** Why a presented key was refused (for the audit log; the client always sees one message). */
export type KeyRefusal = 'malformed' | 'unknown' | 'mismatch' | 'inactive' | 'revoked' | 'expired'

export type Verification = { ok: true; key: ApiKeyInfo } | { ok: false; reason: KeyRefusal; prefix?: string }

const KEY_FORMAT = /^(tlk_[0-9a-f]{12})_([A-Za-z0-9_-]{43})$/

const hash = (secret: string) => createHash('sha256').update(secret).digest()

export function checkScopes(scopes: readonly unknown[]): Scope[] {
  const bad = scopes.filter((s) => !SCOPES.includes(s as Scope))
  if (bad.length > 0 || scopes.length === 0) {
    throw new TaskloomError(
      'INVALID_INPUT',
      scopes.length === 0
        ? `a key needs at least one scope: ${SCOPES.join(', ')}`
        : `unknown scope ${bad.map((b) => JSON.stringify(b)).join(', ')}: use ${SCOPES.join(', ')}`,
      { issues: [{ path: 'scopes', message: `expected some of ${SCOPES.join(', ')}` }] },
    )
  }
  const unique = [...new Set(scopes as Scope[])]
  if (unique.includes('operator') && unique.length > 1) {
    throw new TaskloomError(
      'INVALID_INPUT',
      'an operator key has the scope operator alone: it belongs to no tenant',
      {
        issues: [{ path: 'scopes', message: 'operator cannot be combined with tenant scopes' }],
      },
    )
  }
  return unique
}

/** Throws INVALID_INPUT for an expiry that is not a time or is not in the future (dead on arrival). */
export function checkExpiry(expiresAt: Date | undefined, now = Date.now()): void {
  if (expiresAt === undefined) return
  if (!(expiresAt instanceof Date) || Number.isNaN(expiresAt.getTime())) {
    throw new TaskloomError('INVALID_INPUT', 'expires_at must be a time', {
      issues: [{ path: 'expires_at', message: 'expected an ISO 8601 time' }],
    })
  }
  if (expiresAt.getTime() <= now) {
    throw new TaskloomError(
      'INVALID_INPUT',
      `expires_at ${expiresAt.toISOString()} is not in the future: the key would be dead on arrival`,
      { issues: [{ path: 'expires_at', message: 'must be in the future' }] },
    )
  }
}

export class ApiKeys {
  readonly #db: Kysely<Database>
  readonly #schema: string
  readonly #owned: boolean
  /** `last_used_at` writes in flight; `close` waits for them. */
  readonly #touches = new Set<Promise<void>>()

  constructor(db: Kysely<Database>, schema: string, owned = false) {
    this.#db = db
    this.#schema = schema
    this.#owned = owned
  }

  private get table() {
    return this.#db.withSchema(this.#schema)
  }

  /** The operator's settings per tenant, in the same database. */
  get tenants(): Tenants {
    return new Tenants(this.#db, this.#schema)
  }

  /**
   * Creates a key as the operator grants it (the CLI, setup code, an operator key): a tenant key
   * may hold only the scopes its tenant is granted, and its own limits are sub-limits, no larger
   * than the tenant's where the operator set those. An expiry must be in the future. The secret in
   * the answer is the only copy. (A tenant admin's request is first bounded by its own key: see
   * `boundByCreator` in the REST API.)
   */
  async create(input: CreateKeyInput): Promise<CreatedKey> {
    const scopes = checkScopes(input.scopes)
    const operator = scopes.includes('operator')
    if (operator && input.tenantId !== undefined && input.tenantId !== OPERATOR_TENANT) {
      throw new TaskloomError(
        'INVALID_INPUT',
        'an operator key belongs to no tenant: leave out the tenant id',
        {
          issues: [{ path: 'tenant_id', message: 'not with the operator scope' }],
        },
      )
    }
    const tenantId = operator ? OPERATOR_TENANT : checkTenantId(input.tenantId)
    checkLimit('rate_limit', input.rateLimit)
    checkLimit('monthly_quota', input.monthlyQuota)
    checkExpiry(input.expiresAt)
    if (!operator) {
      const granted = await this.tenants.get(tenantId)
      const allowed: readonly Scope[] = granted.scopes ?? TENANT_SCOPES
      const outside = scopes.filter((s) => !allowed.includes(s))
      if (outside.length > 0) {
        throw new TaskloomError(
          'INVALID_INPUT',
          `tenant ${tenantId} is not granted ${outside.join(', ')} (it has ${allowed.join(', ') || 'no scopes'}): the operator grants scopes with \`taskloom tenants set\``,
          { issues: [{ path: 'scopes', message: `not granted to tenant ${tenantId}` }] },
        )
      }
      for (const [field, value, cap] of [
        ['rate_limit', input.rateLimit, granted.rateLimit],
        ['monthly_quota', input.monthlyQuota, granted.monthlyQuota],
      ] as const) {
        if (value !== undefined && cap !== null && value > cap) {
          throw new TaskloomError(
            'INVALID_INPUT',
            `${field} ${value} is more than tenant ${tenantId} has (${cap}): a key's limit is a sub-limit within its tenant's`,
            { issues: [{ path: field, message: `at most ${cap}, the tenant's` }] },
          )
        }
      }
    }
    const nameFault =
      input.name === undefined
        ? null
        : typeof input.name !== 'string' || input.name.length < 1 || input.name.length > 200
          ? 'expected a string of 1-200 characters'
          : textFault(input.name)
    if (nameFault) {
      throw new TaskloomError('INVALID_INPUT', `name ${nameFault}`, {
        issues: [{ path: 'name', message: nameFault }],
      })
    }
    const prefix = `tlk_${randomBytes(6).toString('hex')}`
    const key = `${prefix}_${randomBytes(32).toString('base64url')}`
    const row = await this.table
      .insertInto('api_keys')
      .values({
        id: randomUUID(),
        prefix,
        key_hash: hash(key).toString('hex'),
        tenant_id: tenantId,
        name: input.name ?? null,
        scopes,
        rate_limit: input.rateLimit ?? null,
        monthly_quota: input.monthlyQuota ?? null,
        expires_at: input.expiresAt ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow()
    return { key, info: toInfo(row) }
  }

  /** Keys of one tenant (or all), newest first. */
  async list(tenantId?: string): Promise<ApiKeyInfo[]> {
    let q = this.table.selectFrom('api_keys').selectAll().orderBy('created_at', 'desc').orderBy('id')
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId)
    return (await q.execute()).map(toInfo)
  }

  async get(id: string, tenantId?: string): Promise<ApiKeyInfo | null> {
    let q = this.table.selectFrom('api_keys').selectAll().where('id', '=', id)
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId)
    const row = await q.executeTakeFirst()
    return row ? toInfo(row) : null
  }

  /** Revokes a key by id or prefix; false when no such key (of that tenant) exists. */
  async revoke(idOrPrefix: string, tenantId?: string): Promise<ApiKeyInfo | null> {
    const column = idOrPrefix.startsWith('tlk_') ? 'prefix' : 'id'
    let q = this.table
      .updateTable('api_keys')
      .set({ is_active: false, revoked_at: new Date() })
      .where(column, '=', idOrPrefix)
    if (tenantId !== undefined) q = q.where('tenant_id', '=', tenantId)
    const row = await q.returningAll().executeTakeFirst()
    return row ? toInfo(row) : null
  }

  /** Checks a presented key: by prefix, then the hash in constant time, then its state. */
  async verify(presented: string, now = Date.now()): Promise<Verification> {
    const match = KEY_FORMAT.exec(presented)
    if (!match) return { ok: false, reason: 'malformed' }
    const prefix = match[1]!
    const row = await this.table
      .selectFrom('api_keys')
      .selectAll()
      .where('prefix', '=', prefix)
      .executeTakeFirst()
    const given = hash(presented)
    // Compare even when no row matched, so timing does not tell a known prefix from an unknown one.
    const stored = row ? Buffer.from(row.key_hash, 'hex') : Buffer.alloc(32)
    const equal = stored.length === given.length && timingSafeEqual(stored, given)
    if (!row) return { ok: false, reason: 'unknown', prefix }
    if (!equal) return { ok: false, reason: 'mismatch', prefix }
    const key = toInfo(row)
    if (key.revokedAt) return { ok: false, reason: 'revoked', prefix }
    if (!key.isActive) return { ok: false, reason: 'inactive', prefix }
    if (key.expiresAt && key.expiresAt.getTime() <= now) return { ok: false, reason: 'expired', prefix }
    if (key.lastUsedAt === null || now - key.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS)
      this.touch(key.id, now)
    return { ok: true, key }
  }

  /**
   * Records a use without holding up the request. The condition makes concurrent API processes
   * write it once per resolution; a failure costs only the timestamp.
   */
  private touch(id: string, now: number): void {
    const at = new Date(now)
    const write = this.table
      .updateTable('api_keys')
      .set({ last_used_at: at })
      .where('id', '=', id)
      .where((eb) =>
        eb.or([
          eb('last_used_at', 'is', null),
          eb('last_used_at', '<=', new Date(now - LAST_USED_RESOLUTION_MS)),
        ]),
      )
      .execute()
      .then(
        () => {},
        () => {},
      )
      .finally(() => this.#touches.delete(write))
    this.#touches.add(write)
  }

  /** Releases the connection when these keys opened their own (`openApiKeys`). */
  async close(): Promise<void> {
    await Promise.all([...this.#touches])
    if (this.#owned) await this.#db.destroy()
  }
}

type KeyRow = {
  [K in keyof ApiKeysTable]: ApiKeysTable[K] extends import('kysely').ColumnType<infer S, unknown, unknown>
    ? S
    : ApiKeysTable[K]
}

function toInfo(row: KeyRow): ApiKeyInfo {
  return {
    id: row.id,
    prefix: row.prefix ?? '',
    tenantId: row.tenant_id,
    name: row.name,
    scopes: row.scopes as Scope[],
    rateLimit: row.rate_limit,
    monthlyQuota: row.monthly_quota,
    isActive: row.is_active,
    createdAt: new Date(row.created_at),
    expiresAt: row.expires_at ? new Date(row.expires_at) : null,
    revokedAt: row.revoked_at ? new Date(row.revoked_at) : null,
    lastUsedAt: row.last_used_at ? new Date(row.last_used_at) : null,
  }
}

export interface OpenApiKeysOptions {
  /** A postgres:// URL, a pg.Pool, or PGlite options. */
  postgres: PostgresInput
  /** Default 'taskloom'. */
  schema?: string
  /** Apply missing migrations first. Default false (an older schema is refused). */
  migrate?: boolean
}

/**
 * Opens the API key table on its own connection (what `npx taskloom keys` uses).
 * @example
 * const keys = await openApiKeys({ postgres: process.env.DATABASE_URL! })
 * const { key } = await keys.create({ tenantId: 'acme', scopes: ['task:create', 'task:read'] })
 * await keys.close()
 */
export async function openApiKeys(options: OpenApiKeysOptions): Promise<ApiKeys> {
  const schema = checkSchemaName(options.schema ?? DEFAULT_SCHEMA)
  const { dialect } = chooseDialect(options.postgres, { max: 2 })
  const db = new Kysely<Database>({ dialect })
  try {
    if (options.migrate) await migrate(db, { schema })
    else await assertSchemaCurrent(db, { schema })
  } catch (err) {
    await db.destroy()
    throw err
  }
  return new ApiKeys(db, schema, true)
}
