/** examples/cron-job runs as a user runs it: `npm run example:cron`, on the embedded defaults. */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)

describe('examples/cron-job', () => {
  it('fires its schedule every two seconds, one run per tick, and exits 0', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'example:cron'], {
      timeout: 90_000,
      env: { ...process.env, RUNS: '3' },
    })
    const ticks = [...stdout.matchAll(/^run (\d): cleanup older than 30 days, tick (\S+)$/gm)].map((m) =>
      Date.parse(m[2]!),
    )
    expect(ticks).toHaveLength(3)
    expect(ticks[1]! - ticks[0]!).toBe(2000)
    expect(ticks[2]! - ticks[1]!).toBe(2000)
    expect(stdout).toMatch(/^schedule ran 3 times; last run (\S+)$/m)
    expect(stdout).toContain(`last run ${new Date(ticks[2]!).toISOString()}`)
  }, 100_000)
})
