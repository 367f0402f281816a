/**
 * examples/etl-flow runs as a user runs it (`npm run example:etl`, embedded defaults, no servers)
 * and exits 0 after the whole flow completed, each step after the ones it depends on.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)

describe('examples/etl-flow', () => {
  it('runs extract, 8 transforms, load and report in order and prints the totals', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'example:etl'], {
      env: { ...process.env, REDIS_URL: '', DATABASE_URL: '' },
      timeout: 90_000,
    })
    expect(stdout).toMatch(/^submitted\s+flow \S+: 11 tasks \(1 extract, 8 transform, 1 load, 1 report\)$/m)
    const chunks = [...stdout.matchAll(/^progress\s+(transform-\d) 100%$/gm)].map((m) => m[1]).sort()
    expect(chunks).toEqual(Array.from({ length: 8 }, (_, i) => `transform-${i}`))
    expect(stdout).toMatch(/^node\s+extract\s+completed$/m)
    for (let i = 0; i < 8; i++)
      expect(stdout).toMatch(new RegExp(`^node\\s+transform-${i}\\s+completed\\s+after 1 task`, 'm'))
    expect(stdout).toMatch(/^node\s+load\s+completed\s+after 8 task\(s\)$/m)
    expect(stdout).toMatch(/^node\s+report\s+completed\s+after 1 task\(s\)$/m)
    expect(stdout).toMatch(/^log load\s+loaded 1846 rows from 8 chunks into orders_20261207$/m)

    // The totals, computed here from the example's made-up orders (2,000; every 13th dropped).
    let cents = 0
    for (let n = 0; n < 2000; n++) if (n % 13 !== 0) cents += 100 + ((n * 7919) % 9900)
    const revenue = (cents / 100).toFixed(2)
    expect(stdout).toContain(
      `report     completed: 1846 rows in orders_20261207, 154 dropped, revenue $${revenue}`,
    )
    expect(stdout).toMatch(/^flow\s+completed in \d+ ms$/m)
  }, 100_000)
})
