/**
 * A private Redis and a private PostgreSQL for one fault suite: started before it, stopped after.
 * When the machine cannot run them (no `initdb`/`pg_ctl`, or root without a `postgres` user), the
 * suite is skipped with a loud message, except under CI, where that is a failure.
 */
import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll } from 'vitest'
import { canStartPrivatePostgres, type PrivatePostgres, startPrivatePostgres } from './private-postgres.js'
import { type PrivateRedis, type PrivateRedisOptions, startPrivateRedis } from './private-redis.js'
import { hasPostgres, hasRedis } from './services.js'

function hasRedisServer(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** True when the suite can run; use with `describe.skipIf(!(await canRunPrivateServers()))`. */
export async function canRunPrivateServers(): Promise<boolean> {
  if (!(await hasRedis()) || !(await hasPostgres())) return false // they already said why
  const missing = [
    hasRedisServer() ? null : 'redis-server',
    canStartPrivatePostgres() ? null : 'initdb/pg_ctl (and, as root, a postgres user and runuser)',
  ].filter((m) => m !== null)
  if (missing.length === 0) return true
  const message = `fault tests need ${missing.join(' and ')} to start private servers`
  if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure, not a skip`)
  console.warn(`\n!!!!!!!!\n!!! SKIPPING: ${message}.\n!!!!!!!!\n`)
  return false
}

export interface PrivateServers {
  redis(): PrivateRedis
  postgres(): PrivatePostgres
}

/** Call inside a `describe`: starts both servers before its tests and stops them after. */
export function usePrivateServers(options: { redis?: PrivateRedisOptions } = {}): PrivateServers {
  let redis: PrivateRedis | undefined
  let postgres: PrivatePostgres | undefined
  beforeAll(async () => {
    ;[redis, postgres] = await Promise.all([startPrivateRedis(options.redis), startPrivatePostgres()])
  }, 60_000)
  afterAll(async () => {
    await Promise.allSettled([redis?.stop(), postgres?.stop()])
  })
  return {
    redis: () => redis ?? fail('private Redis'),
    postgres: () => postgres ?? fail('private PostgreSQL'),
  }
}

function fail(what: string): never {
  throw new Error(`the ${what} did not start (see the beforeAll error)`)
}
