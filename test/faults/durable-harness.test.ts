/**
 * The private PostgreSQL the durable fault tests run on: it starts, keeps committed rows over an
 * immediate restart and a stop/start, refuses connections while down, and freezes on pause.
 */
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type PrivatePostgres, startPrivatePostgres } from '../helpers/private-postgres.js'
import { canRunPrivateServers } from '../helpers/private-servers.js'

const canRun = await canRunPrivateServers()

describe.skipIf(!canRun)('a private PostgreSQL', () => {
  let server: PrivatePostgres
  beforeAll(async () => {
    server = await startPrivatePostgres()
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  })

  const query = async (sql: string, timeoutMs = 5000) => {
    const client = new pg.Client({ connectionString: server.url, connectionTimeoutMillis: timeoutMs })
    client.on('error', () => {})
    await client.connect()
    try {
      return (await client.query(sql)).rows
    } finally {
      await client.end()
    }
  }

  it('keeps committed rows over restarts, refuses while down and hangs while paused', async () => {
    expect(server.url).toMatch(/^postgres:\/\/postgres@127\.0\.0\.1:\d+\/postgres$/)
    await query('create table t (n int)')
    await query('insert into t values (1)')

    await server.restart()
    expect(await query('select n from t')).toEqual([{ n: 1 }])

    await server.down()
    await expect(query('select 1', 1000)).rejects.toThrow()
    await server.start()
    await query('insert into t values (2)')
    expect(await query('select count(*)::int as c from t')).toEqual([{ c: 2 }])

    server.pause()
    const started = Date.now()
    await expect(query('select 1', 500)).rejects.toThrow()
    expect(Date.now() - started).toBeLessThan(3000)
    server.resume()
    expect(await query('select count(*)::int as c from t')).toEqual([{ c: 2 }])
  }, 60_000)
})
