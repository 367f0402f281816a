/**
 * REST flows: POST /flows (a tree or a DAG, tenant-scoped, one Idempotency-Key for the whole
 * flow), GET /flows/{id}, and the dependency fields of GET /tasks/{id}, on every adapter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hasPostgres, hasRedis, uniqueName } from '../helpers/services.js'
import { ALL_SCOPES, call, SERVERS, type Stack, startStack } from './harness.js'

const up = (await hasRedis()) && (await hasPostgres())

const email = (subject: string) => ({ to: 'f@f.co', subject })

describe.skipIf(!up)('flows over REST', () => {
  let stack: Stack
  let key: string
  let otherKey: string
  beforeAll(async () => {
    // No worker: the flow's tasks stay where submission put them (leaves queued, parents pending).
    stack = await startStack({ worker: false })
    key = await stack.key('acme', [...ALL_SCOPES])
    otherKey = await stack.key('beta', [...ALL_SCOPES])
  }, 60_000)
  afterAll(() => stack?.close())

  it.each(SERVERS)('submits a tree and answers its graph and its tasks through %s', async (server) => {
    const url = stack.url[server]
    const created = await call(url, 'POST', '/flows', {
      key,
      json: {
        task: 'send-email',
        input: email('report'),
        children: [{ task: 'send-email', input: email('load'), key: 'load', onFailure: 'ignore' }],
      },
    })
    expect(created.status).toBe(201)
    const { flow_id: flowId, root_id: rootId, ids } = created.body
    expect(Object.keys(ids).sort()).toEqual(['load', 'root'])
    expect(rootId).toBe(ids.root)
    expect(flowId).toBe(rootId)

    const graph = await call(url, 'GET', `/flows/${flowId}`, { key })
    expect(graph.status).toBe(200)
    expect(graph.body).toMatchObject({ flow_id: flowId, root_id: rootId, status: 'running' })
    const byKey = Object.fromEntries(graph.body.nodes.map((n: { key: string }) => [n.key, n]))
    expect(byKey.root).toEqual({
      key: 'root',
      task_id: ids.root,
      name: 'send-email',
      status: 'pending',
      depends_on: ['load'],
      waiting_for: ['load'],
    })
    expect(byKey.load).toMatchObject({ task_id: ids.load, status: 'queued', depends_on: [], waiting_for: [] })

    const root = await call(url, 'GET', `/tasks/${ids.root}`, { key })
    expect(root.body).toMatchObject({
      status: 'pending',
      depends_on: [{ task_id: ids.load, queue: expect.any(String), on_failure: 'ignore' }],
      dependents: [],
      waiting_for: [{ task_id: ids.load }],
      flow_id: flowId,
    })
    const leaf = await call(url, 'GET', `/tasks/${ids.load}`, { key })
    expect(leaf.body).toMatchObject({ depends_on: [], dependents: [{ task_id: ids.root }], flow_id: flowId })

    // Another tenant's flow is not found, like its tasks.
    expect((await call(url, 'GET', `/flows/${flowId}`, { key: otherKey })).status).toBe(404)
    expect((await call(url, 'GET', `/tasks/${ids.root}`, { key: otherKey })).status).toBe(404)
    expect((await call(url, 'GET', '/flows/nope', { key })).status).toBe(404)
  })

  it.each(SERVERS)('submits a DAG once per Idempotency-Key through %s', async (server) => {
    const url = stack.url[server]
    const json = {
      nodes: [
        { key: 'a', task: 'send-email', input: email('a') },
        { key: 'b', task: 'send-email', input: email('b'), dependsOn: ['a'] },
        {
          key: 'c',
          task: 'send-email',
          input: email('c'),
          dependsOn: ['a', { key: 'b', onFailure: 'remove' }],
        },
      ],
    }
    const headers = { 'idempotency-key': uniqueName('flow') }
    const first = await call(url, 'POST', '/flows', { key, json, headers })
    expect(first.status).toBe(201)
    expect(first.body.root_id).toBeNull()
    expect(Object.keys(first.body.ids).sort()).toEqual(['a', 'b', 'c'])
    const again = await call(url, 'POST', '/flows', { key, json, headers })
    expect(again.status).toBe(200)
    expect(again.headers.get('idempotent-replayed')).toBe('true')
    expect(again.body).toEqual(first.body)

    // The same key for another tenant is that tenant's own flow.
    const theirs = await call(url, 'POST', '/flows', { key: otherKey, json, headers })
    expect(theirs.status).toBe(201)
    expect(theirs.body.flow_id).not.toBe(first.body.flow_id)

    const graph = await call(url, 'GET', `/flows/${first.body.flow_id}`, { key })
    const c = graph.body.nodes.find((n: { key: string }) => n.key === 'c')
    expect(c).toMatchObject({ status: 'pending', depends_on: ['a', 'b'] })
    expect(c.waiting_for.sort()).toEqual(['a', 'b'])
  })

  it.each(SERVERS)(
    'refuses an invalid flow with 400 naming the problem, creating nothing, through %s',
    async (server) => {
      const url = stack.url[server]
      const before = (await call(url, 'GET', '/tasks', { key })).body.total
      const cycle = await call(url, 'POST', '/flows', {
        key,
        json: {
          nodes: [
            { key: 'a', task: 'send-email', input: email('a'), dependsOn: ['b'] },
            { key: 'b', task: 'send-email', input: email('b'), dependsOn: ['a'] },
          ],
        },
      })
      expect(cycle.status).toBe(400)
      expect(cycle.body.code).toBe('INVALID_INPUT')
      expect(cycle.body.detail).toMatch(/cycle/)

      const unknownRef = await call(url, 'POST', '/flows', {
        key,
        json: { nodes: [{ key: 'a', task: 'send-email', input: email('a'), dependsOn: ['zz'] }] },
      })
      expect(unknownRef.status).toBe(400)
      expect(unknownRef.body.detail).toMatch(/zz/)

      const badInput = await call(url, 'POST', '/flows', {
        key,
        json: {
          task: 'send-email',
          input: email('ok'),
          children: [{ task: 'send-email', input: { to: 'x' } }],
        },
      })
      expect(badInput.status).toBe(400)
      expect(badInput.body.errors.map((e: { path: string }) => e.path)).toContain('children[0].input.to')

      const unknownTask = await call(url, 'POST', '/flows', {
        key,
        json: { task: 'send-email', input: email('ok'), children: [{ task: 'no-such-task', input: {} }] },
      })
      expect(unknownTask.status).toBe(400)
      expect(unknownTask.body.errors).toEqual([{ path: 'children[0].task', message: 'unknown task name' }])

      const badShape = await call(url, 'POST', '/flows', { key, json: { nodes: [] } })
      expect(badShape.status).toBe(400)

      expect((await call(url, 'GET', '/tasks', { key })).body.total).toBe(before)
    },
  )
})
