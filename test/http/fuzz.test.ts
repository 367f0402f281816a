/**
 * 1,200 malformed requests (random JSON, wrong types, huge and truncated bodies, bad headers,
 * unicode, path traversal in ids, wrong methods) through a raw HTTP client to each real server:
 * every answer must be a 4xx problem document, and every server must still answer after.
 */
import { Agent, request } from 'node:http'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openApiDocument } from '../../src/http/index.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { MapSchedules, RecordingMetrics } from './fakes.js'
import { readAnswer, SERVERS, type Stack, startStack } from './harness.js'

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

function send(
  base: string,
  raw: Raw,
  agent?: Agent,
): Promise<{ status: number; type: string; body: string }> {
  const url = new URL(base)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(agent ? { agent } : {}),
        host: url.hostname,
        port: url.port,
        method: raw.method,
        path: `${url.pathname}${raw.path}`,
        headers: { ...raw.headers, ...(raw.body ? { 'content-length': String(raw.body.length) } : {}) },
      },
      (res) => readAnswer(res).then(resolve, reject),
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

/**
 * Property-based: 5,400 requests generated by fast-check (1,800 per server) from the OpenAPI
 * document's own operations, with the inputs that broke APIs before: NUL and lone surrogates in
 * every string (keys included), huge and out-of-range numbers, deep nesting, prototype keys,
 * wrong methods (HEAD included), bodies over the limit. Every answer must be below 500, an error
 * must be a problem document, and every answer must validate against the OpenAPI document for its
 * operation and status. After it the servers still answer and the heap has not grown.
 */
describe.skipIf(!up)('fuzzing the API from its OpenAPI document (fast-check)', () => {
  const RUNS = 5_400
  let stack: Stack
  let keys: { task: string; admin: string }
  const doc = openApiDocument() as {
    paths: Record<
      string,
      Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>
    >
  }
  const ajv = new Ajv2020({ strict: false, allErrors: false })
  addFormats.default(ajv)
  ajv.addSchema({ ...(doc as object), $id: 'https://taskloom.dev/openapi.json' })
  const templates = Object.keys(doc.paths).map((p) => ({ path: p, parts: p.split('/').filter(Boolean) }))

  beforeAll(async () => {
    // Real schedules in the store; no scheduler, so generated schedules do not fire during the run.
    // Every optional service is there (metrics too), so no answer may be a 501 either.
    stack = await startStack({ worker: false, scheduler: false, metrics: new RecordingMetrics() })
    keys = {
      task: await stack.key('fuzz-a', ['task:create', 'task:read', 'task:cancel', 'task:list'], {
        rateLimit: 1_000_000,
      }),
      admin: await stack.key('fuzz-a', ['admin'], { rateLimit: 1_000_000 }),
    }
  }, 60_000)
  afterAll(() => stack?.close())

  /** The documented operation a raw path names (literal segments as sent, parameters anything). */
  function operationOf(method: string, rawPath: string) {
    const segments = rawPath.split('?')[0]!.split('/').filter(Boolean)
    const verb = method.toLowerCase() === 'head' ? 'get' : method.toLowerCase()
    // As the server routes: the first template of this shape that has the method.
    const t = templates.find(
      (t) =>
        t.parts.length === segments.length &&
        t.parts.every((p, i) => p.startsWith('{') || p === segments[i]) &&
        doc.paths[t.path]![verb] !== undefined,
    )
    return t ? { template: t.path, op: doc.paths[t.path]![verb]! } : undefined
  }

  // --- generators ---
  const lone = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c))
  const nasty = fc.oneof(
    fc.constantFrom(
      '\u0000',
      'a\u0000b',
      '\ud800',
      '\udfff',
      '\ud83d',
      '💥',
      '\u202e',
      '%00',
      '',
      ' ',
      'a'.repeat(300),
    ),
    fc.tuple(fc.string({ maxLength: 5 }), lone, fc.string({ maxLength: 5 })).map(([a, b, c]) => a + b + c),
    fc.string({ unit: 'binary', maxLength: 20 }),
    fc.string({ maxLength: 40 }),
  )
  const protoKey = fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    '__defineGetter__',
  )
  const key = fc.oneof(
    protoKey,
    nasty,
    fc.constantFrom('name', 'payload', 'to', 'subject', 'priority', 'timeout', 'cron', 'scopes'),
  )
  const hugeNumber = fc.constantFrom(
    '1e309',
    '-1e309',
    '1e308',
    '123456789012345678901234567890',
    '-0',
    '1e-400',
    '9007199254740993',
    '2e9',
    '-1',
  )
  /** JSON text, so that numbers JSON.stringify cannot write and `__proto__` keys go out verbatim. */
  const { json } = fc.letrec<{ json: string }>((tie) => ({
    json: fc.oneof(
      { depthSize: 'small' },
      fc.constantFrom('null', 'true', 'false', '0', '1', '{}', '[]'),
      hugeNumber,
      fc.double({ noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n)),
      nasty.map((s) => JSON.stringify(s)),
      fc.array(tie('json'), { maxLength: 4 }).map((xs) => `[${xs.join(',')}]`),
      fc
        .array(fc.tuple(key, tie('json')), { maxLength: 4 })
        .map((kv) => `{${kv.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
    ),
  }))
  const deep = fc
    .tuple(fc.integer({ min: 90, max: 30_000 }), fc.boolean())
    .map(([n, arrays]) =>
      arrays ? `${'['.repeat(n)}1${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`,
    )
  const email = '{"to":"f@f.co","subject":"s"}'
  const taskName = fc.oneof(
    fc.constantFrom('"send-email"', '"sleep"', '"doomed"', '"nope"'),
    nasty.map((s) => JSON.stringify(s)),
    json,
  )
  const field = (name: string, value: fc.Arbitrary<string>) =>
    fc.option(
      value.map((v) => `${JSON.stringify(name)}:${v}`),
      { nil: undefined },
    )
  const fieldValue = fc.oneof(
    json,
    hugeNumber,
    nasty.map((s) => JSON.stringify(s)),
    fc.constantFrom(
      '"high"',
      '30',
      '"0 * * * *"',
      '"* * * * * *"',
      '"2030-01-01T00:00:00Z"',
      '["task:read"]',
      '["admin"]',
    ),
  )
  const object = (fields: fc.Arbitrary<string | undefined>[]) =>
    fc.tuple(...fields).map((fs) => `{${fs.filter((f) => f !== undefined).join(',')}}`)
  const submitBody = object([
    field('name', taskName),
    field(
      'payload',
      fc.oneof(
        fc.constant(email),
        json,
        deep,
        fc.tuple(json).map(([v]) => `{"to":"f@f.co","subject":"s","x":${v}}`),
      ),
    ),
    field('priority', fieldValue),
    field('timeout', fc.oneof(hugeNumber, fieldValue)),
    field('max_retries', fc.oneof(hugeNumber, fieldValue)),
    field(
      'idempotency_key',
      fc.oneof(
        nasty.map((s) => JSON.stringify(s)),
        fc.constantFrom('"fuzz-1"', '"fuzz-2"'),
      ),
    ),
    field('schedule', fieldValue),
    field('run_at', fieldValue),
    field(fc.sample(protoKey, 1)[0]!, json),
  ])
  const scheduleBody = object([
    field(
      'id',
      fc.oneof(
        nasty.map((s) => JSON.stringify(s)),
        fc.constantFrom('"fuzz-s"', '"fuzz-t"'),
      ),
    ),
    field('name', taskName),
    field('cron', fieldValue),
    field('payload', fc.oneof(fc.constant(email), json, deep)),
    field(
      'timezone',
      fc.oneof(
        nasty.map((s) => JSON.stringify(s)),
        fc.constantFrom('"UTC"', '"Europe/Paris"', '"Mars/Olympus"'),
      ),
    ),
    field('misfire', fieldValue),
  ])
  const keyBody = object([
    field(
      'name',
      fc.oneof(
        nasty.map((s) => JSON.stringify(s)),
        json,
      ),
    ),
    field('scopes', fieldValue),
    field('rate_limit', fc.oneof(hugeNumber, fieldValue)),
    field('monthly_quota', fc.oneof(hugeNumber, fieldValue)),
    field('expires_at', fieldValue),
  ])
  /** A path parameter: ids that exist, ids that cannot, and bytes that are not UTF-8. */
  const param = fc.oneof(
    fc.constantFrom(
      'nope',
      'fuzz-s',
      '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b',
      '%00',
      '%ED%A0%80',
      '%C3%28',
      '%ZZ',
      '..',
      'a'.repeat(300),
      '%F0%9F%92%A5',
    ),
    nasty.map((s) => {
      try {
        return encodeURIComponent(s)
      } catch {
        return '%ED%B0%80' // a lone surrogate has no UTF-8: send the bytes it would have had
      }
    }),
  )
  const queryValue = fc.oneof(
    fc.constantFrom(
      '%00',
      'queued',
      'failed',
      '1',
      '0',
      '-1',
      '1e9',
      '1001',
      'x',
      '',
      '%ED%A0%80',
      'task.submit',
      '2030-01-01T00:00:00Z',
      '99999999999999999999',
    ),
    fc.string({ maxLength: 10 }).map(encodeURIComponent),
  )
  const query = fc
    .array(
      fc.tuple(
        fc.constantFrom(
          'status',
          'name',
          'limit',
          'offset',
          'action',
          'cursor',
          'since',
          'key_id',
          'zzz',
          '__proto__',
        ),
        queryValue,
      ),
      { maxLength: 3 },
    )
    .map((qs) => (qs.length === 0 ? '' : `?${qs.map(([k, v]) => `${k}=${v}`).join('&')}`))
  const contentType = fc.constantFrom(
    'application/json',
    'application/json; charset=utf-8',
    'application/problem+json',
    'text/plain',
    undefined,
  )

  /** Submits that mostly pass validation: new tasks, replays, reused keys (422), schedules. */
  const nearlyValid = fc
    .record({
      subject: fc.oneof(
        fc.constant('"s"'),
        fc.constant('"t"'),
        nasty.map((s) => JSON.stringify(s)),
      ),
      key: fc.option(fc.constantFrom('"fuzz-1"', '"fuzz-2"', '"fuzz-3"'), { freq: 2 }),
      priority: fc.option(fc.constantFrom('"high"', '"low"', '"critical"'), { freq: 2 }),
      schedule: fc.option(fc.constantFrom('"0 0 1 1 *"', '"*/5 * * * *"'), { freq: 4 }),
    })
    .map(
      ({ subject, key, priority, schedule }) =>
        `{"name":"send-email","payload":{"to":"f@f.co","subject":${subject}}` +
        `${key ? `,"idempotency_key":${key}` : ''}${priority ? `,"priority":${priority}` : ''}` +
        `${schedule ? `,"schedule":${schedule}` : ''}}`,
    )
  const requestArb = fc.oneof(
    {
      arbitrary: fc.record({
        method: fc.constant('POST'),
        path: fc.constant('/tasks'),
        body: nearlyValid,
        type: fc.constant('application/json'),
      }),
      weight: 30,
    },
    {
      arbitrary: fc.record({
        method: fc.constant('POST'),
        path: fc.constant('/tasks'),
        body: submitBody,
        type: contentType,
      }),
      weight: 50,
    },
    {
      arbitrary: fc.record({
        method: fc.constant('POST'),
        path: fc.constant('/schedules'),
        body: scheduleBody,
        type: contentType,
      }),
      weight: 20,
    },
    {
      arbitrary: fc.record({
        method: fc.constant('POST'),
        path: fc.constant('/admin/keys'),
        body: keyBody,
        type: contentType,
      }),
      weight: 10,
    },
    {
      arbitrary: fc.record({
        method: fc.constant('POST'),
        path: fc.constantFrom('/tasks', '/schedules'),
        body: json,
        type: fc.constant('application/json'),
      }),
      weight: 20,
    },
    {
      arbitrary: fc.record({
        method: fc.constantFrom('GET', 'HEAD', 'POST', 'DELETE', 'PUT', 'PATCH'),
        path: fc
          .tuple(
            fc.constantFrom(
              '/tasks/ID',
              '/tasks/ID/result',
              '/tasks/ID/cancel',
              '/schedules/ID',
              '/schedules/ID/pause',
              '/schedules/ID/resume',
              '/admin/dlq/ID',
              '/admin/dlq/ID/retry',
              '/admin/keys/ID',
            ),
            param,
          )
          .map(([t, p]) => t.replace('ID', p)),
      }),
      weight: 30,
    },
    {
      arbitrary: fc.record({
        method: fc.constantFrom('GET', 'GET', 'HEAD', 'POST'),
        path: fc
          .tuple(
            fc.constantFrom(
              '/tasks',
              '/quota',
              '/schedules',
              '/admin/dlq',
              '/admin/audit',
              '/admin/keys',
              '/workers',
              '/health',
              '/ready',
              '/openapi.json',
              '/metrics',
              '/nowhere',
            ),
            query,
          )
          .map(([p, q]) => p + q),
      }),
      weight: 30,
    },
    {
      arbitrary: fc.record({
        method: fc.constant('POST'),
        path: fc.constantFrom('/tasks', '/schedules', '/tasks/x/cancel'),
        huge: fc.integer({ min: 1_048_577, max: 1_200_000 }),
      }),
      weight: 2,
    },
  )
  const full = fc.record({
    server: fc.constantFrom(...SERVERS),
    who: fc.constantFrom('task', 'task', 'admin', 'none'),
    req: requestArb,
  })

  it(`answers ${RUNS} generated requests below 500, as documented, and stays up with a flat heap`, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 8 })
    const statuses = new Map<number, number>()
    const run = async ({ server, who, req }: ValueOf<typeof full>) => {
      const headers: Record<string, string> = {}
      if (who !== 'none') headers['x-api-key'] = keys[who as 'task' | 'admin']
      let body: Buffer | undefined
      if ('huge' in req) body = Buffer.alloc(req.huge, 0x20)
      else if ('body' in req) body = Buffer.from(req.body, 'utf8')
      if ('type' in req && req.type) headers['content-type'] = req.type
      else if ('huge' in req) headers['content-type'] = 'application/json'
      const res = await send(
        stack.url[server],
        { method: req.method, path: req.path, headers, ...(body ? { body } : {}) },
        agent,
      )
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      const where = `${req.method} ${req.path.slice(0, 120)} as ${who} on ${server} → ${res.status} ${res.body.slice(0, 300)}`
      expect(res.status, where).toBeLessThan(500)
      if (req.method === 'HEAD') {
        expect(res.body, where).toBe('')
        return
      }
      const type = res.type.split(';')[0]!.trim()
      let parsed: unknown
      if (type.endsWith('json')) parsed = JSON.parse(res.body)
      if (res.status >= 400) {
        expect(type, where).toBe('application/problem+json')
        expect(parsed, where).toMatchObject({
          status: res.status,
          code: expect.any(String),
          detail: expect.any(String),
        })
      }
      const found = operationOf(req.method, req.path)
      // No operation (unknown path, or a method the path has not): a problem document (404 / 405).
      const schemaPath = found
        ? [
            'paths',
            found.template,
            req.method.toLowerCase(),
            'responses',
            String(res.status),
            'content',
            type,
            'schema',
          ]
        : ['components', 'schemas', 'Problem']
      if (found) expect(found.op.responses[String(res.status)], `${where}: status documented`).toBeDefined()
      if (type === 'text/plain') return
      const pointer = schemaPath.map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1')).join('/')
      const validate = ajv.getSchema(`https://taskloom.dev/openapi.json#/${pointer}`)
      expect(validate, `${where}: ${type} documented`).toBeDefined()
      expect(validate!(parsed), `${where}: ${ajv.errorsText(validate!.errors)}`).toBe(true)
    }
    // Eight requests at a time (one property run each), as clients would send them.
    const batch = fc.array(full, { minLength: 8, maxLength: 8 })
    const runAll = async (requests: ValueOf<typeof full>[]) => {
      await Promise.all(requests.map(run))
    }
    // A first tenth warms caches and pools; the heap is measured after it and after the rest.
    const warm = Math.floor(RUNS / 80)
    await fc.assert(fc.asyncProperty(batch, runAll), { numRuns: warm, seed: 15, endOnFailure: true })
    const before = heapAfterGc()
    await fc.assert(fc.asyncProperty(batch, runAll), {
      numRuns: RUNS / 8 - warm,
      seed: 16,
      endOnFailure: true,
    })
    const after = heapAfterGc()
    agent.destroy()
    for (const server of SERVERS) {
      expect((await send(stack.url[server], { method: 'GET', path: '/health', headers: {} })).status).toBe(
        200,
      )
    }
    // The run stores tasks, keys, schedules and audit rows, and caches keys: some growth is state,
    // a leak per request would be tens of megabytes over 4,860 requests.
    expect(
      after - before,
      `heap ${Math.round(before / 1e6)} MB → ${Math.round(after / 1e6)} MB`,
    ).toBeLessThan(25e6)
    // The run reached the handlers, not only the validation: new tasks, replays and reused keys.
    for (const status of [200, 201, 422])
      expect(statuses.get(status), `status ${status} seen`).toBeGreaterThan(0)
  }, 180_000)
})

type ValueOf<A> = A extends fc.Arbitrary<infer T> ? T : never

/** The heap in use after a full garbage collection. */
function heapAfterGc(): number {
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  gc()
  gc()
  return process.memoryUsage().heapUsed
}
