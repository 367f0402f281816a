/**
 * examples/dashboard runs as a user runs it, on the embedded defaults: it prints its URL and keys,
 * serves the page, holds tasks of every status, and stops on SIGTERM.
 */
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { signInOverHttp } from '../dashboard/sign-in.js'
import { startExample, stopExamples } from '../helpers/examples.js'

afterEach(stopExamples)

describe('examples/dashboard', () => {
  it('seeds tasks of every status and serves the dashboard at the URL it prints', async () => {
    const { child, base, keys } = await startExample('examples/dashboard/server.ts')
    expect(base).toMatch(/\/dashboard\/$/)
    expect(Object.keys(keys).sort()).toEqual(['acme-viewer', 'globex-admin', 'operator'])
    const page = await fetch(base)
    expect(page.status).toBe(200)
    expect(await page.text()).toMatch(/<script type="module" src="\/dashboard\/assets\/app\.[0-9a-f]+\.js">/)
    const { cookie } = await signInOverHttp(base, keys.operator!)
    const statuses = new Set<string>()
    for (let i = 0; i < 100 && statuses.size < 6; i++) {
      const list = (await (await fetch(`${base}_api/tasks?limit=200`, { headers: { cookie } })).json()) as {
        tasks: { status: string }[]
      }
      for (const t of list.tasks) statuses.add(t.status)
      await new Promise((r) => setTimeout(r, 100))
    }
    expect([...statuses].sort()).toEqual([
      'cancelled',
      'completed',
      'failed',
      'pending',
      'processing',
      'queued',
    ])
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
  }, 120_000)
})
