/**
 * The examples run as a user runs them: `npm run demo` on the in-process broker, and the standalone
 * worker and producer as separate processes on Redis.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { createQueue } from '../../src/index.js'
import { hasRedis, REDIS_URL, uniqueName } from '../helpers/services.js'

const run = promisify(execFile)
/** How the package.json scripts run TypeScript from source (`.lua` files import as text). */
const fromSource = ['--import', 'tsx', '--import', './scripts/register-lua.mjs']

describe('examples/demo.ts', () => {
  it('runs on the in-process broker and exits 0, showing every final status', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'demo'], { timeout: 90_000 })
    // Submitted before the worker started, with concurrency 1: strict priority, FIFO within a level.
    const firstRuns = [...stdout.matchAll(/^ran\s+(\S+)\s+attempt 1:/gm)].map((m) => m[1]).slice(0, 5)
    expect(firstRuns).toEqual(['password-reset', 'thumbnail', 'welcome', 'broken-image', 'newsletter'])
    expect(stdout).toMatch(/^submitted\s+welcome-again\s+\S+\s+\(deduplicated: the same task as welcome\)/m)
    expect(stdout).toMatch(/^failed\s+thumbnail\s+attempt 1: .*\(will retry\)/m)
    expect(stdout).toMatch(/^final\s+welcome\s+completed\s+attempts=1/m)
    expect(stdout).toMatch(/^final\s+password-reset\s+completed\s+attempts=1/m)
    expect(stdout).toMatch(/^final\s+newsletter\s+completed\s+attempts=1/m)
    expect(stdout).toMatch(/^final\s+thumbnail\s+completed\s+attempts=2/m)
    expect(stdout).toMatch(/^final\s+reminder\s+completed\s+attempts=1/m)
    expect(stdout).toMatch(/^final\s+broken-image\s+failed\s+attempts=1\s+404/m)
    expect(stdout).toMatch(/^final\s+digest\s+cancelled\s+attempts=0$/m)
    expect(stdout).not.toMatch(/^final\s+welcome-again/m)
    expect(stdout).toMatch(/^dead-letter queue: 1 task\(s\)$/m)
  }, 100_000)
})

const redisUp = await hasRedis()

describe.skipIf(!redisUp)('examples/standalone-worker', () => {
  const name = uniqueName('example')
  const env = { ...process.env, REDIS_URL, QUEUE_NAME: name, COUNT: '8' }
  let worker: ChildProcess | undefined

  afterAll(async () => {
    if (worker && worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL')
    const redis = new Redis(REDIS_URL)
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `tl:{${name}}:*`, 'COUNT', 1000)
      if (keys.length > 0) await redis.del(...keys)
      cursor = next
    } while (cursor !== '0')
    await redis.quit()
  })

  it("completes the producer's tasks, then shuts the worker down on SIGTERM with exit code 0", async () => {
    const child = spawn(process.execPath, [...fromSource, 'examples/standalone-worker/worker.ts'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    worker = child
    let output = ''
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      output += chunk
    })
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>

    await waitFor(() => output.includes(`ready on queue ${name}`), 20_000, 'the worker to start')

    const { stdout } = await run(
      process.execPath,
      [...fromSource, 'examples/standalone-worker/producer.ts'],
      {
        env,
        timeout: 30_000,
      },
    )
    const ids = [...stdout.matchAll(/^submitted (\S+)/gm)].map((m) => m[1]!)
    expect(ids).toHaveLength(8)
    expect(stdout).toMatch(/^8 of 8 completed$/m)

    // Checked independently of the producer's own report.
    const queue = createQueue({ name, redis: REDIS_URL })
    try {
      for (const id of ids) {
        const task = await queue.get(id)
        expect(task).toMatchObject({ status: 'completed', name: 'generate-report', attempts: 1 })
        expect(output).toContain(`completed ${id}`)
      }
    } finally {
      await queue.close()
    }

    expect(child.kill('SIGTERM')).toBe(true)
    const [code, signal] = await exited
    expect({ code, signal }).toEqual({ code: 0, signal: null })
    expect(output).toMatch(/^SIGTERM: stopping/m)
    expect(output).toMatch(/^worker stopped$/m)
  }, 60_000)
})

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
