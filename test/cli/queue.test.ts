/**
 * `npx taskloom queue pause|resume|status`: the CLI stops and restarts claims fleet-wide, as a
 * queue handle of another process sees them, and in durable mode records the pause in PostgreSQL.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { createQueue, type Queue } from '../../src/index.js'
import { internals } from '../../src/queue/internal.js'
import { silent } from '../helpers/backends.js'
import {
  DATABASE_URL,
  dropSchema,
  hasPostgres,
  hasRedis,
  REDIS_URL,
  uniqueName,
} from '../helpers/services.js'

const run = promisify(execFile)
const cli = ['--import', 'tsx', '--import', './scripts/register-lua.mjs', 'src/cli.ts']
const up = (await hasRedis()) && (await hasPostgres())

async function taskloom(env: Record<string, string | undefined>, ...args: string[]) {
  try {
    const { stdout, stderr } = await run(process.execPath, [...cli, ...args], {
      timeout: 60_000,
      env: { ...process.env, ...env },
    })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

describe.skipIf(!up)('npx taskloom queue', () => {
  const queues: Queue[] = []
  const schemas: string[] = []
  afterAll(async () => {
    for (const q of queues) await q.close()
    for (const s of schemas) await dropSchema(s)
  })

  it('pauses and resumes a queue, a task name and a group of a Redis queue, and shows them', async () => {
    const name = uniqueName('cli-flow')
    const env = { REDIS_URL, DATABASE_URL: undefined }
    const queue = createQueue({ name, redis: REDIS_URL, logger: silent })
    queues.push(queue)
    const paused = await taskloom(env, 'queue', 'pause', name, '--group', 'acme')
    expect(paused.code).toBe(0)
    expect(paused.stdout).toContain(`paused group acme of queue ${name}`)
    expect(paused.stdout).toContain('paused groups: acme')
    await queue.pause()
    const status = await taskloom(env, 'queue', 'status', name)
    expect(status.stdout).toContain(`queue ${name}: PAUSED`)
    expect(status.stdout).toContain('paused groups: acme')
    expect((await taskloom(env, 'queue', 'resume', name, '--group', 'acme')).code).toBe(0)
    expect((await queue.counts({ flow: true })).flow!.paused).toEqual({ queue: true, tasks: [], groups: [] })
    const both = await taskloom(env, 'queue', 'pause', name, '--task', 'a', '--group', 'b')
    expect(both.code).toBe(1)
    expect(both.stderr).toContain('not both')
  }, 120_000)

  it('records a pause in PostgreSQL in durable mode', async () => {
    const name = uniqueName('cli-flow')
    const schema = uniqueName('cli_flow').replaceAll('-', '_')
    schemas.push(schema)
    const queue = createQueue({
      name,
      redis: REDIS_URL,
      postgres: DATABASE_URL,
      postgresSchema: schema,
      migrate: true,
      logger: silent,
    })
    queues.push(queue)
    await queue.ready()
    const env = { REDIS_URL, DATABASE_URL }
    expect((await taskloom(env, 'queue', 'pause', name, '--task', 'send', '--schema', schema)).code).toBe(0)
    const store = queue[internals].store()!
    expect(await store.flowPauses()).toEqual(['n:send'])
    expect((await taskloom(env, 'queue', 'resume', name, '--task', 'send', '--schema', schema)).code).toBe(0)
    expect(await store.flowPauses()).toEqual([])
  }, 120_000)
})
