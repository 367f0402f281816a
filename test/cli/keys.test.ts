import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { createApi } from '../../src/http/index.js'
import { createQueue, migrate } from '../../src/index.js'
import { silent } from '../helpers/backends.js'
import { DATABASE_URL, hasPostgres, uniqueName } from '../helpers/services.js'

const run = promisify(execFile)
const cli = ['--import', 'tsx', '--import', './scripts/register-lua.mjs', 'src/cli.ts']
const up = await hasPostgres()

async function taskloom(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...cli, ...args], { timeout: 60_000 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe.skipIf(!up)('npx taskloom keys', () => {
  const schema = uniqueName('keys').replaceAll('-', '_')
  afterAll(async () => {
    const client = new pg.Client(DATABASE_URL)
    await client.connect()
    await client.query(`drop schema if exists "${schema}" cascade`)
    await client.end()
  })

  it('creates a key shown once, lists it without its secret, and revokes it', async () => {
    await migrate(DATABASE_URL, schema)
    const db = ['--postgres', DATABASE_URL, '--schema', schema]
    const created = await taskloom(
      'keys',
      'create',
      '--tenant',
      'acme',
      '--scopes',
      'task:create,task:read',
      '--rate-limit',
      '120',
      ...db,
    )
    expect(created.code, created.stderr).toBe(0)
    const secret = created.stdout.match(/^tlk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/m)?.[0]
    expect(secret).toBeDefined()
    const prefix = secret!.slice(0, 16)

    // The key works against an API on the same database.
    const queue = createQueue({
      name: uniqueName('keys'),
      postgres: DATABASE_URL,
      postgresSchema: schema,
      logger: silent,
    })
    const api = createApi({ queue, keyCacheMs: 0, logger: silent })
    const quota = await api.handle({ method: 'GET', url: '/quota', headers: { 'x-api-key': secret } })
    expect(quota.status).toBe(200)
    expect(JSON.parse(quota.body)).toMatchObject({ tenant_id: 'acme', key: { rate_limit: 120 } })

    const list = await taskloom('keys', 'list', '--tenant', 'acme', ...db)
    expect(list.code).toBe(0)
    expect(list.stdout).toContain(prefix)
    expect(list.stdout).toMatch(/task:create,task:read\tactive/)
    expect(list.stdout).not.toContain(secret!.slice(17))

    const revoked = await taskloom('keys', 'revoke', prefix, ...db)
    expect(revoked.code, revoked.stderr).toBe(0)
    expect(revoked.stdout).toContain(`prefix ${prefix}`)
    expect((await taskloom('keys', 'list', ...db)).stdout).toMatch(/\trevoked\t/)
    const refused = await api.handle({ method: 'GET', url: '/quota', headers: { 'x-api-key': secret } })
    expect(refused.status).toBe(401)
    await api.close()
    await queue.close()
    expect((await taskloom('keys', 'revoke', 'tlk_000000000000', ...db)).code).toBe(1)
  }, 120_000)

  it('explains bad arguments', async () => {
    const db = ['--postgres', DATABASE_URL, '--schema', schema]
    const scope = await taskloom('keys', 'create', '--tenant', 'acme', '--scopes', 'task:create,root', ...db)
    expect(scope.code).toBe(1)
    expect(scope.stderr).toContain('unknown scope "root"')
    const tenant = await taskloom('keys', 'create', '--scopes', 'task:read', ...db)
    expect(tenant.code).toBe(2)
    expect(tenant.stderr).toContain('needs --tenant')
    const action = await taskloom('keys', 'rotate', ...db)
    expect(action.code).toBe(2)
  }, 120_000)

  it('refuses a key that would be dead on arrival, and writes nothing', async () => {
    const db = ['--postgres', DATABASE_URL, '--schema', schema]
    const tenant = uniqueName('doa')
    const past = new Date(Date.now() - 60_000).toISOString()
    const doa = await taskloom(
      'keys',
      'create',
      '--tenant',
      tenant,
      '--scopes',
      'task:read',
      '--expires-at',
      past,
      ...db,
    )
    expect(doa.code).toBe(2)
    expect(doa.stderr).toContain('is not in the future: the key would be dead on arrival')
    expect(doa.stdout).not.toMatch(/tlk_/)
    expect(
      (await taskloom('keys', 'list', '--tenant', tenant, ...db)).stdout.trim().split('\n'),
    ).toHaveLength(1)
  }, 120_000)

  it('creates operator keys and sets what a tenant is granted', async () => {
    const db = ['--postgres', DATABASE_URL, '--schema', schema]
    const tenant = uniqueName('granted')
    const op = await taskloom('keys', 'create', '--operator', '--name', 'ops', ...db)
    expect(op.code, op.stderr).toBe(0)
    expect(op.stdout).toMatch(/^created operator key /)
    const secret = op.stdout.match(/^tlk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/m)![0]

    const set = await taskloom(
      'tenants',
      'set',
      tenant,
      '--rate-limit',
      '50',
      '--monthly-quota',
      '900',
      '--scopes',
      'task:create,task:read',
      ...db,
    )
    expect(set.code, set.stderr).toBe(0)
    expect(set.stdout).toBe(`${tenant}\trate limit 50/min\tmonthly quota 900\tscopes task:create,task:read\n`)
    // Keys beyond the grant are refused; within it they are made.
    const admin = await taskloom('keys', 'create', '--tenant', tenant, '--scopes', 'admin', ...db)
    expect(admin.code).toBe(1)
    expect(admin.stderr).toContain(`tenant ${tenant} is not granted admin`)
    const over = await taskloom(
      'keys',
      'create',
      '--tenant',
      tenant,
      '--scopes',
      'task:read',
      '--rate-limit',
      '51',
      ...db,
    )
    expect(over.code).toBe(1)
    expect(over.stderr).toContain('rate_limit 51 is more than tenant')
    expect((await taskloom('keys', 'create', '--tenant', tenant, '--scopes', 'task:read', ...db)).code).toBe(
      0,
    )

    const reset = await taskloom('tenants', 'set', tenant, '--monthly-quota', 'default', ...db)
    expect(reset.stdout).toBe(
      `${tenant}\trate limit 50/min\tmonthly quota default\tscopes task:create,task:read\n`,
    )
    expect((await taskloom('tenants', 'show', tenant, ...db)).stdout).toBe(reset.stdout)
    expect((await taskloom('tenants', 'list', ...db)).stdout).toContain(reset.stdout)
    const junk = await taskloom('tenants', 'show', 'not a tenant', ...db)
    expect(junk.code).toBe(1)
    expect(junk.stderr).toContain('invalid tenant id "not a tenant"')

    // The operator key reads the same settings over the API.
    const queue = createQueue({
      name: uniqueName('keys'),
      postgres: DATABASE_URL,
      postgresSchema: schema,
      logger: silent,
    })
    const api = createApi({ queue, keyCacheMs: 0, logger: silent })
    try {
      const shown = await api.handle({
        method: 'GET',
        url: `/operator/tenants/${tenant}`,
        headers: { 'x-api-key': secret },
      })
      expect(shown.status).toBe(200)
      expect(JSON.parse(shown.body)).toMatchObject({ tenant_id: tenant, rate_limit: 50, monthly_quota: null })
      expect((await taskloom('keys', 'list', ...db)).stdout).toMatch(/\t\(operator\)\toperator\tactive\t/)
    } finally {
      await api.close()
      await queue.close()
    }
  }, 240_000)
})
