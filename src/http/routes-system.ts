/** Service endpoints: liveness, readiness (Redis and PostgreSQL answer), metrics (operator only). */
import { sql } from 'kysely'
import { orTimeout, TIMED_OUT } from '../util/or-timeout.js'
import { HttpProblem } from './problem.js'
import type { Route } from './route.js'
import { Health, Readiness } from './schemas.js'

/** Rejects after `ms`, so a hung backend makes /ready answer not_ready instead of hanging. */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  const out = await orTimeout(work, ms)
  if (out === TIMED_OUT) throw new Error(`no answer in ${ms} ms`)
  return out
}

export const systemRoutes: Route[] = [
  {
    method: 'GET',
    path: '/health',
    scope: 'public',
    tag: 'system',
    summary: 'Liveness: the process answers',
    responses: { 200: Health },
    async handle() {
      throw new Error('answered by the core')
    },
  },
  {
    method: 'GET',
    path: '/openapi.json',
    scope: 'public',
    tag: 'system',
    summary: 'This OpenAPI 3.1 document, generated from the schemas that validate requests',
    responses: { 200: null },
    async handle() {
      throw new Error('answered by the core')
    },
  },
  {
    method: 'GET',
    path: '/ready',
    scope: 'public',
    tag: 'system',
    summary: 'Readiness: Redis and PostgreSQL answer (503 when one does not)',
    responses: { 200: Readiness, 503: Readiness },
    async handle(ctx) {
      const { redis, db } = ctx.services
      const [r, p] = await Promise.allSettled([
        redis ? within(2000, redis.ping()) : Promise.resolve('not_configured' as const),
        within(2000, sql`select 1`.execute(db)),
      ])
      const checks = {
        redis: r.status === 'rejected' ? 'error' : r.value === 'not_configured' ? 'not_configured' : 'ok',
        postgres: p.status === 'rejected' ? 'error' : 'ok',
      } as const
      const ready = checks.redis !== 'error' && checks.postgres === 'ok'
      return { status: ready ? 200 : 503, body: { status: ready ? 'ready' : 'not_ready', checks } }
    },
  },
  {
    method: 'GET',
    path: '/metrics',
    scope: 'operator',
    tag: 'system',
    summary:
      'Prometheus metrics (text exposition format); operator keys only, since they show every tenant (or mount metricsHandler on a private listener)',
    responses: { 200: null },
    problems: [501],
    async handle(ctx) {
      const metrics = ctx.services.options.metrics
      if (!metrics) {
        throw new HttpProblem('NOT_IMPLEMENTED', 'this server has no metrics: pass `metrics` to createApi')
      }
      return { status: 200, raw: await metrics.render() }
    },
  },
]
