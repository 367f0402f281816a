/**
 * Service discovery for tests: REDIS_URL and DATABASE_URL with the machine's defaults.
 * When a service is unreachable, suites that need it skip with a loud message, except under CI,
 * where an unreachable service is a failure.
 */
import net from 'node:net'
import pg from 'pg'

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname || '127.0.0.1', port: Number(u.port || defaultPort) })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(1000, () => done(false))
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
  })
}

async function available(what: string, url: string, port: number): Promise<boolean> {
  if (await reachable(url, port)) return true
  const message = `${what} is unreachable at ${url}`
  if (process.env.CI) throw new Error(`${message}; CI is set, so this is a failure, not a skip`)
  console.warn(
    `\n!!!!!!!!\n!!! SKIPPING: ${message}. Start it or set the URL to run these tests.\n!!!!!!!!\n`,
  )
  return false
}

/** True when Redis answers; use with `describe.skipIf(!(await hasRedis()))`. */
export const hasRedis = () => available('Redis', REDIS_URL, 6379)
/** True when PostgreSQL answers. */
export const hasPostgres = () => available('PostgreSQL', DATABASE_URL, 5432)

let counter = 0
/** A queue name no other test (or earlier run) uses. */
export function uniqueName(prefix = 'q'): string {
  counter += 1
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`
}

/** Drops a schema a test made on the shared PostgreSQL (its tables with it). */
export async function dropSchema(schema: string): Promise<void> {
  const client = new pg.Client(DATABASE_URL)
  await client.connect()
  try {
    await client.query(`drop schema if exists "${schema}" cascade`)
  } finally {
    await client.end()
  }
}
