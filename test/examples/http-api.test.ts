/**
 * examples/express-api and examples/fastify-api run as a user runs them (the npm scripts' command),
 * on the embedded defaults; the test talks to them over HTTP with the keys they print, then stops
 * them with SIGTERM.
 */
import { once } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { startExample as start, stopExamples } from '../helpers/examples.js'

afterEach(stopExamples)

// biome-ignore lint/suspicious/noExplicitAny: response bodies are checked field by field
const json = async (r: Response | Promise<Response>): Promise<any> => (await r).json()
const post = (base: string, key: string, path: string, json: unknown) =>
  fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'x-api-key': key, 'content-type': 'application/json' },
    body: JSON.stringify(json),
  })
const get = (base: string, key: string, path: string) =>
  fetch(`${base}${path}`, { headers: { 'x-api-key': key } })

async function completed(base: string, key: string, id: string) {
  for (let i = 0; i < 200; i++) {
    const body = await json(get(base, key, `/tasks/${id}/result`))
    if (body.status === 'completed') return body
    await new Promise((r) => setTimeout(r, 25))
  }
  throw new Error(`task ${id} did not complete`)
}

describe('examples/express-api (multi-tenant)', () => {
  it('serves two tenants with separate keys, each seeing only its own tasks', async () => {
    const { child, base, keys } = await start('examples/express-api/server.ts')
    expect(Object.keys(keys)).toEqual(expect.arrayContaining(['acme', 'globex', 'acme-admin', 'operator']))
    const a = await json(
      post(base, keys.acme!, '/tasks', {
        name: 'send-email',
        payload: { to: 'a@acme.co', subject: 'hi' },
      }),
    )
    const g = await json(
      post(base, keys.globex!, '/tasks', {
        name: 'resize-image',
        payload: { url: 'https://globex.co/x.png', width: 64 },
      }),
    )
    expect((await completed(base, keys.acme!, a.task_id)).result).toEqual({
      delivered: true,
      to: 'a@acme.co',
    })
    expect((await completed(base, keys.globex!, g.task_id)).result).toEqual({
      url: 'https://globex.co/x.png?w=64',
    })
    expect((await get(base, keys.acme!, `/tasks/${g.task_id}`)).status).toBe(404)
    expect((await get(base, keys.globex!, `/tasks/${a.task_id}`)).status).toBe(404)
    const acmeList = await json(get(base, keys.acme!, '/tasks'))
    expect(acmeList.tasks.map((t: { task_id: string }) => t.task_id)).toEqual([a.task_id])
    expect((await get(base, keys['acme-admin']!, '/admin/keys')).status).toBe(200)
    // The fleet and the metrics show every tenant: the operator's, not a tenant admin's.
    expect((await get(base, keys['acme-admin']!, '/metrics')).status).toBe(403)
    expect((await get(base, keys['acme-admin']!, '/workers')).status).toBe(403)
    const workers = await json(get(base, keys.operator!, '/workers'))
    expect(workers.workers).toHaveLength(1)
    expect((await json(get(base, keys.globex!, '/quota'))).rate_limit).toBe(120)
    const scrape = await get(base, keys.operator!, '/metrics')
    expect(scrape.status).toBe(200)
    const text = await scrape.text()
    expect(text).toMatch(
      /^tasks_submitted_total\{queue="[^"]+",tenant_id="acme",task_type="send-email",priority="normal"\} 1$/m,
    )
    expect(text).toMatch(
      /^api_request_duration_seconds_count\{endpoint="\/tasks",method="POST",status="201"\} 2$/m,
    )
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
  }, 90_000)
})

describe('examples/fastify-api', () => {
  it('accepts, runs and reports a task through the Fastify plugin', async () => {
    const { child, base, keys } = await start('examples/fastify-api/server.ts')
    const bad = await post(base, keys['team-a']!, '/tasks', { name: 'send-email', payload: { to: 'x' } })
    expect(bad.status).toBe(400)
    expect(bad.headers.get('content-type')).toBe('application/problem+json')
    const t = await json(
      post(base, keys['team-a']!, '/tasks', {
        name: 'send-email',
        payload: { to: 't@a.co', subject: 's' },
      }),
    )
    expect((await completed(base, keys['team-a']!, t.task_id)).result).toEqual({
      delivered: true,
      to: 't@a.co',
    })
    expect((await get(base, keys['team-b']!, `/tasks/${t.task_id}`)).status).toBe(404)
    // A schedule made over REST fires: the API runs a scheduler with no code of the host.
    const made = await post(base, keys['team-a']!, '/schedules', {
      id: 'tick',
      name: 'send-email',
      cron: '* * * * * *',
      payload: { to: 'tick@a.co', subject: 'tick' },
    })
    expect(made.status).toBe(201)
    let fired: { idempotency_key: string; status: string }[] = []
    for (let i = 0; i < 400 && fired.length === 0; i++) {
      const list = await json(get(base, keys['team-a']!, '/tasks?name=send-email'))
      fired = list.tasks.filter((x: { idempotency_key: string | null }) =>
        x.idempotency_key?.startsWith('schedule:team-a:tick:'),
      )
      if (fired.length === 0) await new Promise((r) => setTimeout(r, 25))
    }
    expect(fired.length).toBeGreaterThan(0)
    child.kill('SIGTERM')
    const [code] = await once(child, 'exit')
    expect(code).toBe(0)
  }, 90_000)
})
