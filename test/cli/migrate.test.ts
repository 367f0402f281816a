import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import pg from 'pg'
import { afterAll, describe, expect, it } from 'vitest'
import { migrate } from '../../src/index.js'
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

describe('npx taskloom', () => {
  it('explains its usage and refuses unknown commands', async () => {
    expect((await taskloom('help')).stdout).toContain('taskloom migrate')
    const unknown = await taskloom('frobnicate')
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain('unknown command "frobnicate"')
  })

  describe.skipIf(!up)('migrate', () => {
    const schemas: string[] = []
    afterAll(async () => {
      const client = new pg.Client(DATABASE_URL)
      await client.connect()
      for (const s of schemas) await client.query(`drop schema if exists "${s}" cascade`)
      await client.end()
    })

    it('applies the migrations once, then reports the schema up to date', async () => {
      const schema = uniqueName('cli').replaceAll('-', '_')
      schemas.push(schema)
      const first = await taskloom('migrate', '--postgres', DATABASE_URL, '--schema', schema)
      expect(first.code).toBe(0)
      expect(first.stdout).toMatch(new RegExp(`schema "${schema}": applied 1.*now at version \\d+`))
      const again = await taskloom('migrate', '--postgres', DATABASE_URL, '--schema', schema)
      expect(again.stdout).toMatch(/is up to date at version \d+/)
    }, 120_000)

    it('is the same as migrate() in code', async () => {
      const schema = uniqueName('api').replaceAll('-', '_')
      schemas.push(schema)
      const result = await migrate(DATABASE_URL, schema)
      expect(result.applied.length).toBeGreaterThan(0)
      expect((await migrate(DATABASE_URL, schema)).applied).toEqual([])
    })

    it('says what is wrong with a bad schema name or a missing URL', async () => {
      const bad = await taskloom('migrate', '--postgres', DATABASE_URL, '--schema', 'no; drop')
      expect(bad.code).toBe(1)
      expect(bad.stderr).toMatch(/invalid PostgreSQL schema name/)
      const { code, stderr } = await run(process.execPath, [...cli, 'migrate'], {
        env: { ...process.env, DATABASE_URL: '' },
      }).then(
        () => ({ code: 0, stderr: '' }),
        (e: { code: number; stderr: string }) => e,
      )
      expect(code).toBe(2)
      expect(stderr).toContain('pass --postgres')
    }, 60_000)
  })
})
