/**
 * The smaller parts of the REST surface, through real servers: HEAD on GET routes, a schedule by
 * id with pause and resume, the audit log endpoint, and a 413 that reaches the client whole.
 */
import { request } from 'node:http'
import { connect } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { ALL_SCOPES, call, readAnswer, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

/** Sends `size` bytes with node:http (streamed in 64 KiB chunks, chunked or with a length). */
function sendLarge(
  base: string,
  key: string,
  size: number,
  chunked: boolean,
): Promise<{ status: number; body: string; type: string }> {
  const url = new URL(`${base}/tasks`)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: 'POST',
        path: url.pathname,
        headers: {
          'x-api-key': key,
          'content-type': 'application/json',
          ...(chunked ? {} : { 'content-length': String(size) }),
        },
      },
      (res) => readAnswer(res).then(resolve, reject),
    )
    // A write error after the answer arrived is the server closing as it said it would.
    req.on('error', reject)
    const chunk = Buffer.alloc(65_536, 0x20)
    let sent = 0
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent)
        sent += n
        if (!req.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return req.once('drain', pump)
      }
      req.end()
    }
    pump()
  })
}

/**
 * A client that writes its whole request before it reads a byte of the answer (as many blocking
 * clients do): it gets the 413 only if the server keeps reading the body after answering, and
 * closes only once the client is done, instead of resetting a connection with unread data.
 */
function sendThenRead(base: string, key: string, size: number): Promise<string> {
  const url = new URL(`${base}/tasks`)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname)
    const chunks: Buffer[] = []
    socket.pause()
    socket.on('error', reject)
    socket.on('data', (c: Buffer) => chunks.push(c))
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')))
    const head =
      `POST ${url.pathname} HTTP/1.1\r\nhost: ${url.host}\r\nx-api-key: ${key}\r\n` +
      `content-type: application/json\r\ncontent-length: ${size}\r\nconnection: close\r\n\r\n`
    socket.write(head)
    const chunk = Buffer.alloc(65_536, 0x20)
    let sent = 0
    const pump = () => {
      while (sent < size) {
        const n = Math.min(chunk.length, size - sent)
        sent += n
        if (!socket.write(n === chunk.length ? chunk : chunk.subarray(0, n)))
          return socket.once('drain', pump)
      }
      // Everything is written: only now start reading.
      socket.resume()
    }
    pump()
  })
}

describe.skipIf(!up)('the smaller parts of the REST surface', () => {
  let stack: Stack
  let key: string
  let admin: string
  let other: string
  beforeAll(async () => {
    stack = await startStack({ worker: false })
    key = await stack.key('surface', [...ALL_SCOPES], { rateLimit: 100_000 })
    admin = await stack.key('surface', ['admin'], { rateLimit: 100_000 })
    other = await stack.key('surface-other', [...ALL_SCOPES, 'admin'], { rateLimit: 100_000 })
  }, 60_000)
  afterAll(() => stack?.close())

  describe.each(SERVERS)('through %s', (server) => {
    const url = () => stack.url[server]

    it('answers HEAD on GET routes like GET, without a body', async () => {
      for (const path of ['/health', '/ready', '/openapi.json']) {
        const head = await fetch(`${url()}${path}`, { method: 'HEAD' })
        expect(head.status, path).toBe(200)
        expect(head.headers.get('content-type'), path).toMatch(/^application\/json/)
        expect(await head.text()).toBe('')
      }
      const created = await call(url(), 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { to: 'h@h.co', subject: 's' } },
      })
      const head = await fetch(`${url()}/tasks/${created.body.task_id}`, {
        method: 'HEAD',
        headers: { 'x-api-key': key },
      })
      expect(head.status).toBe(200)
      const get = await fetch(`${url()}/tasks/${created.body.task_id}`, { headers: { 'x-api-key': key } })
      expect(head.headers.get('ratelimit-limit')).toMatch(/^[1-9][0-9]*$/)
      expect(head.headers.get('ratelimit-limit')).toBe(get.headers.get('ratelimit-limit'))
      expect(await head.text()).toBe('')
      const missing = await fetch(`${url()}/tasks/nope`, { method: 'HEAD', headers: { 'x-api-key': key } })
      expect(missing.status).toBe(404)
      // HEAD where there is no GET: 405, and GET's Allow lists HEAD.
      const post = await fetch(`${url()}/tasks/x/cancel`, {
        method: 'HEAD',
        headers: { 'x-api-key': admin },
      })
      expect(post.status).toBe(405)
      const put = await call(url(), 'PUT', '/health')
      expect(put.headers.get('allow')).toBe('GET, HEAD')
    })

    it('reads a schedule by id, pauses and resumes it, and keeps other tenants out', async () => {
      const id = `sched-${server}`
      const made = await call(url(), 'POST', '/schedules', {
        key,
        json: { id, name: 'send-email', cron: '0 3 * * *', payload: { to: 's@s.co', subject: 's' } },
      })
      expect(made.status).toBe(201)
      const got = await call(url(), 'GET', `/schedules/${id}`, { key })
      expect(got.status).toBe(200)
      expect(got.body).toMatchObject({ schedule_id: id, cron: '0 3 * * *', paused: false })
      expect(got.body.next_run_at).not.toBeNull()
      const paused = await call(url(), 'POST', `/schedules/${id}/pause`, { key })
      expect(paused.status).toBe(200)
      expect(paused.body).toMatchObject({ schedule_id: id, paused: true, next_run_at: null })
      expect((await call(url(), 'POST', `/schedules/${id}/pause`, { key })).body.paused).toBe(true)
      expect((await stack.queue.schedules.get(`surface:${id}`))?.paused).toBe(true)
      const resumed = await call(url(), 'POST', `/schedules/${id}/resume`, { key })
      expect(resumed.status).toBe(200)
      expect(resumed.body.paused).toBe(false)
      expect(Date.parse(resumed.body.next_run_at)).toBeGreaterThan(Date.now())
      for (const [method, path] of [
        ['GET', `/schedules/${id}`],
        ['POST', `/schedules/${id}/pause`],
        ['POST', `/schedules/${id}/resume`],
      ] as const) {
        expect((await call(url(), method, path, { key: other })).status, `${method} ${path}`).toBe(404)
      }
      expect((await call(url(), 'GET', '/schedules/nope', { key })).status).toBe(404)
      expect((await call(url(), 'POST', '/schedules/nope/pause', { key })).status).toBe(404)
      const audit = await call(url(), 'GET', `/admin/audit?target_id=${id}`, { key: admin })
      expect(audit.body.entries.map((e: { action: string }) => e.action)).toEqual([
        'schedule.resume',
        'schedule.pause',
        'schedule.create',
      ])
    })

    it('answers a body over the limit with 413 that the client reads, streamed or declared', async () => {
      const limit = stack.api.options.bodyLimit
      for (const chunked of [false, true]) {
        for (const size of [limit + 1, 8 * limit, 80 * limit]) {
          const res = await sendLarge(url(), key, size, chunked)
          expect(res.status, `${size} bytes, chunked ${chunked}`).toBe(413)
          expect(res.type).toMatch(/^application\/problem\+json/)
          expect(JSON.parse(res.body)).toMatchObject({ status: 413, code: 'PAYLOAD_TOO_LARGE' })
        }
      }
      const viaFetch = await fetch(`${url()}/tasks`, {
        method: 'POST',
        headers: { 'x-api-key': key, 'content-type': 'application/json' },
        body: Buffer.alloc(80 * limit, 0x20),
      })
      expect(viaFetch.status).toBe(413)
      expect(((await viaFetch.json()) as { code: string }).code).toBe('PAYLOAD_TOO_LARGE')
      for (const size of [limit + 1, 16 * limit]) {
        const raw = await sendThenRead(url(), key, size)
        expect(raw.split('\r\n')[0], `${size} bytes sent before reading`).toBe(
          'HTTP/1.1 413 Payload Too Large',
        )
        expect(raw).toContain('"code":"PAYLOAD_TOO_LARGE"')
      }
      // The server is still there for the next request.
      expect((await call(url(), 'GET', '/health')).status).toBe(200)
    })
  })

  it('serves the tenant its audit log: filtered, paged, never another tenant', async () => {
    const base = stack.url.node
    const ids: string[] = []
    for (let i = 0; i < 5; i++) {
      const r = await call(base, 'POST', '/tasks', {
        key,
        json: { name: 'send-email', payload: { to: `a${i}@a.co`, subject: 's' } },
        headers: { 'x-request-id': `audit-page-${i}` },
      })
      ids.push(r.body.task_id)
    }
    await call(base, 'POST', '/tasks', {
      key: other,
      json: { name: 'send-email', payload: { to: 'o@o.co', subject: 's' } },
    })
    const seen: { id: string; action: string; target_id: string; tenant_id: string }[] = []
    let cursor: string | null = null
    do {
      const q: string = `/admin/audit?action=task.submit&limit=2${cursor ? `&cursor=${cursor}` : ''}`
      const page = await call(base, 'GET', q, { key: admin })
      expect(page.status).toBe(200)
      expect(page.body.entries.length).toBeLessThanOrEqual(2)
      seen.push(...page.body.entries)
      cursor = page.body.next_cursor
    } while (cursor)
    expect(seen.every((e) => e.tenant_id === 'surface' && e.action === 'task.submit')).toBe(true)
    const mine = seen.filter((e) => ids.includes(e.target_id))
    expect(mine.map((e) => e.target_id)).toEqual([...ids].reverse())
    expect(new Set(seen.map((e) => e.id)).size).toBe(seen.length)
    const one = await call(base, 'GET', '/admin/audit?request_id=audit-page-2', { key: admin })
    expect(one.body.entries).toEqual([
      expect.objectContaining({ action: 'task.submit', target_id: ids[2], request_id: 'audit-page-2' }),
    ])
    const future = await call(
      base,
      'GET',
      `/admin/audit?since=${new Date(Date.now() + 60_000).toISOString()}`,
      {
        key: admin,
      },
    )
    expect(future.body).toEqual({ entries: [], next_cursor: null })
    expect((await call(base, 'GET', '/admin/audit', { key })).status).toBe(403)
    const bad = await call(base, 'GET', '/admin/audit?action=nope&cursor=x', { key: admin })
    expect(bad.status).toBe(400)
    expect(bad.body.errors.map((e: { path: string }) => e.path).sort()).toEqual(['action', 'cursor'])
  })
})
