/**
 * The dashboard's framework-free core: `dashboard.handle(request)` answers the page, its hashed
 * assets and its JSON endpoints (`/_api/...`), and it mounts with the REST API's adapters
 * (`taskloom/express`, `taskloom/fastify`, `taskloom/node`) under any prefix. Every answer carries
 * a strict Content-Security-Policy (scripts, styles and requests from this origin only, nothing
 * inline); the page never puts task data into HTML.
 */
import { randomUUID } from 'node:crypto'
import { TaskloomError } from '../errors.js'
import type { ApiRequest, ApiResponse } from '../http/api.js'
import { type AuditAction, AuditLog } from '../http/audit.js'
import type { Mountable } from '../http/mountable.js'
import { HttpProblem, type ProblemCode, toProblem } from '../http/problem.js'
import { createJsonLogger, type Logger } from '../logger.js'
import { queueMode } from '../queue/insights.js'
import { internals } from '../queue/internal.js'
import type { Queue } from '../queue/queue.js'
import type { TaskDefinition } from '../task/define-task.js'
import { type ActionContext, bulkRetry, cancelTask, retryTask, scheduleAction } from './actions.js'
import { type Assets, indexPage, loadAssets } from './assets.js'
import type { DashboardOptions } from './options.js'
import { createRedactor, type Redactor } from './redact.js'
import {
  CSRF_COOKIE,
  checkCsrf,
  cookie,
  cookies,
  header,
  newCsrfToken,
  SESSION_COOKIE,
  Sessions,
  type Viewer,
} from './session.js'
import * as views from './views.js'

export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ')

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
}

type Handler = (ctx: ActionContext) => Promise<unknown>

interface Endpoint {
  method: 'GET' | 'POST'
  path: string
  handle: Handler
}

const ENDPOINTS: Endpoint[] = [
  { method: 'GET', path: 'overview', handle: views.overview },
  { method: 'GET', path: 'tasks', handle: views.tasks },
  { method: 'GET', path: 'tasks/:queue/:id', handle: views.taskDetail },
  { method: 'POST', path: 'tasks/:queue/:id/cancel', handle: cancelTask },
  { method: 'POST', path: 'tasks/:queue/:id/retry', handle: retryTask },
  { method: 'GET', path: 'dlq', handle: views.deadLetters },
  { method: 'POST', path: 'dlq/retry', handle: bulkRetry },
  { method: 'GET', path: 'schedules', handle: views.schedules },
  { method: 'POST', path: 'schedules/:queue/:id/pause', handle: (c) => scheduleAction(c, 'pause') },
  { method: 'POST', path: 'schedules/:queue/:id/resume', handle: (c) => scheduleAction(c, 'resume') },
  { method: 'POST', path: 'schedules/:queue/:id/trigger', handle: (c) => scheduleAction(c, 'trigger') },
  { method: 'GET', path: 'workers', handle: views.workers },
  { method: 'GET', path: 'tenants', handle: views.tenants },
]

function match(
  segments: string[],
  method: string,
): { endpoint: Endpoint; params: Record<string, string> } | null {
  for (const endpoint of ENDPOINTS) {
    if (endpoint.method !== method && !(method === 'HEAD' && endpoint.method === 'GET')) continue
    const parts = endpoint.path.split('/')
    if (parts.length !== segments.length) continue
    const params: Record<string, string> = {}
    let same = true
    parts.forEach((part, i) => {
      if (part.startsWith(':')) params[part.slice(1)] = segments[i]!
      else if (part !== segments[i]) same = false
    })
    if (same) return { endpoint, params }
  }
  return null
}

export class Dashboard implements Mountable {
  readonly options: DashboardOptions & { bodyLimit: number }
  private readonly queues: ReadonlyMap<string, Queue>
  private readonly sessions: Sessions
  private readonly redact: Redactor
  private readonly logger: Logger
  private readonly tasks = new Map<string, TaskDefinition<any, any>>()
  private assets: Assets | undefined
  private auditLog: Promise<AuditLog | undefined> | undefined

  constructor(options: DashboardOptions) {
    if (!options || !Array.isArray(options.queues) || options.queues.length === 0) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'createDashboard needs `queues`: one or more queues from createQueue()',
      )
    }
    if (!options.auth) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'createDashboard needs `auth`: { apiKeys: api } to sign in with the REST API keys, or { user: (req) => user | null }',
      )
    }
    this.options = { bodyLimit: 65_536, ...options }
    const byName = new Map<string, Queue>()
    for (const q of options.queues) {
      if (byName.has(q.name)) throw new TaskloomError('INVALID_OPTIONS', `queue ${q.name} is given twice`)
      byName.set(q.name, q)
    }
    this.queues = byName
    this.sessions = new Sessions(options.auth)
    this.redact = createRedactor(options.redact)
    this.logger = options.logger ?? createJsonLogger({ service: 'taskloom-dashboard' })
    for (const t of options.tasks ?? []) this.tasks.set(t.name, t)
    // Fail at creation, not at the first request, when the front end is missing.
    this.assets = loadAssets(options.assetsDir)
  }

  openInBackground(): void {
    this.audit().catch((err: unknown) =>
      this.logger.warn({ err }, 'the dashboard could not open its audit log yet'),
    )
  }

  /** Flushes the audit entries the dashboard wrote (its own log, when auth is a callback). */
  async close(): Promise<void> {
    const log = await this.auditLog?.catch(() => undefined)
    await log?.flush()
  }

  /**
   * The audit log: the REST API's when signing in with its keys; else one over the first queue's
   * store (none for Redis-only queues: actions are then logged only).
   */
  private audit(): Promise<AuditLog | undefined> {
    this.auditLog ??= (async () => {
      const api = this.sessions.api
      if (api) return api.audit()
      for (const q of this.queues.values()) {
        await q.ready()
        const store = q[internals].store()
        if (store) return new AuditLog(store.db, store.schema, this.logger)
      }
      return undefined
    })()
    this.auditLog.catch(() => {
      this.auditLog = undefined
    })
    return this.auditLog
  }

  /** A problem answer for errors an adapter meets before the dashboard (a body its framework refused). */
  problem(
    code: ProblemCode,
    detail: string,
    path: string,
    headers: Record<string, string> = {},
  ): ApiResponse {
    return this.answerProblem(new HttpProblem(code, detail, { headers }), path, randomUUID())
  }

  private answerProblem(problem: HttpProblem, path: string, requestId: string): ApiResponse {
    return {
      status: problem.status,
      headers: {
        ...SECURITY_HEADERS,
        'content-type': 'application/problem+json',
        'cache-control': 'no-store',
        'x-request-id': requestId,
        ...problem.headers,
      },
      body: JSON.stringify(problem.toBody(path, requestId)),
    }
  }

  async handle(req: ApiRequest): Promise<ApiResponse> {
    const requestId = randomUUID()
    const url = typeof req.url === 'string' && req.url.startsWith('/') ? req.url : '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
    const base = (req.mountPath ?? '').replace(/\/+$/, '')
    const method = (req.method ?? 'GET').toUpperCase()
    try {
      if (path.startsWith('/assets/')) return this.asset(path.slice('/assets/'.length), method)
      if (path === '/_api' || path.startsWith('/_api/')) {
        return await this.api(req, method, path.slice('/_api/'.length), query, base, requestId)
      }
      if (method !== 'GET' && method !== 'HEAD') {
        throw new HttpProblem('METHOD_NOT_ALLOWED', `${method} is not allowed here`, {
          headers: { allow: 'GET, HEAD' },
        })
      }
      return this.page(req, base)
    } catch (thrown) {
      const problem = toProblem(thrown)
      if (problem.status >= 500)
        this.logger.error({ err: thrown, request_id: requestId }, 'dashboard request failed')
      return this.answerProblem(problem, path, requestId)
    }
  }

  private asset(name: string, method: string): ApiResponse {
    const file = this.assets!.files.get(name)
    if (!file || (method !== 'GET' && method !== 'HEAD'))
      throw new HttpProblem('NOT_FOUND', `no asset ${name}`)
    // Hashed names change with their content: cache for good. The icon's name is fixed: a day.
    const immutable = /\.[0-9a-f]{8,}\./i.test(name)
    return {
      status: 200,
      headers: {
        ...SECURITY_HEADERS,
        'content-type': file.contentType,
        'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'public, max-age=86400',
      },
      body: method === 'HEAD' ? '' : file.body,
    }
  }

  /** The page for every other path (deep links): the client routes. It sets the CSRF cookie. */
  private page(req: ApiRequest, base: string): ApiResponse {
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      'content-type': 'text/html; charset=utf-8',
      'cache-control': 'no-store',
    }
    if (!cookies(req).get(CSRF_COOKIE)) headers['set-cookie'] = this.csrfCookie(req, base, newCsrfToken())
    return { status: 200, headers, body: indexPage(this.assets!, base, this.options.title ?? 'taskloom') }
  }

  private csrfCookie(req: ApiRequest, base: string, token: string): string {
    return cookie(req, CSRF_COOKIE, token, {
      path: base || '/',
      httpOnly: true,
      secure: this.options.secureCookies,
    })
  }

  private json(status: number, body: unknown, extra: Record<string, string> = {}): ApiResponse {
    return {
      status,
      headers: {
        ...SECURITY_HEADERS,
        'content-type': 'application/json',
        'cache-control': 'no-store',
        ...extra,
      },
      body: JSON.stringify(body),
    }
  }

  private parseBody(req: ApiRequest): unknown {
    const body = req.body ?? new Uint8Array(0)
    if (body.byteLength > this.options.bodyLimit)
      throw new HttpProblem('PAYLOAD_TOO_LARGE', 'the body is too large')
    if (body.byteLength === 0) return {}
    const type = header(req, 'content-type') ?? ''
    if (!/^application\/json\s*(?:;|$)/i.test(type)) {
      throw new HttpProblem('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json')
    }
    try {
      return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body))
    } catch {
      throw new HttpProblem('INVALID_JSON', 'the body is not valid JSON')
    }
  }

  private async api(
    req: ApiRequest,
    method: string,
    route: string,
    query: URLSearchParams,
    base: string,
    requestId: string,
  ): Promise<ApiResponse> {
    if (method === 'POST') {
      checkCsrf(req)
      // A JSON content type forces a CORS preflight on any cross-site sender.
      if (!/^application\/json\s*(?:;|$)/i.test(header(req, 'content-type') ?? '')) {
        throw new HttpProblem('UNSUPPORTED_MEDIA_TYPE', 'send the body as application/json')
      }
    }
    if (route === 'session' && (method === 'GET' || method === 'HEAD')) return this.session(req, base)
    if (route === 'login' && method === 'POST') return this.login(req, base, requestId)
    if (route === 'logout' && method === 'POST') {
      return this.json(200, { ok: true }, { 'set-cookie': this.sessionCookie(req, base, '', 0) })
    }
    let segments: string[]
    try {
      segments = route.split('/').map((s) => decodeURIComponent(s))
    } catch {
      throw new HttpProblem('INVALID_REQUEST', 'the path has an invalid percent-encoding')
    }
    const found = match(segments, method)
    if (!found) throw new HttpProblem('ROUTE_NOT_FOUND', `no endpoint at /_api/${route}`)
    const viewer = await this.sessions.viewer(req)
    if (!viewer) {
      throw new HttpProblem(
        'UNAUTHENTICATED',
        this.sessions.usesKeys ? 'sign in with an API key' : 'sign in to the application first',
      )
    }
    const body = method === 'POST' ? this.parseBody(req) : undefined
    const ctx: ActionContext = {
      viewer,
      queues: this.queues,
      query,
      params: found.params,
      redact: this.redact,
      sessions: this.sessions,
      audit: () => this.audit(),
      body,
      record: (action, queue, targetId, details) =>
        this.record(viewer, requestId, action, queue, targetId, details),
      findTask: (name) => this.tasks.get(name),
    }
    return this.json(200, await found.endpoint.handle(ctx))
  }

  private record(
    viewer: Viewer,
    requestId: string,
    action: AuditAction,
    queue: Queue,
    targetId: string | null,
    details: Record<string, unknown> = {},
  ): void {
    const entry = {
      action,
      tenantId: viewer.tenantId ?? null,
      keyId: viewer.keyId,
      requestId,
      targetId,
      details: { ...details, via: 'dashboard', user: viewer.id, queue: queue.name },
    }
    this.logger.info({ ...entry, ...entry.details }, 'dashboard action')
    this.audit().then(
      (log) => log?.record(entry),
      (err: unknown) => this.logger.warn({ err, action }, 'could not write an audit entry'),
    )
  }

  private sessionCookie(req: ApiRequest, base: string, value: string, maxAge?: number): string {
    return cookie(req, SESSION_COOKIE, value, {
      path: base || '/',
      httpOnly: true,
      secure: this.options.secureCookies,
      ...(maxAge !== undefined ? { maxAge } : {}),
    })
  }

  private async session(req: ApiRequest, base: string): Promise<ApiResponse> {
    const viewer = await this.sessions.viewer(req)
    let csrf = cookies(req).get(CSRF_COOKIE)
    const headers: Record<string, string> = {}
    if (!csrf) {
      csrf = newCsrfToken()
      headers['set-cookie'] = this.csrfCookie(req, base, csrf)
    }
    await Promise.all([...this.queues.values()].map((q) => q.ready()))
    const queues = [...this.queues.values()].map((q) => ({ name: q.name, mode: queueMode(q) }))
    return this.json(
      200,
      {
        user: viewer
          ? { id: viewer.id, name: viewer.name, tenant_id: viewer.tenantId ?? null, can_act: viewer.canAct }
          : null,
        sign_in: this.sessions.usesKeys ? 'api-key' : 'host',
        csrf,
        title: this.options.title ?? 'taskloom',
        refresh_ms: this.options.refreshMs ?? 5000,
        rest_api_url: this.options.restApiUrl ?? null,
        queues,
      },
      headers,
    )
  }

  private async login(req: ApiRequest, base: string, requestId: string): Promise<ApiResponse> {
    if (!this.sessions.usesKeys)
      throw new HttpProblem('NOT_FOUND', 'this dashboard signs in through its host app')
    const body = this.parseBody(req) as { key?: unknown }
    const key = typeof body?.key === 'string' ? body.key.trim() : ''
    const viewer = key ? await this.sessions.byKey(key) : null
    const log = await this.audit().catch(() => undefined)
    if (!viewer) {
      void log?.record({
        action: 'auth.failed',
        tenantId: null,
        keyId: null,
        requestId,
        details: { via: 'dashboard', ...(key.startsWith('tlk_') ? { prefix: key.slice(0, 16) } : {}) },
      })
      throw new HttpProblem(
        'UNAUTHENTICATED',
        'that key is not valid, or lacks the dashboard:read (or admin) scope',
      )
    }
    void log?.record({
      action: 'dashboard.login',
      tenantId: viewer.tenantId ?? null,
      keyId: viewer.keyId,
      requestId,
      details: { via: 'dashboard', user: viewer.id },
    })
    return this.json(200, { ok: true }, { 'set-cookie': this.sessionCookie(req, base, key) })
  }
}
