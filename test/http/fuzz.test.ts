/**
 * 1,200 malformed requests (random JSON, wrong types, huge and truncated bodies, bad headers,
 * unicode, path traversal in ids, wrong methods) through a raw HTTP client to each real server:
 * every answer must be a 4xx problem document, and every server must still answer after.
 */
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { MapSchedules } from './fakes.js'
import { SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())
const PER_SERVER = 400

/** mulberry32: a seeded PRNG, so a failure can be replayed. */
function rng(seed: number) {
  let a = seed
  return () => {
    a |= 0
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

interface Raw {
  method: string
  path: string
  headers: Record<string, string>
  body?: Buffer
}

function generator(seed: number, key: string) {
  const r = rng(seed)
  const int = (n: number) => Math.floor(r() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  const junkStrings = [
    '',
    ' ',
    '💥',
    'ä'.repeat(50),
    '\u202e',
    'null',
    '{}',
    '<script>',
    "'; drop table tasks; --",
    'a'.repeat(5000),
    '\\u0000',
    '%00',
    '../../etc/passwd',
  ]
  const anyJson = (depth = 0): unknown => {
    switch (int(depth > 2 ? 5 : 8)) {
      case 0:
        return null
      case 1:
        return r() < 0.5
      case 2:
        return r() * 1e12 - 5e11
      case 3:
        return pick(junkStrings)
      case 4:
        return int(1e6)
      case 5:
        return Array.from({ length: int(4) }, () => anyJson(depth + 1))
      default:
        return Object.fromEntries(
          Array.from({ length: int(4) }, () => [
            pick(['name', 'payload', 'priority', 'x', '__proto__', 'constructor', 'ß']),
            anyJson(depth + 1),
          ]),
        )
    }
  }
  const wrongTyped = () => {
    const body: Record<string, unknown> = {
      name: pick(['send-email', 'sleep', 'doomed', 'nope', 42, null, [], '']),
      payload: pick([{ to: 'bad' }, 'str', 7, null, [1], { ms: -1 }, { why: 3 }]),
    }
    const field = pick([
      'priority',
      'timeout',
      'max_retries',
      'idempotency_key',
      'run_at',
      'schedule',
      'extra',
    ])
    body[field] = pick([-1, 'urgent', 1e20, {}, [], '', 'not-a-date', true, 'a'.repeat(300)])
    return body
  }
  const ids = [
    '..',
    '%2e%2e',
    '..%2F..%2Fetc%2Fpasswd',
    '%ZZ',
    '%',
    'a'.repeat(500),
    '%F0%9F%92%A5',
    '%00',
    '%C3%28',
    ';ls',
    '$(id)',
    '*',
    '%20',
    '%C3%B1',
    'x%2Fy',
  ]
  const routes = [
    '/tasks/ID',
    '/tasks/ID/result',
    '/tasks/ID/cancel',
    '/admin/dlq/ID',
    '/admin/dlq/ID/retry',
    '/admin/keys/ID',
    '/schedules/ID',
  ]
  const keys = [key, key, key, key, '', 'tlk_', `${key}x`, 'Bearer abc', key.toUpperCase(), 'x'.repeat(3000)]

  return (): Raw => {
    const headers: Record<string, string> = {}
    const k = pick(keys)
    if (k) headers['x-api-key'] = k
    const kind = int(9)
    if (kind <= 2) {
      // Bodies to POST /tasks (or other body routes): random JSON, wrong types, truncated.
      const text =
        kind === 0
          ? JSON.stringify(anyJson())
          : kind === 1
            ? JSON.stringify(wrongTyped())
            : JSON.stringify(wrongTyped()).slice(0, int(40))
      headers['content-type'] = pick([
        'application/json',
        'application/json; charset=utf-8',
        'application/problem+json',
      ])
      return {
        method: 'POST',
        path: pick(['/tasks', '/tasks', '/schedules', '/admin/keys']),
        headers,
        body: Buffer.from(text ?? 'null'),
      }
    }
    if (kind === 3) {
      // Bad or missing content types.
      const ct = pick([
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/jsonx',
        'json',
        '',
        'application/json; charset=latin1',
      ])
      if (ct) headers['content-type'] = ct
      return {
        method: 'POST',
        path: '/tasks',
        headers,
        body: Buffer.from('{"name":"send-email","payload":{}}'),
      }
    }
    if (kind === 4) {
      // Invalid UTF-8 and binary junk.
      headers['content-type'] = 'application/json'
      const bytes = Buffer.from(Array.from({ length: 1 + int(200) }, () => int(256)))
      if (r() < 0.5) bytes[0] = 0xc3
      return { method: 'POST', path: '/tasks', headers, body: bytes }
    }
    if (kind === 5) {
      // Path traversal, bad percent-encoding and unicode in ids.
      const route = pick(routes).replace('ID', pick(ids))
      const method =
        route.endsWith('cancel') || route.endsWith('retry')
          ? 'POST'
          : route.startsWith('/admin/keys/') || route.startsWith('/schedules/')
            ? 'DELETE'
            : 'GET'
      return { method, path: route, headers }
    }
    if (kind === 6) {
      // Wrong methods.
      return {
        method: pick(['PUT', 'PATCH', 'OPTIONS', 'DELETE', 'POST']),
        path: pick(['/tasks/abc/result', '/health', '/quota', '/tasks/abc', '/workers', '/openapi.json']),
        headers,
      }
    }
    if (kind === 7) {
      // Junk query strings.
      const q = pick([
        'status=done',
        'limit=-1',
        'limit=1e9',
        'offset=x',
        'limit=%ZZ',
        'status=',
        'limit=',
        'zzz=1&limit=0',
        'offset=-0.5',
      ])
      return { method: 'GET', path: `/tasks?${q}`, headers }
    }
    // Huge bodies, declared honestly or not.
    headers['content-type'] = 'application/json'
    return { method: 'POST', path: '/tasks', headers, body: Buffer.alloc(1_048_577 + int(100_000), 0x20) }
  }
}

function send(base: string, raw: Raw): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        method: raw.method,
        path: `${url.pathname}${raw.path}`,
        headers: { ...raw.headers, ...(raw.body ? { 'content-length': String(raw.body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            type: String(res.headers['content-type'] ?? ''),
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        )
      },
    )
    req.on('error', reject)
    req.end(raw.body)
  })
}

describe.skipIf(!up)('fuzzing the API with malformed requests', () => {
  let stack: Stack
  let key: string
  beforeAll(async () => {
    stack = await startStack({ worker: false, schedules: new MapSchedules() })
    key = await stack.key('fuzz', ['task:create', 'task:read', 'task:cancel', 'task:list'], {
      rateLimit: 1_000_000,
    })
  }, 60_000)
  afterAll(() => stack?.close())

  it.each(SERVERS)(
    'answers %s with 4xx problem documents only, and stays up',
    async (server) => {
      const next = generator(SERVERS.indexOf(server) + 1, key)
      const failures: string[] = []
      const statuses = new Map<number, number>()
      const requests = Array.from({ length: PER_SERVER }, next)
      for (let i = 0; i < requests.length; i += 8) {
        await Promise.all(
          requests.slice(i, i + 8).map(async (raw) => {
            const res = await send(stack.url[server], raw)
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
            let body: { status?: number; code?: string } = {}
            try {
              body = JSON.parse(res.body)
            } catch {}
            const ok =
              res.status >= 400 &&
              res.status < 500 &&
              res.type.startsWith('application/problem+json') &&
              body.status === res.status &&
              typeof body.code === 'string'
            if (!ok)
              failures.push(
                `${raw.method} ${raw.path.slice(0, 80)} [${raw.headers['content-type'] ?? '-'}] → ${res.status} ${res.type} ${res.body.slice(0, 160)}`,
              )
          }),
        )
      }
      expect(failures.slice(0, 10)).toEqual([])
      expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true)
      const health = await send(stack.url[server], { method: 'GET', path: '/health', headers: {} })
      expect(health.status).toBe(200)
    },
    120_000,
  )
})
