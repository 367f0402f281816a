/**
 * The framework-free HTTP core: `api.handle({ method, url, headers, body })` answers
 * `{ status, headers, body }`. Every request goes through the same steps: route match, body size,
 * API key, scope, rate limit, content type, JSON and schema validation, handler; every error is a
 * problem document. Adapters (`taskloom/express`, `taskloom/fastify`, `taskloom/node`) only translate.
 */
import { randomUUID } from 'node:crypto'
import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api'
import { Kysely } from 'kysely'
import type { z } from 'zod'
import { TaskloomError } from '../errors.js'
import { createJsonLogger, type Logger } from '../logger.js'
import { internals } from '../queue/internal.js'
import { createScheduler, type Scheduler } from '../schedule/scheduler.js'
import { chooseDialect } from '../store/postgres/connection.js'
import { assertSchemaCurrent, checkSchemaName, DEFAULT_SCHEMA, migrate } from '../store/postgres/migrator.js'
import type { Database } from '../store/postgres/tables.js'
import type { TaskDefinition } from '../task/define-task.js'
import { textFault, textIssues } from '../task/text.js'
import { type ApiKeyInfo, ApiKeys, isOperator, type Verification } from './api-keys.js'
import { type AuditAction, AuditLog } from './audit.js'
import { type Limits, MemoryLimits, RedisLimits } from './limits.js'
import { buildOpenApi } from './openapi.js'
import { API_DEFAULTS, type ApiOptions } from './options.js'
import { OutageLog, unavailable } from './outages.js'
import { HttpProblem, PROBLEM_STATUS, type ProblemCode, toProblem } from './problem.js'
import { matchRoute, type Route, type RouteResult, type Services } from './route.js'
import { adminRoutes } from './routes-admin.js'
import { auditRoutes } from './routes-audit.js'
import { flowRoutes } from './routes-flow.js'
import { operatorRoutes } from './routes-operator.js'
import { readiness, systemRoutes } from './routes-system.js'
import { taskRoutes } from './routes-tasks.js'
import { workflowRoutes } from './routes-workflows.js'
import { type Admission, admit, forbidden, mayCall } from './tenant-limits.js'
import { grantOf, type TenantGrant, Tenants } from './tenants.js'

export const VERSION = '0.1.0'

/** A request as the adapters hand it over. */
export interface ApiRequest {
  method: string
  /** Path and query, relative to where the API is mounted: '/tasks?status=queued'. */
  url: string
  /** Lower-case names. */
  headers: Record<string, string | string[] | undefined>
  body?: Uint8Array | null | undefined
  /** Where the API is mounted ('/api/v1'; default ''): the span's `http.route` starts with it. */
  mountPath?: string | undefined
}

export interface ApiResponse {
  status: number
  headers: Record<string, string>
  body: string
}

const ROUTES: readonly Route[] = [
  ...taskRoutes,
  ...workflowRoutes,
  ...adminRoutes,
  ...auditRoutes,
  ...operatorRoutes,
  ...flowRoutes,
  ...systemRoutes,
]
const REQUEST_ID = /^[A-Za-z0-9._:@-]{1,128}$/
const JSON_TYPE = /^application\/(?:[a-z0-9.+-]*\+)?json\s*(?:;\s*charset\s*=\s*"?utf-8"?\s*)?$/i
const tracer = trace.getTracer('taskloom', VERSION)

type Settings = ApiOptions & typeof API_DEFAULTS

export class Api {
  readonly options: Settings
  readonly routes: readonly Route[] = ROUTES
  private readonly logger: Logger
  private readonly startedAt = Date.now()
  private services: Promise<Services> | undefined
  private ownDb: Kysely<Database> | undefined
  private purgeTimer: NodeJS.Timeout | undefined
  private scheduler: Scheduler | undefined
  private readonly verified = new Map<string, { key: ApiKeyInfo; until: number }>()
  private readonly grants = new Map<string, { grant: TenantGrant; until: number }>()
  private document: unknown
  private closed = false
  private readonly outages: OutageLog

  constructor(options: ApiOptions) {
    if (!options || typeof options.queue?.submit !== 'function') {
      throw new TaskloomError('INVALID_OPTIONS', 'createApi needs `queue`: a queue made by createQueue()')
    }
    if ('publicMetrics' in options) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'publicMetrics was removed: /metrics shows every tenant, so the API serves it to operator keys only; for a scraper without a key, mount metricsHandler(api) from taskloom/node on a private listener',
        { issues: [{ path: 'publicMetrics', message: 'removed' }] },
      )
    }
    const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
    this.options = { ...API_DEFAULTS, ...defined } as Settings
    const o = this.options
    const bad: { path: string; message: string }[] = []
    const positive = (name: string, v: number | undefined, max: number) => {
      if (v !== undefined && (!Number.isInteger(v) || v < 1 || v > max))
        bad.push({ path: name, message: `expected an integer from 1 to ${max}` })
    }
    positive('rateLimit', o.rateLimit, 1e9)
    positive('quota', o.quota, 2e9)
    positive('auditRetentionDays', o.auditRetentionDays, 36_600)
    positive('bodyLimit', o.bodyLimit, 1 << 30)
    if (!Number.isInteger(o.keyCacheMs) || o.keyCacheMs < 0)
      bad.push({ path: 'keyCacheMs', message: 'expected a non-negative integer' })
    if (bad.length > 0) {
      const text = bad.map((b) => `${b.path}: ${b.message}`).join('; ')
      throw new TaskloomError('INVALID_OPTIONS', `invalid API options: ${text}`, { issues: bad })
    }
    this.logger = options.logger ?? createJsonLogger({ service: 'taskloom-http' })
    this.outages = new OutageLog(this.logger)
    // Asked for explicitly: made now, so bad scheduler options fail here, not at the first request.
    const s = options.scheduler
    if (s !== undefined && s !== false) {
      this.scheduler = createScheduler({
        ...(s === true ? {} : s),
        queue: options.queue,
        logger: this.logger,
      })
    }
  }

  /** Opens what the API needs (key store, audit log, limits); requests call it themselves. */
  async ready(): Promise<void> {
    await this.open()
  }

  /**
   * Starts opening now, without waiting (the adapters call it when the API is mounted), so that the
   * scheduler runs before the first request. A failure is logged; the next request tries again.
   */
  openInBackground(): void {
    this.open().catch((err: unknown) => {
      if (this.closed) return
      this.logger.warn({ err }, 'the API could not open yet; the next request tries again')
    })
  }

  /** The OpenAPI 3.1 document of this API. */
  openapi(): unknown {
    this.document ??= buildOpenApi(this.routes, this.options.version ?? VERSION)
    return this.document
  }

  /** The API key store (for setup code and tests): create, list, revoke. */
  async keys(): Promise<ApiKeys> {
    return (await this.open()).keys
  }

  /** The audit log (for tests and tooling). */
  async audit(): Promise<AuditLog> {
    return (await this.open()).audit
  }

  /** Deletes audit entries older than the retention; answers how many went. Runs hourly by itself. */
  async purgeAudit(now = Date.now()): Promise<number> {
    const { audit } = await this.open()
    return audit.purge(new Date(now - this.options.auditRetentionDays * 86_400_000))
  }

  /** Flushes the audit log and closes connections the API opened (not the queue). */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    clearInterval(this.purgeTimer)
    const services = await this.services?.catch(() => undefined)
    await this.scheduler?.close()
    await services?.audit.flush()
    await services?.keys.close() // waits for last_used_at writes; the connection is closed below
    await this.ownDb?.destroy()
  }

  async handle(req: ApiRequest): Promise<ApiResponse> {
    const began = performance.now()
    const header = (name: string) => {
      const v = req.headers[name]
      return Array.isArray(v) ? undefined : v
    }
    const given = header('x-request-id')
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID()
    const method = (req.method ?? '').toUpperCase()
    let routeName = 'unmatched'
    let pathOnly = '/'
    const parent = propagation.extract(context.active(), req.headers, {
      get: (carrier, key) => carrier[key],
      keys: (carrier) => Object.keys(carrier),
    })
    const span = tracer.startSpan(`${method} unmatched`, { kind: SpanKind.SERVER }, parent)
    let res: ApiResponse
    let tenantId: string | undefined
    try {
      const { path, query } = splitUrl(req.url)
      pathOnly = path
      const segments = decodeSegments(path)
      const match = matchRoute(this.routes, method, segments)
      if (!match) throw new HttpProblem('ROUTE_NOT_FOUND', `no endpoint at ${path}`)
      if ('allowed' in match) {
        throw new HttpProblem('METHOD_NOT_ALLOWED', `${method} is not allowed at ${path}`, {
          headers: { allow: match.allowed.join(', ') },
        })
      }
      const { route, params } = match
      routeName = route.path
      const fullRoute = `${(req.mountPath ?? '').replace(/\/+$/, '')}${route.path}`
      span.updateName(`${method} ${fullRoute}`)
      span.setAttribute('http.route', fullRoute)
      const result = await context.with(trace.setSpan(parent, span), () =>
        this.serve(req, route, params, query, requestId, (t) => {
          tenantId = t
        }),
      )
      res = this.respond(result, requestId)
    } catch (thrown) {
      const err = unavailable(thrown)
      const problem = toProblem(err)
      if (problem.status >= 500) {
        this.outages.failed(err, requestId, routeName)
        span.recordException(err as Error)
      }
      res = {
        status: problem.status,
        headers: {
          'content-type': 'application/problem+json',
          'cache-control': 'no-store',
          'x-request-id': requestId,
          ...problem.headers,
        },
        body: JSON.stringify(problem.toBody(pathOnly, requestId)),
      }
    }
    span.setAttributes({
      'http.request.method': method,
      'url.path': pathOnly,
      'http.response.status_code': res.status,
      ...(tenantId ? { 'taskloom.tenant_id': tenantId } : {}),
    })
    // HEAD: the GET answer's status and headers, without its body.
    if (method === 'HEAD') res = { ...res, body: '' }
    if (res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR })
    else if (routeName !== '/ready' && routeName !== '/health') this.outages.served()
    span.end()
    // Probes are not API traffic: a /ready answering 503 during an outage is its job, not an error.
    if (routeName !== '/ready' && routeName !== '/health')
      this.options.metrics?.observeRequest(routeName, method, res.status, (performance.now() - began) / 1000)
    return res
  }

  private async serve(
    req: ApiRequest,
    route: Route,
    params: Record<string, string>,
    query: URLSearchParams,
    requestId: string,
    setTenant: (tenantId: string) => void,
  ): Promise<RouteResult> {
    const body = req.body ?? new Uint8Array(0)
    if (body.byteLength > this.options.bodyLimit) {
      throw new HttpProblem(
        'PAYLOAD_TOO_LARGE',
        `the body is ${body.byteLength} bytes; the limit is ${this.options.bodyLimit}`,
      )
    }
    if (route.path === '/health') {
      // Unhealthy only when the process cannot recover by itself: its queue failed to open for good
      // (a queue still retrying its open is alive, and /ready says it is not ready).
      const open = this.options.queue[internals].openState()
      const failed = open.state === 'failed'
      return {
        status: failed ? 503 : 200,
        body: {
          status: failed ? 'unhealthy' : 'healthy',
          version: this.options.version ?? VERSION,
          uptime_seconds: Math.floor((Date.now() - this.startedAt) / 1000),
          ...(failed ? { reason: open.error.message } : {}),
        },
      }
    }
    if (route.path === '/openapi.json') return { status: 200, body: this.openapi() }
    if (route.path === '/ready') {
      // Not ready while the services cannot open: answer with the failing check, not a 500, and
      // at once while the queue is known to be retrying its open (a probe has a short timeout).
      const inner = this.options.queue[internals]
      const open = inner.openState()
      if (open.state === 'failed') return readiness(inner.redis, undefined, open.error)
      if (open.state === 'opening' && open.lastError) return readiness(inner.redis, undefined, open.lastError)
      const opened = await this.open().then(
        () => null,
        (err: unknown) => unavailable(err),
      )
      if (opened !== null) return readiness(this.options.queue[internals].redis, undefined, opened)
    }
    const services = await this.open()
    let key: ApiKeyInfo | undefined
    const audit = (action: AuditAction, targetId?: string | null, details?: Record<string, unknown>) => {
      void services.audit.record({
        action,
        tenantId: key && !isOperator(key) ? key.tenantId : null,
        keyId: key?.id ?? null,
        requestId,
        targetId,
        details,
      })
    }
    let headers: Record<string, string> = {}
    let tenant: TenantGrant | undefined
    let admission: Admission | undefined
    if (route.scope !== 'public') {
      key = await this.authenticate(services, req.headers['x-api-key'], requestId, route)
      if (!isOperator(key)) setTenant(key.tenantId)
      tenant = isOperator(key) ? undefined : await this.grantFor(services, key.tenantId)
      if (!mayCall(key, tenant, route.scope)) {
        audit('auth.forbidden', null, { route: route.path, method: route.method, needs: route.scope })
        throw forbidden(key, route.scope)
      }
      admission = await admit(services, key, tenant, route, audit)
      headers = admission.headers
    }
    try {
      let parsed: unknown
      if (route.body) parsed = parseBody(route.body, req.headers['content-type'], body)
      if (route.query) {
        const bad = [...query].flatMap(([name, value]) => {
          const fault = textFault(name) ?? textFault(value)
          return fault ? [{ path: textFault(name) ? JSON.stringify(name) : name, message: fault }] : []
        })
        if (bad.length > 0) throw textProblem('INVALID_QUERY', bad, 'invalid query')
        const q = route.query.safeParse(Object.fromEntries(query))
        if (!q.success) throw invalid('INVALID_QUERY', q.error.issues, 'invalid query')
      }
      const result = await route.handle({
        services,
        params,
        query,
        key: key ?? ANONYMOUS,
        tenant,
        requestId,
        headers: req.headers,
        body: parsed,
        audit,
        quota: admission?.quota,
      })
      return { ...result, headers: { ...headers, ...result.headers } }
    } finally {
      admission?.release()
    }
  }
  private async authenticate(
    services: Services,
    presented: string | string[] | undefined,
    requestId: string,
    route: Route,
  ): Promise<ApiKeyInfo> {
    const now = Date.now()
    if (typeof presented === 'string') {
      const cached = this.verified.get(presented)
      if (cached && cached.until > now && (!cached.key.expiresAt || cached.key.expiresAt.getTime() > now)) {
        return cached.key
      }
    }
    const result: Verification =
      typeof presented === 'string'
        ? await services.keys.verify(presented, now)
        : { ok: false, reason: 'malformed' }
    if (result.ok) {
      if (this.options.keyCacheMs > 0 && typeof presented === 'string') {
        if (this.verified.size >= 10_000) this.verified.clear()
        this.verified.set(presented, { key: result.key, until: now + this.options.keyCacheMs })
      }
      return result.key
    }
    const reason = presented === undefined ? 'missing' : result.reason
    void services.audit.record({
      action: 'auth.failed',
      tenantId: null,
      keyId: null,
      requestId,
      details: { reason, route: route.path, ...(result.prefix ? { prefix: result.prefix } : {}) },
    })
    throw new HttpProblem(
      'UNAUTHENTICATED',
      presented === undefined
        ? 'send an API key in the X-API-Key header'
        : 'the API key is not valid (unknown, revoked or expired)',
      { headers: { 'www-authenticate': 'ApiKey header="X-API-Key"' } },
    )
  }

  private respond(result: RouteResult, requestId: string): ApiResponse {
    const headers: Record<string, string> = {
      'cache-control': 'no-store',
      'x-request-id': requestId,
      ...result.headers,
    }
    if (result.raw) {
      headers['content-type'] = result.raw.contentType
      return { status: result.status, headers, body: result.raw.body }
    }
    if (result.status === 204 || result.body === undefined)
      return { status: result.status, headers, body: '' }
    headers['content-type'] = 'application/json'
    return { status: result.status, headers, body: JSON.stringify(result.body) }
  }

  /**
   * The `metrics` option's Prometheus text as a response, without an API key: for a listener the
   * host keeps private (`metricsHandler` of `taskloom/node`). The metrics show every tenant, so the
   * tenant-facing API serves them to operator keys only.
   */
  async metricsResponse(): Promise<ApiResponse> {
    const { metrics } = this.options
    if (!metrics) {
      return this.problem(
        'NOT_IMPLEMENTED',
        'this server has no metrics: pass `metrics` to createApi',
        '/metrics',
      )
    }
    try {
      const { contentType, body } = await metrics.render()
      return { status: 200, headers: { 'content-type': contentType, 'cache-control': 'no-store' }, body }
    } catch (err) {
      this.logger.error({ err }, 'metrics failed')
      return this.problem('INTERNAL', 'internal error', '/metrics')
    }
  }

  /** A problem response for errors an adapter meets before the core (a body its framework refused). */
  problem(
    code: ProblemCode,
    detail: string,
    path: string,
    headers: Record<string, string> = {},
  ): ApiResponse {
    const requestId = randomUUID()
    return {
      status: PROBLEM_STATUS[code],
      headers: { 'content-type': 'application/problem+json', 'x-request-id': requestId, ...headers },
      body: JSON.stringify(new HttpProblem(code, detail).toBody(path, requestId)),
    }
  }

  /**
   * What a tenant is granted, defaults filled in; cached like verified keys (`keyCacheMs`), and
   * dropped at once when the operator changes it through this API.
   */
  private async grantFor(services: Services, tenantId: string): Promise<TenantGrant> {
    const now = Date.now()
    const cached = this.grants.get(tenantId)
    if (cached && cached.until > now) return cached.grant
    const grant = grantOf(await services.tenants.get(tenantId), this.options)
    if (this.options.keyCacheMs > 0) {
      if (this.grants.size >= 10_000) this.grants.clear()
      this.grants.set(tenantId, { grant, until: now + this.options.keyCacheMs })
    }
    return grant
  }

  /** Removes a tenant's settings from the cache. */
  forgetTenant(tenantId: string): void {
    this.grants.delete(tenantId)
  }

  /** Removes a key from the verified-key cache. */
  forgetKey(id: string): void {
    for (const [secret, entry] of this.verified) if (entry.key.id === id) this.verified.delete(secret)
  }

  private open(): Promise<Services> {
    if (this.closed) return Promise.reject(new TaskloomError('CLOSED', 'the API is closed'))
    this.services ??= this.openServices()
    // A failed open (say PostgreSQL down at start) is retried by the next request.
    this.services.catch(() => {
      this.services = undefined
    })
    return this.services
  }

  /** Starts the scheduler that fires the schedules the API makes (see `ApiOptions.scheduler`). */
  private async startScheduler(hasStore: boolean): Promise<void> {
    if (this.options.scheduler === undefined && hasStore && this.options.schedules === undefined) {
      this.scheduler ??= createScheduler({ queue: this.options.queue, logger: this.logger })
    }
    if (!this.scheduler) return
    if (!hasStore) {
      throw new TaskloomError(
        'INVALID_OPTIONS',
        'createApi: `scheduler` needs a queue with a store (schedules live in PostgreSQL); pass `postgres` to createQueue or set `scheduler: false`',
      )
    }
    await this.scheduler.start()
    if (this.closed) await this.scheduler.close()
  }

  private async openServices(): Promise<Services> {
    const { queue } = this.options
    await queue.ready()
    const inner = queue[internals]
    let db: Kysely<Database>
    let schema: string
    if (this.options.postgres !== undefined) {
      schema = checkSchemaName(this.options.postgresSchema ?? DEFAULT_SCHEMA)
      if (!this.ownDb) {
        const own = new Kysely<Database>({
          dialect: chooseDialect(this.options.postgres, { max: 4 }).dialect,
        })
        try {
          if (this.options.migrate) await migrate(own, { schema })
          else await assertSchemaCurrent(own, { schema })
        } catch (err) {
          await own.destroy()
          throw err
        }
        this.ownDb = own
      }
      db = this.ownDb
    } else {
      const store = inner.store()
      if (!store) {
        throw new TaskloomError(
          'INVALID_OPTIONS',
          'the API keeps API keys and the audit log in PostgreSQL: give the queue a store, or pass `postgres` to createApi',
        )
      }
      db = store.db
      schema = store.schema
    }
    const tasks = new Map<string, TaskDefinition<any, any>>()
    for (const t of this.options.tasks ?? []) tasks.set(t.name, t)
    // Limits count per queue: the API processes of one queue share them, another queue's API on
    // the same Redis (its own deployment, perhaps with the same tenant names) has its own.
    const limits: Limits = inner.redis
      ? new RedisLimits(inner.redis, `tl:api:${queue.name}:`)
      : new MemoryLimits()
    // The queue's own schedules, fleet and definition registry unless the caller passed others;
    // schedules and definitions live in the queue's store, so without one they stay off (501).
    const hasStore = inner.store() !== undefined
    const resolveTask =
      this.options.resolveTask ?? (hasStore ? (name: string) => queue.definitions.resolve(name) : undefined)
    const options: Settings = {
      ...this.options,
      schedules: this.options.schedules ?? (hasStore ? queue.schedules : undefined),
      workers: this.options.workers ?? (() => queue.workers()),
      resolveTask,
    }
    const services: Services = {
      queue,
      options,
      keys: new ApiKeys(db, schema),
      tenants: new Tenants(db, schema),
      audit: new AuditLog(db, schema, this.logger),
      limits,
      redis: inner.redis,
      db,
      startedAt: this.startedAt,
      forgetKey: (id) => this.forgetKey(id),
      forgetTenant: (id) => this.forgetTenant(id),
      findTask: async (name) => tasks.get(name) ?? (await resolveTask?.(name)) ?? null,
    }
    await this.startScheduler(hasStore)
    this.purgeTimer = setInterval(() => {
      this.purgeAudit().catch((err: unknown) => this.logger.warn({ err }, 'audit purge failed'))
    }, 3_600_000)
    this.purgeTimer.unref()
    return services
  }
}

const ANONYMOUS: ApiKeyInfo = {
  id: '',
  prefix: '',
  tenantId: '',
  name: null,
  scopes: [],
  rateLimit: null,
  monthlyQuota: null,
  isActive: false,
  createdAt: new Date(0),
  expiresAt: null,
  revokedAt: null,
  lastUsedAt: null,
}

function splitUrl(url: string): { path: string; query: URLSearchParams } {
  if (typeof url !== 'string' || !url.startsWith('/')) {
    throw new HttpProblem('INVALID_REQUEST', 'the request target must be a path')
  }
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  return { path, query: new URLSearchParams(q === -1 ? '' : url.slice(q + 1)) }
}

function decodeSegments(path: string): string[] {
  const parts = path.split('/').filter((s) => s.length > 0)
  try {
    return parts.map((s) => decodeURIComponent(s))
  } catch {
    throw new HttpProblem('INVALID_REQUEST', 'the path has an invalid percent-encoding')
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true })

function parseBody(schema: z.ZodType, contentType: string | string[] | undefined, body: Uint8Array): unknown {
  if (typeof contentType !== 'string' || !JSON_TYPE.test(contentType.trim())) {
    throw new HttpProblem(
      'UNSUPPORTED_MEDIA_TYPE',
      `send the body as application/json (got ${typeof contentType === 'string' ? JSON.stringify(contentType.slice(0, 100)) : 'no content type'})`,
      { headers: { 'accept-post': 'application/json' } },
    )
  }
  let text: string
  try {
    text = utf8.decode(body)
  } catch {
    throw new HttpProblem('INVALID_JSON', 'the body is not valid UTF-8')
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new HttpProblem('INVALID_JSON', `the body is not valid JSON: ${(err as Error).message}`)
  }
  // Text PostgreSQL cannot keep (NUL, lone surrogates) is refused here, wherever it sits in the body.
  const bad = textIssues(value, '')
  if (bad.length > 0) throw textProblem('INVALID_INPUT', bad, 'invalid request body')
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw invalid('INVALID_INPUT', parsed.error.issues, 'invalid request body')
  return parsed.data
}

function invalid(
  code: 'INVALID_INPUT' | 'INVALID_QUERY',
  issues: readonly z.core.$ZodIssue[],
  what: string,
): HttpProblem {
  const errors = issues.map((i) => {
    const path = i.path.map(String).join('.')
    if (i.code === 'unrecognized_keys') {
      return { path: path || i.keys.join(', '), message: `unknown field(s): ${i.keys.join(', ')}` }
    }
    return { path: path || '(body)', message: i.message }
  })
  return new HttpProblem(code, `${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, {
    errors,
  })
}

function textProblem(
  code: 'INVALID_INPUT' | 'INVALID_QUERY',
  issues: readonly { path: string; message: string }[],
  what: string,
): HttpProblem {
  const errors = issues.map((i) => ({ path: i.path === '(root)' ? '(body)' : i.path, message: i.message }))
  return new HttpProblem(code, `${what}: ${errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, {
    errors,
  })
}

/** The OpenAPI 3.1 document of the API (what GET /openapi.json answers, and docs/openapi.json holds). */
export function openApiDocument(version = VERSION): unknown {
  return buildOpenApi(ROUTES, version)
}

/**
 * Creates the framework-free API core; mount it with `taskloom/express`, `taskloom/fastify` or
 * `taskloom/node`.
 * @example
 * const api = createApi({ queue, tasks: [sendEmail] })
 * app.use('/api/v1', taskloomRouter(api))
 */
export function createApi(options: ApiOptions): Api {
  return new Api(options)
}
