/**
 * Who sent a dashboard request, and whether a POST really came from the dashboard's own page.
 *
 * Sign-in with an API key: the key is checked with the REST API's key store, then kept in an
 * HttpOnly, SameSite=Strict cookie scoped to the dashboard's path, and verified again on every
 * request (cached for the API's `keyCacheMs`), so a revoked key stops working as it does on the
 * REST API. With a callback, the host app's own session decides.
 *
 * CSRF: every POST must carry the `X-CSRF-Token` header equal to the `tl_csrf` cookie (a random
 * value the dashboard sets; another site can neither read it nor, SameSite=Strict, send it), must be
 * JSON (a cross-site form cannot send that without a preflight), and must not say it came from
 * another site (`Sec-Fetch-Site`, `Origin`).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type { Api, ApiRequest } from '../http/api.js'
import { type ApiKeyInfo, isOperator } from '../http/api-keys.js'
import { HttpProblem } from '../http/problem.js'
import { effectiveScopes } from '../http/tenant-limits.js'
import { grantOf } from '../http/tenants.js'
import type { DashboardAuth, DashboardUser } from './options.js'

export const SESSION_COOKIE = 'tl_dash'
export const CSRF_COOKIE = 'tl_csrf'

/** A signed-in user as the dashboard acts for them. */
export interface Viewer {
  id: string
  name: string
  /** undefined: every tenant. */
  tenantId: string | undefined
  canAct: boolean
  /** The API key behind the session, for the audit log. */
  keyId: string | null
}

export function header(req: ApiRequest, name: string): string | undefined {
  const v = req.headers[name]
  return Array.isArray(v) ? v[0] : v
}

export function cookies(req: ApiRequest): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (header(req, 'cookie') ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq < 1) continue
    const name = part.slice(0, eq).trim()
    if (!out.has(name)) out.set(name, decodeURIComponent(part.slice(eq + 1).trim()))
  }
  return out
}

const LOOPBACK = /^(?:localhost|127\.\d+\.\d+\.\d+|\[::1\])(?::\d+)?$/i

export function cookie(
  req: ApiRequest,
  name: string,
  value: string,
  options: { path: string; httpOnly: boolean; secure: boolean | undefined; maxAge?: number },
): string {
  const secure = options.secure ?? !LOOPBACK.test(header(req, 'host') ?? '')
  return [
    `${name}=${encodeURIComponent(value)}`,
    `Path=${options.path}`,
    'SameSite=Strict',
    ...(options.httpOnly ? ['HttpOnly'] : []),
    ...(secure ? ['Secure'] : []),
    ...(options.maxAge !== undefined ? [`Max-Age=${options.maxAge}`] : []),
  ].join('; ')
}

export function newCsrfToken(): string {
  return randomBytes(24).toString('base64url')
}

/** Throws FORBIDDEN unless the POST carries the page's CSRF token and came from the same site. */
export function checkCsrf(req: ApiRequest): void {
  const site = header(req, 'sec-fetch-site')
  if (site !== undefined && site !== 'same-origin' && site !== 'none') {
    throw new HttpProblem('FORBIDDEN', 'cross-site request refused')
  }
  const origin = header(req, 'origin')
  const host = header(req, 'host')
  if (origin !== undefined && origin !== 'null' && host !== undefined) {
    let originHost = ''
    try {
      originHost = new URL(origin).host
    } catch {}
    if (originHost !== host) throw new HttpProblem('FORBIDDEN', 'cross-origin request refused')
  }
  const sent = header(req, 'x-csrf-token') ?? ''
  const expected = cookies(req).get(CSRF_COOKIE) ?? ''
  const a = createHash('sha256').update(sent).digest()
  const b = createHash('sha256').update(expected).digest()
  if (!sent || !expected || !timingSafeEqual(a, b)) {
    throw new HttpProblem('FORBIDDEN', 'missing or wrong CSRF token: reload the page')
  }
}

/** Resolves who sent a request: by the sign-in cookie (API keys) or by the host's callback. */
export class Sessions {
  private readonly verified = new Map<string, { viewer: Viewer | null; until: number }>()

  constructor(private readonly auth: DashboardAuth) {
    const ok =
      auth &&
      (('apiKeys' in auth && typeof auth.apiKeys?.keys === 'function') ||
        ('user' in auth && typeof auth.user === 'function'))
    if (!ok) {
      throw new HttpProblem(
        'INTERNAL',
        'createDashboard needs `auth`: { apiKeys: api } (the REST API whose keys sign in) or { user: (req) => user | null }',
      )
    }
  }

  get usesKeys(): boolean {
    return 'apiKeys' in this.auth
  }

  get api(): Api | undefined {
    return 'apiKeys' in this.auth ? this.auth.apiKeys : undefined
  }

  async viewer(req: ApiRequest): Promise<Viewer | null> {
    if ('user' in this.auth) return fromUser(await this.auth.user(req))
    const secret = cookies(req).get(SESSION_COOKIE)
    return secret ? this.byKey(secret) : null
  }

  /** The viewer an API key signs in as; null when the key is not valid or may not open the dashboard. */
  async byKey(secret: string): Promise<Viewer | null> {
    const api = this.api!
    const now = Date.now()
    const cached = this.verified.get(secret)
    if (cached && cached.until > now) return cached.viewer
    const keys = await api.keys()
    const result = await keys.verify(secret, now)
    const viewer = result.ok ? await this.keyViewer(result.key) : null
    const ttl = api.options.keyCacheMs
    if (ttl > 0) {
      if (this.verified.size >= 10_000) this.verified.clear()
      const expires = result.ok && result.key.expiresAt ? result.key.expiresAt.getTime() : Infinity
      this.verified.set(secret, { viewer, until: Math.min(now + ttl, expires) })
    }
    return viewer
  }

  private async keyViewer(key: ApiKeyInfo): Promise<Viewer | null> {
    const api = this.api!
    const name = key.name ?? key.prefix
    if (isOperator(key)) return { id: key.prefix, name, tenantId: undefined, canAct: true, keyId: key.id }
    const settings = await (await api.keys()).tenants.get(key.tenantId)
    const scopes = effectiveScopes(key, grantOf(settings, api.options))
    if (!scopes.includes('dashboard:read') && !scopes.includes('admin')) return null
    return { id: key.prefix, name, tenantId: key.tenantId, canAct: scopes.includes('admin'), keyId: key.id }
  }
}

function fromUser(user: DashboardUser | null | undefined): Viewer | null {
  if (!user || typeof user.id !== 'string' || user.id === '') return null
  return {
    id: user.id,
    name: user.name ?? user.id,
    tenantId: user.tenantId,
    canAct: user.canAct === true,
    keyId: null,
  }
}
