/**
 * Flow control over HTTP: the operator pauses and resumes the queue, a task name and a group and
 * reads the whole state; a tenant admin pauses only its own group and sees nothing of another's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasPostgres, hasRedis, uniqueName } from '../helpers/services.js'
import { call, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

describe.skipIf(!up)('flow control endpoints', () => {
  let stack: Stack
  beforeAll(async () => {
    stack = await startStack({ worker: false })
  }, 60_000)
  afterAll(() => stack?.close())

  it('lets the operator pause and resume the queue, a task name and a group, and read the state', async () => {
    const url = stack.url.node
    const operator = await stack.operatorKey()
    const paused = await call(url, 'POST', '/operator/flow/pause', { key: operator, json: {} })
    expect(paused.status).toBe(200)
    expect(paused.body.paused).toEqual({ queue: true, tasks: [], groups: [] })
    await call(url, 'POST', '/operator/flow/pause', { key: operator, json: { task: 'send-email' } })
    await call(url, 'POST', '/operator/flow/pause', { key: operator, json: { group: 'acme' } })
    const state = await call(url, 'GET', '/operator/flow', { key: operator })
    expect(state.body).toMatchObject({
      lanes: false,
      paused: { queue: true, tasks: ['send-email'], groups: ['acme'] },
      waiting: [],
    })
    expect(await stack.queue.counts({ flow: true })).toMatchObject({ flow: { paused: { queue: true } } })
    for (const json of [{}, { task: 'send-email' }, { group: 'acme' }])
      expect((await call(url, 'POST', '/operator/flow/resume', { key: operator, json })).status).toBe(200)
    expect((await call(url, 'GET', '/operator/flow', { key: operator })).body.paused).toEqual({
      queue: false,
      tasks: [],
      groups: [],
    })
    const bad = await call(url, 'POST', '/operator/flow/pause', {
      key: operator,
      json: { group: 'no spaces' },
    })
    expect(bad.status).toBe(400)
  })

  it("lets a tenant admin pause only its own group, and shows it nothing of another tenant's", async () => {
    const url = stack.url.node
    const mine = uniqueName('mine')
    const theirs = uniqueName('theirs')
    const admin = await stack.key(mine, ['admin'])
    const other = await stack.key(theirs, ['admin'])
    const paused = await call(url, 'POST', '/admin/flow/pause', { key: admin })
    expect(paused.status).toBe(200)
    expect(paused.body).toEqual({
      group: mine,
      paused: true,
      waiting_until: null,
      ready: null,
      running: null,
    })
    expect((await call(url, 'GET', '/admin/flow', { key: other })).body.paused).toBe(false)
    expect((await stack.queue.counts({ flow: true })).flow!.paused.groups).toEqual([mine])
    // Tenant keys cannot reach the operator's endpoints.
    expect((await call(url, 'GET', '/operator/flow', { key: admin })).status).toBe(403)
    await call(url, 'POST', '/admin/flow/resume', { key: admin })
    expect((await call(url, 'GET', '/admin/flow', { key: admin })).body.paused).toBe(false)
  })
})
