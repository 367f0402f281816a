/** Service endpoints: liveness, readiness (Redis and PostgreSQL answer), metrics (operator only). */

import { type Kysely, sql } from 'kysely'
import type { RedisClient } from '../broker/redis/connection.js'
import type { Database } from '../store/postgres/tables.js'
import { orTimeout, TIMED_OUT } from '../util/or-timeout.js'
import { HttpProblem } from './problem.js'
import type { Route, RouteResult } from './route.js'
import { Health, Readiness } from './schemas.js'

/** Rejects after `ms`, so a hung backend makes /ready answer not_ready instead of hanging. */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  const out = await orTimeout(work, ms)
  if (out === TIMED_OUT) throw new Error(`no answer in ${ms} ms`)
  return out
}

/**
 * `/ready`: Redis and PostgreSQL each answer within 2 s. `openError` is why the API's services
 * could not open (the queue still opening, or failed): PostgreSQL counts as failing then, with that
 * error, and Redis is checked through the queue's own connection.
 */
export async function readiness(
  redis: RedisClient | undefined,
  db: Kysely<Database> | undefined,
  openError: unknown,
): Promise<RouteResult> {
  const [r, p] = await Promise.allSettled([
    redis ? within(2000, redis.ping()) : Promise.resolve('not_configured' as const),
    db ? within(2000, sql`select 1`.execute(db)) : Promise.reject(openError),
  ])
  const checks = {
    redis: r.status === 'rejected' ? 'error' : r.value === 'not_configured' ? 'not_configured' : 'ok',
    postgres: p.status === 'rejected' ? 'error' : 'ok',
  } as const
  const errors: { redis?: string; postgres?: string } = {}
  if (r.status === 'rejected') errors.redis = messageOf(r.reason)
  if (p.status === 'rejected') errors.postgres = messageOf(p.reason)
  const ready = checks.redis !== 'error' && checks.postgres === 'ok'
  const body = { status: ready ? 'ready' : 'not_ready', checks, ...(ready ? {} : { errors }) }
  return { status: ready ? 200 : 503, body }
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err))

export const systemRoutes: Route[] = [
  {
    method: 'GET',
    path: '/health',
    scope: 'public',
    tag: 'system',
    summary: 'Liveness: the process answers (503 when its queue failed to open for good)',
    responses: { 200: Health, 503: Health },
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
      return readiness(redis, db, undefined)
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
