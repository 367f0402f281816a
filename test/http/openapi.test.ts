import { readFile } from 'node:fs/promises'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openApiDocument } from '../../src/http/index.js'
import { until } from '../helpers/backends.js'
import { hasPostgres, hasRedis } from '../helpers/services.js'
import { MapSchedules, RecordingMetrics, workersOf } from './fakes.js'
import { type Answer, call, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())
const DOC_ID = 'https://taskloom.dev/openapi.json'

describe('the OpenAPI document', () => {
  it('is committed up to date in docs/openapi.json (run `npm run openapi`)', async () => {
    const committed = JSON.parse(await readFile(new URL('../../docs/openapi.json', import.meta.url), 'utf8'))
    expect(committed).toEqual(openApiDocument())
  })

  it('is OpenAPI 3.1 with every schema reference resolvable', () => {
    const doc = openApiDocument() as { openapi: string; components: { schemas: Record<string, unknown> } }
    expect(doc.openapi).toBe('3.1.0')
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)].map(
      (m) => m[1]!,
    )
    expect(refs.length).toBeGreaterThan(10)
    for (const ref of refs) expect(doc.components.schemas[ref], ref).toBeDefined()
  })
})

describe.skipIf(!up)('real responses validate against the OpenAPI document', () => {
  let stack: Stack
  const doc = openApiDocument() as {
    paths: Record<string, Record<string, { responses: Record<string, any> }>>
  }
  const ajv = new Ajv2020({ strict: false, allErrors: true })
  addFormats.default(ajv)
  ajv.addSchema({ ...(doc as object), $id: DOC_ID })
  const checked = new Set<string>()

  beforeAll(async () => {
    stack = await startStack({
      schedules: new MapSchedules(),
      workers: workersOf(4),
      metrics: new RecordingMetrics(),
    })
  }, 60_000)
  afterAll(() => stack?.close())

  /** Validates one answer against the operation's documented response for its status. */
  function conforms(method: string, template: string, answer: Answer) {
    const path = template.replace(/:([A-Za-z]+)/g, '{$1}')
    const op = doc.paths[path]?.[method.toLowerCase()]
    expect(op, `${method} ${path} is documented`).toBeDefined()
    const response = op!.responses[String(answer.status)]
    expect(response, `${method} ${path} documents status ${answer.status}`).toBeDefined()
    const type = (answer.headers.get('content-type') ?? '').split(';')[0]!
    if (answer.status === 204) return
    const media = response.content?.[type]
    expect(media, `${method} ${path} ${answer.status} documents ${type}`).toBeDefined()
    const pointer = [
      'paths',
      path,
      method.toLowerCase(),
      'responses',
      String(answer.status),
      'content',
      type,
      'schema',
    ]
      .map((p) => p.replaceAll('~', '~0').replaceAll('/', '~1'))
      .join('/')
    const validate = ajv.getSchema(`${DOC_ID}#/${pointer}`)!
    const ok = validate(answer.body)
    expect(ok, `${method} ${path} ${answer.status}: ${ajv.errorsText(validate.errors)}`).toBe(true)
    checked.add(`${method} ${template} ${answer.status}`)
  }

  it('for every endpoint and its main error statuses', async () => {
    const url = stack.url.express
    const admin = await stack.key('doc', ['admin'])
    const reader = await stack.key('doc', ['task:read'])
    const operator = await stack.operatorKey()
    const c = async (
      method: string,
      template: string,
      path: string,
      opts: Parameters<typeof call>[3] = {},
    ) => {
      const a = await call(url, method, path, opts)
      conforms(method, template, a)
      return a
    }
    await c('GET', '/health', '/health')
    await c('GET', '/ready', '/ready')
    await c('GET', '/openapi.json', '/openapi.json')
    const created = await c('POST', '/tasks', '/tasks', {
      key: admin,
      json: { name: 'send-email', payload: { to: 'o@o.co', subject: 's' }, idempotency_key: 'doc' },
    })
    await c('POST', '/tasks', '/tasks', {
      key: admin,
      json: { name: 'send-email', payload: { to: 'o@o.co', subject: 's' }, idempotency_key: 'doc' },
    })
    await c('POST', '/tasks', '/tasks', {
      key: admin,
      json: { name: 'send-email', payload: {}, schedule: '0 * * * *' },
    })
    await c('POST', '/tasks', '/tasks', { key: admin, json: { name: 'send-email', payload: 1 } })
    await c('POST', '/tasks', '/tasks', { key: admin, body: 'x', headers: { 'content-type': 'text/plain' } })
    await c('POST', '/tasks', '/tasks', { key: reader, json: { name: 'send-email' } })
    await c('POST', '/tasks', '/tasks', { json: { name: 'send-email' } })
    const id = created.body.task_id
    await until(
      async () => (await call(url, 'GET', `/tasks/${id}`, { key: admin })).body.status === 'completed',
    )
    await c('GET', '/tasks/:id', `/tasks/${id}`, { key: admin })
    await c('GET', '/tasks/:id', '/tasks/nope', { key: admin })
    await c('GET', '/tasks/:id/result', `/tasks/${id}/result`, { key: admin })
    await c('POST', '/tasks/:id/cancel', `/tasks/${id}/cancel`, { key: admin })
    await c('GET', '/tasks', '/tasks?limit=5', { key: admin })
    await c('GET', '/tasks', '/tasks?limit=x', { key: admin })
    await c('GET', '/quota', '/quota', { key: admin })
    await c('POST', '/schedules', '/schedules', {
      key: admin,
      json: { id: 'doc', name: 'send-email', cron: '0 0 * * *' },
    })
    await c('GET', '/schedules', '/schedules', { key: admin })
    await c('GET', '/schedules/:id', '/schedules/doc', { key: admin })
    await c('GET', '/schedules/:id', '/schedules/nope', { key: admin })
    await c('POST', '/schedules/:id/pause', '/schedules/doc/pause', { key: admin })
    await c('POST', '/schedules/:id/resume', '/schedules/doc/resume', { key: admin })
    await c('DELETE', '/schedules/:id', '/schedules/doc', { key: admin })
    // A reused idempotency key, NUL in a field, a bad path encoding, a body over the limit.
    await c('POST', '/tasks', '/tasks', {
      key: admin,
      json: { name: 'send-email', payload: { to: 'o@o.co', subject: 'other' }, idempotency_key: 'doc' },
    })
    await c('POST', '/tasks', '/tasks', { key: admin, json: { name: 'send\u0000', payload: {} } })
    await c('GET', '/tasks/:id', '/tasks/%ZZ', { key: admin })
    await c('POST', '/tasks/:id/cancel', '/tasks/x/cancel', { key: admin, body: 'x'.repeat(1_048_577) })
    await c('GET', '/admin/audit', '/admin/audit?limit=2', { key: admin })
    await c('GET', '/admin/audit', '/admin/audit?action=nope', { key: admin })
    const dead = await call(url, 'POST', '/tasks', {
      key: admin,
      json: { name: 'doomed', payload: { why: 'doc' } },
    })
    await until(async () => (await call(url, 'GET', '/admin/dlq', { key: admin })).body.total === 1)
    await c('GET', '/admin/dlq', '/admin/dlq', { key: admin })
    await c('GET', '/admin/dlq/:id', `/admin/dlq/${dead.body.task_id}`, { key: admin })
    await c('POST', '/admin/dlq/:id/retry', `/admin/dlq/${dead.body.task_id}/retry`, { key: admin })
    await c('POST', '/admin/dlq/retry', '/admin/dlq/retry', { key: admin })
    await c('GET', '/workers', '/workers', { key: operator })
    await c('GET', '/workers', '/workers', { key: admin })
    const key = await c('POST', '/admin/keys', '/admin/keys', {
      key: admin,
      json: { scopes: ['task:read'], name: 'doc' },
    })
    await c('GET', '/admin/keys', '/admin/keys', { key: admin })
    await c('DELETE', '/admin/keys/:id', `/admin/keys/${key.body.key_id}`, { key: admin })
    await c('GET', '/admin/keys', '/admin/keys', { key: reader })
    await c('GET', '/metrics', '/metrics', { key: operator })
    await c('GET', '/operator/tenants', '/operator/tenants', { key: operator })
    await c('PUT', '/operator/tenants/:tenant', '/operator/tenants/doc', {
      key: operator,
      json: { rate_limit: 500, monthly_quota: null, scopes: ['task:read', 'admin'] },
    })
    await c('PUT', '/operator/tenants/:tenant', '/operator/tenants/doc', {
      key: operator,
      json: { rate_limit: 0 },
    })
    await c('GET', '/operator/tenants/:tenant', '/operator/tenants/doc', { key: operator })
    await c('GET', '/operator/tenants/:tenant', '/operator/tenants/no%20such', { key: operator })
    const made = await c('POST', '/operator/tenants/:tenant/keys', '/operator/tenants/doc/keys', {
      key: operator,
      json: { scopes: ['admin'] },
    })
    await c('GET', '/operator/tenants/:tenant/keys', '/operator/tenants/doc/keys', { key: operator })
    await c('DELETE', '/operator/keys/:id', `/operator/keys/${made.body.key_id}`, { key: operator })
    await c('DELETE', '/operator/keys/:id', '/operator/keys/nope', { key: operator })
    await c('GET', '/operator/audit', '/operator/audit?tenant=doc&limit=2', { key: operator })
    await c('GET', '/operator/audit', '/operator/audit?tenant=no%20such', { key: operator })
    expect(checked.size).toBe(49)
  })
})
